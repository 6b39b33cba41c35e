package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline/engine"
)

func TestMetricsServeRunCounters(t *testing.T) {
	m := newRunMetrics("orders")
	addr, stop, err := serveMetrics("127.0.0.1:0", m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m.update(engine.Progress{Rows: engine.Rows{Read: 1200, Delivered: 1090, Rejected: 60, Filtered: 40, Unacked: 10}, TotalRows: 5000, SplitsDone: 2, SplitsAll: 7,
		Sink: map[string]int64{"requests": 12, "retries": 3, "status_200": 10, "status_429": 2, "status_0": 1,
			"rate_limit_events_per_s": 287, "request_max_events_now": 156, "rate_limit_cuts": 4},
		CheckpointSaveFailures: 4, LastCheckpoint: time.UnixMilli(1764547200500)})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`backfill_rows_read_total{pipeline="orders"} 1200`,
		`backfill_rows_delivered_total{pipeline="orders"} 1090`,
		`backfill_rows_rejected_total{pipeline="orders"} 60`,
		`backfill_rows_filtered_total{pipeline="orders"} 40`,
		`backfill_rows_unacknowledged{pipeline="orders"} 10`,
		`backfill_rows_expected{pipeline="orders"} 5000`,
		`backfill_splits_done{pipeline="orders"} 2`,
		`backfill_splits{pipeline="orders"} 7`,
		`backfill_sink_requests_total{pipeline="orders"} 12`,
		`backfill_sink_retries_total{pipeline="orders"} 3`,
		`backfill_sink_responses_total{code="429",pipeline="orders"} 2`,
		`backfill_sink_responses_total{code="0",pipeline="orders"} 1`,
		// Gauges: levels, not counts, and named without _total.
		"# TYPE backfill_sink_rate_limit_events_per_s gauge",
		`backfill_sink_rate_limit_events_per_s{pipeline="orders"} 287`,
		"# TYPE backfill_sink_request_max_events_now gauge",
		`backfill_sink_request_max_events_now{pipeline="orders"} 156`,
		"# TYPE backfill_sink_rate_limit_cuts_total counter",
		`backfill_sink_rate_limit_cuts_total{pipeline="orders"} 4`,
		`backfill_checkpoint_save_failures_total{pipeline="orders"} 4`,
		`backfill_checkpoint_last_success_timestamp_seconds{pipeline="orders"} 1.7645472005e+09`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		flag, index string
		shards      int
		i, n        int
		err         string
	}{
		{flag: "", i: 0, n: 1},
		{flag: "2/4", i: 2, n: 4},
		{flag: "0/1", i: 0, n: 1},
		{flag: "4/4", err: "want i/N"},
		{flag: "x/4", err: "want i/N"},
		{flag: "1", err: "want i/N"},
		{shards: 8, index: "5", i: 5, n: 8},
		{shards: 8, err: "JOB_COMPLETION_INDEX"},
	} {
		t.Setenv("JOB_COMPLETION_INDEX", tc.index)
		i, n, err := parseShard(tc.flag, tc.shards)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q/%d: got %v, want %q", tc.flag, tc.shards, err, tc.err)
			}
			continue
		}
		if err != nil || i != tc.i || n != tc.n {
			t.Errorf("%q/%d: got %d/%d %v", tc.flag, tc.shards, i, n, err)
		}
	}
}
