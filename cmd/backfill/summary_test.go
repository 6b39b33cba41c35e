package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline/engine"
)

// segmentQuickstart is the quick start sent to a receiver that fails some
// requests, so the sink's counters have something to say.
func segmentQuickstart(t *testing.T) (cfg string, srv *segmenttest.Server) {
	t.Helper()
	srv = segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, Seed: 7, Fail500: 0.3, Fail429: 0.2, RetryAfter: "0"})
	t.Cleanup(srv.Close)
	cfg = sampleOrdersToSegment(t, t.TempDir(), "summary", srv.URL(),
		"    batch: {max_events: 100}\n    request: {retry: {initial_backoff: 1ms, max_backoff: 5ms}}\n")
	return cfg, srv
}

// The summary is in plain words, one aligned line per count: no raw
// counter names (status_0, splits) from the sink.
func TestSummaryIsInWords(t *testing.T) {
	cfg, _ := segmentQuickstart(t)
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	summary := stderr[strings.Index(stderr, "\nsummary: ok"):]
	var labels []string
	sc := bufio.NewScanner(strings.NewReader(strings.TrimPrefix(summary, "\n")))
	sc.Scan() // "summary: ok in ..."
	for sc.Scan() {
		line := sc.Text()
		// Two spaces, a label padded to 11, the value at column 14.
		if len(line) <= 13 || line[:2] != "  " || line[12] != ' ' || line[13] == ' ' {
			t.Errorf("line not aligned: %q", line)
		}
		labels = append(labels, strings.Fields(line)[0])
	}
	for _, raw := range []string{"status_", "rate_limited", "bytes_sent", "sink splits"} {
		if strings.Contains(summary, raw) {
			t.Errorf("the summary shows the raw counter %q:\n%s", raw, summary)
		}
	}
	if !strings.Contains(summary, "retried") || !strings.Contains(summary, "HTTP 200 ×") || !strings.Contains(summary, "HTTP 500 ×") {
		t.Errorf("the summary does not say what met the requests:\n%s", summary)
	}
	t.Logf("labels %v\n%s", labels, summary)
}

// With --log-format json every line on stderr is a JSON record, and the
// summary is one of them, holding the whole report.
func TestJSONLogsMakeTheSummaryOneObject(t *testing.T) {
	cfg, srv := segmentQuickstart(t)
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", "--log-format", "json", cfg)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	summaries := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec struct {
			Msg    string
			Report *engine.Report
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line that is not JSON: %q", line)
		}
		if rec.Msg == "summary" {
			summaries++
			if rec.Report == nil || rec.Report.RowsDelivered != srv.Stats().UniqueIDs || rec.Report.Status != "ok" {
				t.Fatalf("summary %s", line)
			}
		}
	}
	if summaries != 1 {
		t.Fatalf("%d summaries in\n%s", summaries, stderr)
	}
}

// The sink's rate limit is a line of its own: configured, or adapted to
// HTTP 429s, with the request size it came to; its raw names do not show.
func TestSummaryRateLimitLine(t *testing.T) {
	find := func(stats map[string]int64) string {
		for _, l := range sinkLines(stats) {
			if l[0] == "rate limit" {
				return l[1]
			}
			if strings.Contains(l[1], "per s") || strings.Contains(l[1], "cuts") || strings.Contains(l[1], "events now") {
				t.Errorf("raw counter shown: %v", l)
			}
		}
		return ""
	}
	if got := find(map[string]int64{"requests": 3}); got != "" {
		t.Errorf("no limit: %q", got)
	}
	if got := find(map[string]int64{"requests": 3, "rate_limit_events_per_s": 1000, "rate_limit_cuts": 0}); got != "1000 events/s" {
		t.Errorf("configured: %q", got)
	}
	got := find(map[string]int64{"requests": 30, "rate_limit_events_per_s": 287, "rate_limit_cuts": 4, "request_max_events_now": 156, "throttle_splits": 15})
	if got != "287 events/s at the end, adapted to HTTP 429s (lowered 4 times; requests of at most 156 messages)" {
		t.Errorf("adapted: %q", got)
	}
	for _, l := range sinkLines(map[string]int64{"requests": 30, "throttle_splits": 15}) {
		if l[0] == "requests" && !strings.Contains(l[1], "15 halved while HTTP 429s continued") {
			t.Errorf("requests: %q", l[1])
		}
	}
}

// sampleOrdersToSegment writes DIR/p.yaml: the bundled sample orders as
// track calls to endpoint, with sink, lines of the segment block after its
// write key (indented four spaces), and returns its path.
func sampleOrdersToSegment(t *testing.T, dir, name, endpoint, sink string) string {
	t.Helper()
	cfg := filepath.Join(dir, "p.yaml")
	yaml := `name: ` + name + `
source: {file: {path: ` + filepath.Join(repoRoot(t), "configs", "sample", "orders.parquet") + `}}
transforms:
  - map: {type: track, event: event_name, userId: customer_id, anonymousId: anonymous_id, timestamp: created_at}
sink:
  segment:
    endpoint: ` + endpoint + `
    write_key: KEY
` + sink + `state: ` + dir + `/state
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}
