package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
)

// exitPaths is a pipeline of CSV files to the Segment sink, run by the
// real binary against the test receiver, with rows that fail on purpose:
// every 50th has a time no layout reads (the timestamp transform rejects
// it), every 100th has no event (the sink's encoder rejects it).
type exitPaths struct {
	t    *testing.T
	bin  string
	dir  string
	cfg  string
	good int // rows that can be delivered
	bad  int // rows rejected before any request
}

const exitFiles, exitRows = 3, 400

func newExitPaths(t *testing.T, bin string) *exitPaths {
	p := &exitPaths{t: t, bin: bin, dir: t.TempDir()}
	in := filepath.Join(p.dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	for f := 0; f < exitFiles; f++ {
		var b strings.Builder
		b.WriteString("user_id,event,ts\n")
		for i := 0; i < exitRows; i++ {
			event, ts := "Order Completed", fmt.Sprintf("2024-03-01T10:%02d:%02dZ", i/60, i%60)
			switch {
			case i%50 == 7:
				ts = "not-a-date"
				p.bad++
			case i%100 == 13:
				event = ""
				p.bad++
			default:
				p.good++
			}
			fmt.Fprintf(&b, "u%d-%d,%s,%s\n", f, i, event, ts)
		}
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("orders-%d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.cfg = filepath.Join(p.dir, "p.yaml")
	yaml := `name: paths
source:
  file:
    path: ` + in + `/*.csv*
    csv: {header: true, "null": ""}
transforms:
  - map: {type: track, event: event, userId: user_id, timestamp: ts}
  - timestamp: {field: timestamp}
sink:
  segment:
    endpoint: ${SEGMENT_ENDPOINT}
    write_key: ${SEGMENT_WRITE_KEY:-KEY}
    batch: {max_events: 50}
    request:
      concurrency: 1
      retry: {initial_backoff: 10ms, max_backoff: 100ms}
state: ` + p.dir + `/state
batch_rows: 100
checkpoint_interval: 50ms
max_rejects: ${MAX_REJECTS:-10%}
`
	if err := os.WriteFile(p.cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// command is the binary running the pipeline against endpoint, writing
// its report; env adds variables.
func (p *exitPaths) command(endpoint string, env ...string) *exec.Cmd {
	cmd := exec.Command(p.bin, "run", "--progress", "none", "--log-level", "debug", "--report", p.reportPath(), p.cfg)
	cmd.Env = append(os.Environ(), append([]string{"SEGMENT_ENDPOINT=" + endpoint}, env...)...)
	return cmd
}

func (p *exitPaths) reportPath() string { return filepath.Join(p.dir, "report.json") }

// run runs the binary to its end and returns its exit code, report and
// stderr.
func (p *exitPaths) run(endpoint string, env ...string) (int, *engine.Report, string) {
	p.t.Helper()
	os.Remove(p.reportPath())
	cmd := p.command(endpoint, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return exitCode(p.t, cmd.Run()), p.report(), stderr.String()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func (p *exitPaths) report() *engine.Report {
	p.t.Helper()
	data, err := os.ReadFile(p.reportPath())
	if err != nil {
		p.t.Fatalf("no report: %v", err)
	}
	var rep engine.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		p.t.Fatal(err)
	}
	return &rep
}

// deadLetters counts the dead-letter file's lines and distinct rows.
func (p *exitPaths) deadLetters() (lines, rows int) {
	seen := state.NewRowCounter()
	p.eachDeadLetter(func(l *state.DeadLetterLine) {
		lines++
		if seen.Add(l) {
			rows++
		}
	})
	return lines, rows
}

// eachDeadLetter calls fn with each line of the dead-letter file.
func (p *exitPaths) eachDeadLetter(fn func(*state.DeadLetterLine)) {
	p.t.Helper()
	f, err := os.Open(filepath.Join(p.dir, "state", "paths", "dead-letters.ndjson"))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if err := state.ScanDeadLetters(f.Name(), f, fn); err != nil {
		p.t.Fatal(err)
	}
}

// check holds what is true of every report: the rows add up, none is
// negative, the receiver got what the report says was delivered, and the
// dead-letter file holds each rejected row once.
func (p *exitPaths) check(name string, rep *engine.Report, received int64) {
	p.t.Helper()
	r := rep.Rows()
	if r.Delivered < 0 || r.Filtered < 0 || r.Rejected < 0 || r.Unacked < 0 ||
		r.Read != r.Delivered+r.Filtered+r.Rejected+r.Unacked {
		p.t.Fatalf("%s: rows do not add up: %+v", name, r)
	}
	if r.Delivered != received {
		p.t.Fatalf("%s: report says %d delivered, the receiver stored %d", name, r.Delivered, received)
	}
	if lines, rows := p.deadLetters(); lines != rows {
		p.t.Fatalf("%s: %d dead-letter lines for %d rows", name, lines, rows)
	}
}

// closedPort is an address where nothing listens: an endpoint that is down.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestExitPaths drives the CLI through every way a run ends and checks,
// each time, the --report against the receiver and the dead-letter file.
func TestExitPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it a dozen times; ./scripts/test.sh runs it without -short")
	}
	bin := buildBinary(t)

	t.Run("success", func(t *testing.T) {
		p := newExitPaths(t, bin)
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
		defer srv.Close()
		code, rep, stderr := p.run(srv.URL())
		if code != exitOK || rep.Status != "ok" {
			t.Fatalf("exit %d, status %s\n%s", code, rep.Status, stderr)
		}
		p.check("success", rep, srv.Stats().Messages)
		if rep.RowsDelivered != int64(p.good) || rep.RowsRejected != int64(p.bad) || rep.SplitsDone != exitFiles ||
			srv.Stats().UniqueIDs != int64(p.good) {
			t.Fatalf("report %+v; receiver %+v", rep, srv.Stats())
		}
		// A time no layout reads: the dead letter holds the row as the
		// timestamp transform saw it, so it can be fixed and sent again.
		p.eachDeadLetter(func(l *state.DeadLetterLine) {
			if strings.HasPrefix(l.Stage, "transform:") && !strings.Contains(string(l.Values), `"timestamp":"not-a-date"`) {
				t.Errorf("a transform's dead letter without the row's values: %+v", l)
			}
			if l.Stage == "sink" && len(l.Message) == 0 {
				t.Errorf("a sink's dead letter without the message: %+v", l)
			}
		})
	})

	t.Run("a split fails", func(t *testing.T) {
		p := newExitPaths(t, bin)
		if err := os.WriteFile(filepath.Join(p.dir, "in", "zz-broken.csv.gz"), []byte("not gzip at all"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
		defer srv.Close()
		code, rep, stderr := p.run(srv.URL())
		if code != exitFailed || rep.Status != "failed" || len(rep.SplitsFailed) != 1 || !strings.Contains(rep.SplitsFailed[0], "zz-broken") {
			t.Fatalf("exit %d, report %+v\n%s", code, rep, stderr)
		}
		p.check("a split fails", rep, srv.Stats().Messages)
		if rep.RowsDelivered != int64(p.good) || rep.SplitsDone != exitFiles {
			t.Fatalf("the other splits: report %+v", rep)
		}
	})

	t.Run("a wrong write key (401)", func(t *testing.T) {
		p := newExitPaths(t, bin)
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"OTHER"}})
		defer srv.Close()
		for run := 1; run <= 4; run++ { // retried, as a cron job would
			code, rep, stderr := p.run(srv.URL())
			if code != exitFailed || rep.Status != "failed" || !strings.Contains(rep.Error, "401") {
				t.Fatalf("run %d: exit %d, report %+v\n%s", run, code, rep, stderr)
			}
			p.check("401", rep, srv.Stats().Messages)
			if rep.RowsDelivered != 0 || rep.SplitsDone != 0 || rep.RowsUnacked == 0 {
				t.Fatalf("run %d: report %+v", run, rep)
			}
		}
		t.Setenv("SEGMENT_ENDPOINT", srv.URL())
		code, out, _ := runCLI(t, "", "status", "--json", p.cfg)
		var st statusJSON
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
			t.Fatalf("status: exit %d, %v", code, err)
		}
		if _, rows := p.deadLetters(); st.Shards[0].Dead.Rows != int64(rows) || st.Shards[0].SplitsDone != 0 {
			t.Fatalf("status %+v; the file holds %d rows", st.Shards[0], rows)
		}
	})

	t.Run("every row rejected (400)", func(t *testing.T) {
		p := newExitPaths(t, bin)
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"},
			Reject: func(segmenttest.Message) string { return "the collector takes nothing" }})
		defer srv.Close()
		code, rep, stderr := p.run(srv.URL())
		if code != exitFailed || rep.Status != "failed" || !strings.Contains(rep.Error, "max_rejects 10%") {
			t.Fatalf("exit %d, report %+v\n%s", code, rep, stderr)
		}
		p.check("400", rep, srv.Stats().Messages)
		if rep.RowsDelivered != 0 || rep.RejectsByStage["sink"] == 0 {
			t.Fatalf("report %+v", rep)
		}
	})

	t.Run("max_rejects reached", func(t *testing.T) {
		p := newExitPaths(t, bin)
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
		defer srv.Close()
		code, rep, stderr := p.run(srv.URL(), "MAX_REJECTS=5")
		if code != exitFailed || !strings.Contains(rep.Error, "over max_rejects 5") {
			t.Fatalf("exit %d, report %+v\n%s", code, rep, stderr)
		}
		p.check("max_rejects", rep, srv.Stats().Messages)
		if rep.RowsRejected < 6 {
			t.Fatalf("report %+v", rep)
		}
	})

	t.Run("SIGINT while the endpoint is down, then resume", func(t *testing.T) {
		p := newExitPaths(t, bin)
		os.Remove(p.reportPath())
		cmd := p.command(closedPort(t))
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until a request is being retried, then stop the run: it must
		// not wait out the retries (a minute or more) nor the grace.
		var log bytes.Buffer
		sc := bufio.NewScanner(io.TeeReader(stderr, &log))
		for sc.Scan() && !strings.Contains(sc.Text(), "retrying a request") {
		}
		stopped := time.Now()
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, io.TeeReader(stderr, &log))
		code := exitCode(t, cmd.Wait())
		if took := time.Since(stopped); code != exitInterrupted || took > 30*time.Second {
			t.Fatalf("exit %d after %v, want %d at once\n%s", code, took, exitInterrupted, log.String())
		}
		rep := p.report()
		p.check("SIGINT", rep, 0)
		if rep.Status != "interrupted" || rep.RowsDelivered != 0 || rep.RowsUnacked == 0 || rep.SplitsDone != 0 {
			t.Fatalf("report %+v", rep)
		}
		// The endpoint is back: the resume sends every row once.
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
		defer srv.Close()
		code, rep, out := p.run(srv.URL())
		if code != exitOK {
			t.Fatalf("resume: exit %d\n%s", code, out)
		}
		p.check("resume after SIGINT", rep, srv.Stats().Messages)
		if st := srv.Stats(); st.UniqueIDs != int64(p.good) || st.Duplicates != 0 {
			t.Fatalf("receiver %+v, want %d rows once", st, p.good)
		}
	})

	t.Run("SIGKILL, then resume", func(t *testing.T) {
		p := newExitPaths(t, bin)
		srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
		defer srv.Close()
		cmd := p.command(srv.URL())
		var log bytes.Buffer
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once a third of the rows are stored (requests of 50, one at a time).
		<-srv.Stored(int64(p.good / 3))
		cmd.Process.Kill()
		cmd.Wait()
		first := srv.Stats().UniqueIDs
		if first == 0 || first >= int64(p.good) {
			t.Fatalf("the kill came at %d of %d rows: too early or too late to test a resume\n%s", first, p.good, log.String())
		}
		before := srv.Stats().Messages
		code, rep, out := p.run(srv.URL())
		if code != exitOK {
			t.Fatalf("resume: exit %d\n%s", code, out)
		}
		p.check("resume after SIGKILL", rep, srv.Stats().Messages-before)
		if st := srv.Stats(); st.UniqueIDs != int64(p.good) {
			t.Fatalf("receiver holds %d distinct rows, want %d", st.UniqueIDs, p.good)
		}
		if _, rows := p.deadLetters(); rows != p.bad {
			t.Fatalf("%d rows in the dead letters, want %d", rows, p.bad)
		}
	})
}
