// Package skips counts the tests a test server harness skips for want of
// its server binary, and says so where `go test` shows it: fails the test
// under CI=true, else one line at the end of the package's tests (or at
// the first skip when the package does not wrap its tests).
package skips

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/term"
)

// Missing is one server binary a harness needs.
type Missing struct {
	Harness  string // "s3test"
	What     string // "minio not installed"
	Tests    string // "S3", in "N S3 test(s) skipped"
	HowToRun string // how to get the tests to run

	skipped   atomic.Int64
	reporting atomic.Bool
	warnOnce  sync.Once
}

// Skip skips t (fails it under CI=true).
func (m *Missing) Skip(t testing.TB) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true): %s", m.What, m.HowToRun)
	}
	m.skipped.Add(1)
	if !m.reporting.Load() {
		// No Wrap to count them: say so once, at the first skip.
		m.warnOnce.Do(func() {
			announce(fmt.Sprintf("%s: %s: this package's %s tests are skipped; %s", m.Harness, m.What, m.Tests, m.HowToRun), false)
		})
	}
	t.Skip(m.What + ": " + m.HowToRun)
}

// Wrapping says whether Wrap runs the package's tests.
func (m *Missing) Wrapping() bool { return m.reporting.Load() }

// Wrap runs the package's tests, then after (nil: nothing), then prints
// how many were skipped.
func (m *Missing) Wrap(r interface{ Run() int }, after func()) interface{ Run() int } {
	return runner{m, r, after}
}

type runner struct {
	m     *Missing
	r     interface{ Run() int }
	after func()
}

func (w runner) Run() int {
	w.m.reporting.Store(true)
	code := w.r.Run()
	if w.after != nil {
		w.after()
	}
	if n := w.m.skipped.Load(); n > 0 {
		announce(fmt.Sprintf("%s: %d %s test(s) skipped: %s; %s", w.m.Harness, n, w.m.Tests, w.m.What, w.m.HowToRun), code != 0)
	}
	return code
}

// announce prints line to stderr. `go test` shows a passing package's
// output only with -v or when run without package arguments: with
// `go test ./...` it would vanish, so the line also goes to the controlling
// terminal when there is one, stderr is not it, and the go command would
// not show stderr anyway (not -v or -json, the package did not fail).
func announce(line string, failed bool) {
	fmt.Fprintln(os.Stderr, line)
	if failed || testing.Verbose() || term.IsTerminal(int(os.Stderr.Fd())) {
		return
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		return // no terminal (CI, a service): CI=true fails instead of skipping
	}
	defer tty.Close()
	fmt.Fprintln(tty, line)
}
