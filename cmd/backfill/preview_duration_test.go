package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
)

func TestDurationLine(t *testing.T) {
	for _, tt := range []struct {
		rows      int64
		estimated bool
		rate      float64
		shards    int
		want      string
	}{
		{50000, false, 1000, 1, "50,000 rows at 1,000/s: about 50 s"},
		{50000, false, 0, 1, "50,000 rows at Segment's default of about 1,000 events/s per workspace (no request.rate_limit set): about 50 s"},
		{12_000_000, false, 1000, 1, "12,000,000 rows at 1,000/s: about 3 h 20 min"},
		{1_200_000, true, 250, 4, "about 1,200,000 rows (estimated) at 250/s (rate_limit over 4 shards): about 1 h 20 min"},
		{90, false, 1000.0 / 60, 1, "90 rows at 16.7/s: about 5 s"},
		{-1, false, 500, 1, "the row count is unknown until read (preview --all counts it); at 500/s a million rows take about 33 min 20 s"},
	} {
		if got := durationLine(tt.rows, tt.estimated, tt.rate, tt.shards); got != tt.want {
			t.Errorf("%d rows at %v/s:\n got %s\nwant %s", tt.rows, tt.rate, got, tt.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		300 * time.Millisecond:                        "under a second",
		50 * time.Second:                              "about 50 s",
		200 * time.Second:                             "about 3 min 20 s",
		3 * time.Minute:                               "about 3 min",
		3*time.Hour + 20*time.Minute:                  "about 3 h 20 min",
		3*time.Hour + 19*time.Minute + 40*time.Second: "about 3 h 20 min",
		52 * time.Hour:                                "about 2 d 4 h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("%v: %s, want %s", d, got, want)
		}
	}
}

func loadTestConfig(t *testing.T, yaml string) *config.Pipeline {
	t.Helper()
	cfg, err := config.Load("p.yaml", []byte(yaml), config.LoadOptions{SecretsOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// run logs the duration once, at the start: from the splits' row counts
// when they have them, else from the first progress with a total.
func TestRunLogsItsDurationOnce(t *testing.T) {
	cfg := loadTestConfig(t, "name: x\nsource: {file: {path: a.csv}}\nsink:\n  segment:\n    write_key: k\n    request: {rate_limit: 60000/m}\n")
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	opts := engine.Options{}
	splitsSeen := false
	opts.OnSplits = func(selected, skipped []pipeline.Split) { splitsSeen = true }
	logRunDuration(cfg, &opts, log, 2)
	opts.OnSplits([]pipeline.Split{{ID: "a", Rows: 30000}, {ID: "b", Rows: 20000}}, nil)
	opts.Progress(engine.Progress{TotalRows: 50000})
	if !splitsSeen {
		t.Error("the options' own OnSplits was dropped")
	}
	if n := strings.Count(buf.String(), "expected duration"); n != 1 ||
		!strings.Contains(buf.String(), `msg="expected duration: 50,000 rows at 500/s (rate_limit over 2 shards): about 1 min 40 s"`) ||
		!strings.Contains(buf.String(), "seconds=100") {
		t.Fatalf("%d lines:\n%s", n, buf.String())
	}

	// Splits that do not count their rows: the first total, estimated.
	buf.Reset()
	opts = engine.Options{}
	logRunDuration(cfg, &opts, log, 1)
	opts.OnSplits([]pipeline.Split{{ID: "a", Rows: -1}}, nil)
	opts.Progress(engine.Progress{TotalRows: -1})
	if buf.Len() != 0 {
		t.Fatalf("logged without a count: %s", buf.String())
	}
	opts.Progress(engine.Progress{TotalRows: 1200, Estimated: true})
	opts.Progress(engine.Progress{TotalRows: 1300, Estimated: true})
	if n := strings.Count(buf.String(), "expected duration"); n != 1 ||
		!strings.Contains(buf.String(), "expected duration: about 1,200 rows (estimated) at 1,000/s: about 1 s") {
		t.Fatalf("%d lines:\n%s", n, buf.String())
	}

	// No rate limit: Segment's default. A file sink: nothing.
	buf.Reset()
	opts = engine.Options{}
	logRunDuration(loadTestConfig(t, "name: x\nsource: {file: {path: a.csv}}\nsink: {segment: {write_key: k}}\n"), &opts, log, 1)
	opts.OnSplits([]pipeline.Split{{ID: "a", Rows: 7200000}}, nil)
	if !strings.Contains(buf.String(), "expected duration: 7,200,000 rows at Segment's default of about 1,000 events/s per workspace (no request.rate_limit set): about 2 h") {
		t.Fatalf("%s", buf.String())
	}
	buf.Reset()
	opts = engine.Options{}
	logRunDuration(loadTestConfig(t, "name: x\nsource: {file: {path: a.csv}}\nsink: {file: {path: o.ndjson}}\n"), &opts, log, 1)
	if opts.OnSplits != nil || opts.Progress != nil {
		t.Error("a file sink has no rate to estimate from")
	}
}

// The run command logs it before "run starting", against a collector.
func TestRunCommandLogsItsDuration(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "orders.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeParquetOrders(f, 300); err != nil {
		t.Fatal(err)
	}
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
	defer srv.Close()
	t.Setenv(writeKeyVar, "KEY")
	cfg := filepath.Join(dir, "p.yaml")
	writeFile(t, cfg, "name: orders\nsource: {file: {path: "+filepath.Join(dir, "orders.parquet")+"}}\n"+
		"transforms:\n  - map: {type: track, event: event_name, userId: customer_id, anonymousId: anonymous_id, timestamp: created_at}\n"+
		"sink:\n  segment:\n    endpoint: "+srv.URL()+"\n    write_key: ${"+writeKeyVar+"}\n    request: {rate_limit: 100}\n"+
		"state: "+filepath.Join(dir, "state")+"\n")
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	i, j := strings.Index(stderr, "expected duration: 300 rows at 100/s: about 3 s"), strings.Index(stderr, "run starting")
	if i < 0 || j < i || strings.Count(stderr, "expected duration") != 1 {
		t.Fatalf("stderr:\n%s", stderr)
	}
}

// preview says it too, from the whole input's row count, not the rows it
// read.
func TestPreviewSaysTheDuration(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "orders.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeParquetOrders(f, 5000); err != nil {
		t.Fatal(err)
	}
	unsetenv(t, writeKeyVar)
	cfg := filepath.Join(dir, "p.yaml")
	writeFile(t, cfg, "name: orders\nsource: {file: {path: "+filepath.Join(dir, "orders.parquet")+"}}\n"+
		"transforms:\n  - map: {type: track, event: event_name, userId: customer_id, anonymousId: anonymous_id, timestamp: created_at}\n"+
		"  - integrations: {All: false, Amplitude: true}\n"+
		"sink:\n  segment:\n    write_key: ${"+writeKeyVar+"}\n    request: {rate_limit: 1000/s}\n")
	code, out, errs := runCLI(t, "", "preview", "--rows", "100", "--show", "0", cfg)
	if code != 0 || !strings.Contains(out, "read 100 rows") || !strings.Contains(out, "# duration: 5,000 rows at 1,000/s: about 5 s\n") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

func writeParquetOrders(f *os.File, rows int) error {
	defer f.Close()
	return sampledata.WriteOrdersParquet(f, rows, 1)
}
