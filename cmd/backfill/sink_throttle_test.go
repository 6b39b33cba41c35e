package main

import (
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
)

// A run against a collector that admits fewer events a second than one
// request holds (rudder-server's token bucket, 429 without Retry-After),
// with the default batch settings: every row is delivered, the first 429
// is a warning at the default log level (with the response), and the
// summary says what rate the sink came to. default_retry_after is short
// so that the code before, which resent the same request until 1,000
// 429s, fails fast instead of for 17 minutes.
func TestSinkThrottledRun(t *testing.T) {
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, EventsPerSecond: 1500})
	t.Cleanup(srv.Close)
	cfg := sampleOrdersToSegment(t, t.TempDir(), "throttled", srv.URL(), "    request: {retry: {default_retry_after: 1ms}}\n")
	start := time.Now()
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != exitOK {
		t.Fatalf("exit %d after %v\n%s", code, time.Since(start), stderr)
	}
	if st := srv.Stats(); st.UniqueIDs != 3000 || st.RateLimited == 0 {
		t.Fatalf("receiver: %+v", st)
	}
	for _, want := range []string{
		`level=WARN msg="segment: first HTTP 429 from ` + srv.URL() + `/v1/batch" status=429 response="{\"code\":\"rate_limited\"`,
		`level=WARN msg="segment: HTTP 429s continue: sending less often and in smaller requests`,
		"halved while HTTP 429s continued",
		"events/s at the end, adapted to HTTP 429s (lowered",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr)
		}
	}
	t.Logf("%v\n%s", time.Since(start), stderr)
}
