package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline/engine"
)

// The log view gives the total, an ETA and whether the total is estimated;
// without a total it gives neither.
func TestProgressLogLines(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, "log", slog.New(slog.NewTextHandler(&out, nil)))
	v.update(engine.Progress{Rows: engine.Rows{Read: 1000}, Elapsed: 10 * time.Second, TotalRows: -1, SplitsAll: 4})
	v.update(engine.Progress{Rows: engine.Rows{Read: 1000}, Elapsed: 10 * time.Second, TotalRows: 5000, SplitsDone: 1, SplitsAll: 4})
	v.update(engine.Progress{Rows: engine.Rows{Read: 1000}, Elapsed: 10 * time.Second, TotalRows: 3000, Estimated: true, SplitsDone: 1, SplitsAll: 4})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	if strings.Contains(lines[0], "eta=") || strings.Contains(lines[0], "total=") {
		t.Errorf("no total, yet: %s", lines[0])
	}
	if !strings.Contains(lines[1], "total=5000 eta=40s") || strings.Contains(lines[1], "estimated") {
		t.Errorf("exact total: %s", lines[1])
	}
	if !strings.Contains(lines[2], "total=3000 eta=20s estimated=true") {
		t.Errorf("estimated total: %s", lines[2])
	}
}

// The bar keeps one bar while an estimate moves, and shows that it is one.
func TestProgressBarFollowsAnEstimate(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, "bar", slog.Default())
	v.update(engine.Progress{Rows: engine.Rows{Read: 100}, TotalRows: 1000, Estimated: true, SplitsAll: 2})
	bar := v.bar
	v.update(engine.Progress{Rows: engine.Rows{Read: 200}, TotalRows: 1200, Estimated: true, SplitsAll: 2})
	if v.bar != bar || v.total != 1200 || v.bar.GetMax64() != 1200 {
		t.Errorf("bar replaced or length not moved: same=%v total=%d max=%d", v.bar == bar, v.total, v.bar.GetMax64())
	}
	if d := v.bar.State().Description; !strings.Contains(d, "total estimated") {
		t.Errorf("bar does not say the total is estimated: %q", d)
	}
	v.update(engine.Progress{Rows: engine.Rows{Read: 300}, TotalRows: 1200, SplitsAll: 2})
	if d := v.bar.State().Description; strings.Contains(d, "estimated") {
		t.Errorf("an exact total still says estimated: %q", d)
	}
	v.done()
}

// The log line and the bar show the sink's rate limit in force, and say
// when it was lowered after HTTP 429s.
func TestProgressShowsTheSinkRateLimit(t *testing.T) {
	var out bytes.Buffer
	v := newProgressView(&out, "log", slog.New(slog.NewTextHandler(&out, nil)))
	v.update(engine.Progress{Rows: engine.Rows{Read: 1000, Delivered: 600}, Elapsed: 10 * time.Second, TotalRows: -1,
		Sink: map[string]int64{"rate_limit_events_per_s": 287, "rate_limit_cuts": 3}})
	v.update(engine.Progress{Rows: engine.Rows{Read: 1000, Delivered: 600}, Elapsed: 10 * time.Second, TotalRows: -1,
		Sink: map[string]int64{"requests": 4}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "rate_limit=287/s") || strings.Contains(lines[1], "rate_limit") {
		t.Fatalf("log lines:\n%s", out.String())
	}
	var bar bytes.Buffer
	b := newProgressView(&bar, "bar", slog.Default())
	b.update(engine.Progress{Rows: engine.Rows{Read: 100}, TotalRows: 1000, Sink: map[string]int64{"rate_limit_events_per_s": 287, "rate_limit_cuts": 3}})
	if d := b.bar.State().Description; !strings.Contains(d, "at most 287 events/s (slowed by HTTP 429s)") {
		t.Errorf("bar: %q", d)
	}
	b.done()
}
