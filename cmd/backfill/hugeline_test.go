package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline/state"
)

// TestNDJSONHugeLineIsOneDeadLetterInARun runs the binary on a 3-line
// NDJSON file whose middle line is a 150 MB object: the two good lines
// reach the receiver, the middle one is one dead letter naming its file,
// line and size, and the run's peak RSS stays within 100 MB of the same
// run on a file of three small lines.
func TestNDJSONHugeLineIsOneDeadLetterInARun(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 150 MB file and builds the binary; ./scripts/test.sh runs it without -short")
	}
	bin := buildBinary(t)
	const huge = 150 << 20
	small := writeThreeLines(t, "small", 10)
	big := writeThreeLines(t, "big", huge)

	baseline := runHugeLine(t, bin, small)
	if baseline.received != 3 || baseline.deadLetters != 0 {
		t.Fatalf("three small lines: received %d, %d dead letters\n%s", baseline.received, baseline.deadLetters, baseline.stderr)
	}
	got := runHugeLine(t, bin, big)
	if got.code != 0 || got.received != 2 || got.deadLetters != 1 {
		t.Fatalf("exit %d, received %d, %d dead letters; want 0, 2, 1\n%s", got.code, got.received, got.deadLetters, got.stderr)
	}
	for _, want := range []string{"events.ndjson line 2", fmt.Sprint(huge + len(middleHead+middleTail)), "max_line_bytes"} {
		if !strings.Contains(got.reason, want) {
			t.Errorf("dead letter %q lacks %q", got.reason, want)
		}
	}
	extra := got.maxRSS - baseline.maxRSS
	t.Logf("peak RSS: %d MB with the 150 MB line, %d MB without", got.maxRSS>>20, baseline.maxRSS>>20)
	if extra > 100<<20 {
		t.Errorf("the 150 MB line cost %d MB more peak RSS; want under 100 MB", extra>>20)
	}
}

// The middle event of writeThreeLines, around its blob.
const middleHead, middleTail = `{"type":"track","event":"Second","userId":"u2","timestamp":"2024-01-02T00:00:00Z","properties":{"blob":"`, `"}}`

// writeThreeLines writes DIR/events.ndjson: two small events around one
// whose "blob" property is n bytes.
func writeThreeLines(t *testing.T, name string, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "events.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, `{"type":"track","event":"First","userId":"u1","timestamp":"2024-01-01T00:00:00Z"}`)
	w.WriteString(middleHead)
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		w.Write(chunk[:min(left, len(chunk))])
	}
	w.WriteString(middleTail + "\n")
	fmt.Fprintln(w, `{"type":"track","event":"Third","userId":"u3","timestamp":"2024-01-03T00:00:00Z"}`)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

type hugeLineRun struct {
	code                  int
	received, deadLetters int64
	reason, stderr        string
	maxRSS                int64 // bytes
}

// runHugeLine sends DIR/events.ndjson to a receiver and returns what
// became of its lines and the run's peak RSS.
func runHugeLine(t *testing.T, bin, dir string) hugeLineRun {
	t.Helper()
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
	defer srv.Close()
	dl := filepath.Join(dir, "dead-letters.ndjson")
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: huge
source: {file: {path: %s/events.ndjson}}
sink: {segment: {endpoint: %s, write_key: KEY}}
state: %s/state
dead_letter: %s
max_rejects: none
`, dir, srv.URL(), dir, dl)), 0o644)
	cmd := exec.Command(bin, "run", "--progress", "none", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r := hugeLineRun{code: exitCode(t, cmd.Run()), stderr: stderr.String(), received: srv.Stats().Messages}
	r.maxRSS = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	if f, err := os.Open(dl); err == nil {
		defer f.Close()
		if err := state.ScanDeadLetters(dl, f, func(l *state.DeadLetterLine) {
			r.deadLetters++
			r.reason = l.Reason
		}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}
