package segment

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// Every row ends exactly once, delivered or dead-lettered, through 500s,
// 429s and dropped connections, with no request over Segment's limits.
func TestDeliversEveryRowOnceThroughFaults(t *testing.T) {
	for _, gz := range []bool{true, false} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, Seed: 42,
				Fail500: 0.1, Fail429: 0.1, Drop: 0.02, RetryAfter: "0"})
			defer srv.Close()
			dl := &deadLetters{}
			s := newSink(t, srv.URL(), fmt.Sprintf("gzip: %v\nrequest:\n  concurrency: 4\n  retry:\n    initial_backoff: 5ms\n    max_backoff: 50ms\n", gz))

			// 104k rows with gzip; fewer without (same paths, kinder to -race).
			const splits, batchRows = 4, 4096
			perSplit := 26_000
			if !gz {
				perSplit = 8_000
			}
			kind := func(row int) rowKind {
				switch {
				case row%9973 == 5:
					return noEvent
				case row%7919 == 3:
					return oversize
				case row%211 == 7:
					return big
				}
				return good
			}
			a := dl
			var wg sync.WaitGroup
			var writeErr error
			var mu sync.Mutex
			batches := 0
			for sp := 0; sp < splits; sp++ {
				split := fmt.Sprintf("split-%d", sp)
				for start := 0; start < perSplit; start += batchRows {
					batches++
				}
				wg.Add(1)
				go func() { // two or more writers, as the runner has
					defer wg.Done()
					for start := 0; start < perSplit; start += batchRows {
						n := min(batchRows, perSplit-start)
						if err := s.Write(context.Background(), a.Watch(makeBatch(mem, split, start, n, kind))); err != nil {
							mu.Lock()
							writeErr = err
							mu.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			if writeErr != nil {
				t.Fatal(writeErr)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			ok, failed := a.Check(t, batches)
			if failed != 0 || ok != batches {
				t.Errorf("acked ok=%d failed=%d of %d", ok, failed, batches)
			}

			// Every row: delivered exactly once, or dead-lettered with a reason.
			dead := map[string]pipeline.Reject{}
			for _, r := range dl.All() {
				if r.Reason == "" || r.Stage != "sink" {
					t.Errorf("dead letter without reason/stage: %+v", r)
				}
				dead[fmt.Sprint(r.Row)] = r
			}
			ids := srv.IDs()
			var wantDead, wantSent int
			for sp := 0; sp < splits; sp++ {
				split := fmt.Sprintf("split-%d", sp)
				for row := 0; row < perSplit; row++ {
					k := kind(row)
					got := ids[id(split, row)]
					if k == noEvent || k == oversize {
						wantDead++
						if got != 0 {
							t.Fatalf("%s row %d should be dead-lettered, was delivered %d times", split, row, got)
						}
						continue
					}
					wantSent++
					if got != 1 {
						t.Fatalf("%s row %d delivered %d times, want 1", split, row, got)
					}
				}
			}
			if got := len(dl.All()); got != wantDead {
				t.Errorf("%d dead letters, want %d", got, wantDead)
			}
			for _, r := range dl.All() {
				if kind(int(r.Row)) == oversize && !strings.Contains(r.Reason, "bytes") {
					t.Errorf("oversized row's reason does not say so: %q", r.Reason)
				}
			}
			st := srv.Stats()
			if st.Violations != 0 {
				t.Errorf("%d requests over Segment's limits: %v", st.Violations, srv.ViolationList())
			}
			if st.Dropped != 0 || st.Duplicates != 0 || st.BadSentAt != 0 {
				t.Errorf("receiver dropped %d (%v), saw %d duplicates, %d bad sentAt", st.Dropped, st.DroppedReasons, st.Duplicates, st.BadSentAt)
			}
			if int(st.Messages) != wantSent {
				t.Errorf("receiver got %d messages, want %d", st.Messages, wantSent)
			}
			if st.ByStatus[500] == 0 || st.ByStatus[429] == 0 || st.ByStatus[0] == 0 {
				t.Errorf("faults were not exercised: %v", st.ByStatus)
			}
			if gz && st.Gzipped != st.Requests {
				t.Errorf("%d of %d requests gzipped", st.Gzipped, st.Requests)
			}
			for ua := range srv.UserAgents() {
				if ua != "backfill/1.2.3" {
					t.Errorf("User-Agent %q", ua)
				}
			}
			ss := s.Stats()
			if ss["events_sent"] != int64(wantSent) || ss["dead_lettered"] != int64(wantDead) || ss["retries"] == 0 {
				t.Errorf("sink stats %v", ss)
			}
			t.Logf("rows=%d sent=%d dead=%d requests=%d statuses=%v", splits*perSplit, wantSent, wantDead, st.Requests, st.ByStatus)
		})
	}
}

func TestUnauthorizedStopsWithClearError(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"OTHER"}})
	defer srv.Close()
	s := newSink(t, srv.URL(), "")
	a := &deadLetters{}
	var err error
	n := 0
	for start := 0; start < 20_000 && err == nil; start += 1000 {
		err = s.Write(context.Background(), a.Watch(makeBatch(mem, "s", start, 1000, nil)))
		n++
	}
	cerr := s.Close(context.Background())
	if cerr == nil {
		t.Fatal("Close returned nil after 401s")
	}
	if !errors.Is(cerr, ErrConfig) || !strings.Contains(cerr.Error(), "write key") || !strings.Contains(cerr.Error(), "401") {
		t.Errorf("unclear error: %v", cerr)
	}
	if strings.Contains(cerr.Error(), "KEY") {
		t.Errorf("the error shows the write key: %v", cerr)
	}
	if ok, _ := a.Check(t, n); ok != 0 {
		t.Errorf("%d batches acked as delivered after 401", ok)
	}
	if srv.Stats().Messages != 0 {
		t.Error("messages accepted")
	}
}

func TestBadRequestSplitIsolatesOneMessage(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	bad := id("s", 777)
	srv := segmenttest.NewServer(segmenttest.Options{Reject: func(m segmenttest.Message) string {
		if m.MessageID == bad {
			return "unsupported property value"
		}
		return ""
	}})
	defer srv.Close()
	dl := &deadLetters{}
	s := newSink(t, srv.URL(), "")
	a := dl
	var batches []*pipeline.Batch
	for start := 0; start < 3000; start += 1000 {
		batches = append(batches, a.Watch(makeBatch(mem, "s", start, 1000, nil)))
	}
	sendAll(t, s, batches...)
	if ok, _ := a.Check(t, 3); ok != 3 {
		t.Errorf("batches acked ok: %d of 3", ok)
	}
	rows := dl.All()
	if len(rows) != 1 || rows[0].Row != 777 || rows[0].Status != 400 ||
		!strings.Contains(rows[0].Body, "unsupported property value") || !strings.Contains(string(rows[0].Message), bad) {
		t.Fatalf("dead letters: %+v", rows)
	}
	if st := srv.Stats(); st.Messages != 2999 || st.Duplicates != 0 {
		t.Errorf("receiver: %d messages, %d duplicates", st.Messages, st.Duplicates)
	}
	if s.Stats()["splits"] == 0 {
		t.Error("no split counted")
	}
}

// Cancelling the run stops promptly and acks only batches whose every row
// was delivered.
func TestCancelAcksOnlyDelivered(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	// The receiver answers the first 3 requests (a batch each) and holds
	// the rest unanswered, so some batches are delivered and the others
	// are in flight or queued when the run is cancelled.
	srv := segmenttest.NewServer(segmenttest.Options{HoldAfter: 3})
	defer srv.Close()
	s := newSink(t, srv.URL(), "batch:\n  max_events: 100\nrequest:\n  concurrency: 2\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &deadLetters{}
	// Cancel once a batch is acked as delivered: the cancel follows that
	// event, not a guess at how long delivery takes.
	var once sync.Once
	a.OnAck = func(_ string, err error) {
		if err == nil {
			once.Do(cancel)
		}
	}
	// Only a broken sink gets here: without it Write would block forever.
	watchdog := time.AfterFunc(time.Minute, func() {
		t.Error("no batch acked as delivered within a minute")
		cancel()
	})
	defer watchdog.Stop()
	const batches = 200
	written := 0
	for i := 0; i < batches; i++ {
		if err := s.Write(ctx, a.Watch(makeBatch(mem, "s", i*100, 100, nil))); err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("write: %v", err)
			}
			written++
			break
		}
		written++
	}
	start := time.Now()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 30*time.Second { // held requests would keep it forever
		t.Errorf("Close took %v after cancel", d)
	}
	ok, failed := a.Check(t, written)
	if ok == 0 || failed == 0 {
		t.Errorf("want some batches delivered and some not: ok=%d failed=%d", ok, failed)
	}
	for i := 0; i < written; i++ {
		key := fmt.Sprintf("s[%d:%d]", i*100, i*100+100)
		if n, err := a.AckOf(key); n == 1 && err == nil {
			for row := i * 100; row < i*100+100; row++ {
				if srv.Count(id("s", row)) != 1 {
					t.Fatalf("batch %s acked but row %d not delivered", key, row)
				}
			}
		}
	}
}

func TestRetriesExhaustedFailsWithoutAck(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{Fail500: 1})
	defer srv.Close()
	s := newSink(t, srv.URL(), "request:\n  retry:\n    max_attempts: 3\n    initial_backoff: 1ms\n    max_backoff: 5ms\n")
	a := &deadLetters{}
	if err := s.Write(context.Background(), a.Watch(makeBatch(mem, "s", 0, 500, nil))); err != nil {
		t.Fatal(err)
	}
	err := s.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("Close = %v", err)
	}
	if ok, failed := a.Check(t, 1); ok != 0 || failed != 1 {
		t.Errorf("ok=%d failed=%d", ok, failed)
	}
	if n := srv.Stats().ByStatus[500]; n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestRetryAfterIsHonouredWithoutSpendingBudget(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	// Every request's first attempt is a 429 with Retry-After: 0.05 s,
	// its second passes. max_attempts 1 would fail at the first 5xx, so
	// success proves 429s are not counted; the time, that each was
	// waited out. An isolated 429 changes neither the rate nor the size.
	rcv := segmenttest.NewHandler(segmenttest.Options{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", "0.05")
			http.Error(w, `{"code":"rate_limited"}`, http.StatusTooManyRequests)
			return
		}
		rcv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := newSink(t, srv.URL, "batch:\n  max_events: 50\nrequest:\n  concurrency: 1\n  retry:\n    max_attempts: 1\n")
	a := &deadLetters{}
	start := time.Now()
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 1000, nil)))
	if ok, _ := a.Check(t, 1); ok != 1 {
		t.Error("not acked")
	}
	if d := time.Since(start); d < 20*50*time.Millisecond {
		t.Errorf("20 429s with Retry-After 0.05 took %v", d)
	}
	st, ss := rcv.Stats(), s.Stats()
	if ss["status_429"] != 20 || st.Messages != 1000 || ss["rate_limit_cuts"] != 0 || ss["throttle_splits"] != 0 {
		t.Errorf("receiver %+v, sink %v", st, ss)
	}
}

// 429s that continue with Retry-After are still waited as told while the
// sink adapts.
func TestContinuedRetryAfterIsWaited(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{EventsPerSecond: 200, RetryAfter: "0.5"})
	defer srv.Close()
	s := newSink(t, srv.URL(), "batch:\n  max_events: 400\nrequest:\n  concurrency: 1\n")
	a := &deadLetters{}
	start := time.Now()
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 400, nil)))
	// 400 > the bucket's 200: two 429s waited 0.5 s each before the split.
	if d, st := time.Since(start), srv.Stats(); d < time.Second || st.UniqueIDs != 400 {
		t.Errorf("%v, %d delivered", d, st.UniqueIDs)
	}
}

func TestRateLimitHoldsEventsPerSecond(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "batch:\n  max_events: 200\nrequest:\n  rate_limit: 2000/s\n")
	a := &deadLetters{}
	start := time.Now()
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 3000, nil)))
	// A burst of one request (200), then 2,800 events at 2,000/s = 1.4 s.
	if d := time.Since(start); d < 1300*time.Millisecond || d > 20*time.Second { // the limit is the lower bound; a busy machine only adds
		t.Errorf("3000 events at 2000/s took %v", d)
	}
	if srv.Stats().Messages != 3000 {
		t.Error("not all delivered")
	}
}

// TestShardsShareTheRateLimit checks that each of 4 shards holds a
// quarter of the workspace's rate.
func TestShardsShareTheRateLimit(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSinkEnv(t, srv.URL(), "batch:\n  max_events: 100\nrequest:\n  rate_limit: 4000/s\n",
		&pipeline.Env{Name: "test", Shards: 4})
	a := &deadLetters{}
	start := time.Now()
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 1100, nil)))
	// A burst of one request (100), then 1,000 events at 1,000/s: 1 s
	// (at the unshared 4,000/s it would take 0.25 s).
	if d := time.Since(start); d < 900*time.Millisecond || d > 20*time.Second {
		t.Errorf("1100 events at 4000/s over 4 shards took %v", d)
	}
}

func TestFlushIntervalSendsPartialRequests(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "batch:\n  flush_interval: 100ms\n")
	defer s.Close(context.Background())
	b := makeBatch(mem, "s", 0, 10, nil)
	acked := acktest.Notify(b)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-acked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a partly filled request was not sent within flush_interval")
	}
}

func TestConfigRejectsValuesOverSegmentLimits(t *testing.T) {
	_, err := loadConf(t, "write_key: K\nbatch:\n  max_events: 3000\n  max_bytes: 600000\nmax_message_bytes: 40000\n")
	ces := config.AsConfigErrors(err)
	if len(ces) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for _, ce := range ces {
		if ce.Line == 0 || !strings.Contains(ce.Path, "/sink/segment/") {
			t.Errorf("unpositioned error: %+v", ce)
		}
	}
	if !strings.Contains(err.Error(), "max_events") || !strings.Contains(err.Error(), "2500") {
		t.Errorf("unclear: %v", err)
	}
	c, err := loadConf(t, "write_key: \"\"\nendpoint: ftp://x\n")
	if err != nil {
		t.Fatal(err)
	}
	_, err = OptionsFromConf(c)
	if ces := config.AsConfigErrors(err); len(ces) != 2 {
		t.Errorf("want errors for write_key and endpoint: %v", err)
	}
	if _, err := loadConf(t, "endpoint: http://x\n"); err == nil || !strings.Contains(err.Error(), "write_key") {
		t.Errorf("missing write_key: %v", err)
	}
	for in, want := range map[string]float64{"1000": 1000, "1000/s": 1000, "60000/m": 1000, "0": 0} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseRate("fast"); err == nil {
		t.Error("ParseRate(fast) accepted")
	}
}

func TestWriteAfterCloseIsRefused(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "")
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := &deadLetters{}
	if err := s.Write(context.Background(), a.Watch(makeBatch(mem, "s", 0, 10, nil))); err == nil {
		t.Fatal("Write after Close accepted")
	}
	if ok, failed := a.Check(t, 1); ok != 0 || failed != 1 {
		t.Errorf("ok=%d failed=%d", ok, failed)
	}
}

// A dead-letter file that refuses more rows (max_rejects) stops the run.
func TestDeadLetterRefusalStops(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "")
	a := &deadLetters{Max: 5}
	err := s.Write(context.Background(), a.Watch(makeBatch(mem, "s", 0, 100, func(int) rowKind { return noEvent })))
	if err == nil || !strings.Contains(err.Error(), "too many rejects") {
		t.Fatalf("Write = %v", err)
	}
	if err := s.Close(context.Background()); err == nil {
		t.Error("Close = nil")
	}
	if ok, failed := a.Check(t, 1); ok != 0 || failed != 1 {
		t.Errorf("ok=%d failed=%d", ok, failed)
	}
}

func TestNotFoundStopsWithEndpointError(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL()+"/wrong", "")
	if d := s.Destination(); d != srv.URL()+"/wrong/v1/batch" || strings.Contains(d, "KEY") {
		t.Fatalf("destination %q", d)
	}
	a := &deadLetters{}
	s.Write(context.Background(), a.Watch(makeBatch(mem, "s", 0, 10, nil)))
	err := s.Close(context.Background())
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "endpoint") {
		t.Fatalf("Close = %v", err)
	}
	if ok, _ := a.Check(t, 1); ok != 0 {
		t.Error("acked after 404")
	}
}

// An endpoint that redirects (http:// to https://, an old host) stops the
// run and says where to point it: following a 301 or 302 would turn the
// POST into a GET, whose 4xx would dead-letter every message.
func TestRedirectStopsWithTheNewLocation(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusPermanentRedirect} {
		moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, srv.URL()+r.URL.Path, code)
		}))
		dl := &deadLetters{}
		s := newSink(t, moved.URL, "")
		a := dl
		s.Write(context.Background(), a.Watch(makeBatch(mem, "s", 0, 10, nil)))
		err := s.Close(context.Background())
		moved.Close()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), fmt.Sprint(code)) || !strings.Contains(err.Error(), srv.URL()+"/v1/batch") {
			ok, _ := a.Check(t, 1)
			t.Fatalf("HTTP %d: Close = %v (acked %d, dead-lettered %d, delivered %d, receiver statuses %v)",
				code, err, ok, dl.Count(), srv.Stats().Messages, srv.Stats().ByStatus)
		}
		if ok, _ := a.Check(t, 1); ok != 0 || dl.Count() != 0 || srv.Stats().Messages != 0 {
			t.Fatalf("HTTP %d: acked %d, dead-lettered %d, delivered %d", code, ok, dl.Count(), srv.Stats().Messages)
		}
	}
}

// A collector behind a private certificate authority: without tls.ca_file
// the run stops at the first attempt with a hint (retrying cannot help);
// with it, every row is delivered over TLS.
func TestPrivateCertificateAuthority(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	rcv := segmenttest.NewHandler(segmenttest.Options{})
	srv := httptest.NewTLSServer(rcv)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	s := newSink(t, srv.URL, "")
	a := &deadLetters{}
	s.Write(context.Background(), a.Watch(makeBatch(mem, "s", 0, 10, nil)))
	err := s.Close(context.Background())
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "tls.ca_file") || s.Stats()["retries"] != 0 {
		t.Fatalf("untrusted certificate: %v after %d retries", err, s.Stats()["retries"])
	}
	if ok, _ := a.Check(t, 1); ok != 0 {
		t.Fatal("acked without delivery")
	}

	s = newSink(t, srv.URL, "tls: {ca_file: "+ca+"}\n")
	a = &deadLetters{}
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 10, nil)))
	if ok, _ := a.Check(t, 1); ok != 1 || rcv.Stats().Messages != 10 {
		t.Fatalf("with tls.ca_file: acked %d, delivered %d", ok, rcv.Stats().Messages)
	}

	s = newSink(t, srv.URL, "tls: {insecure_skip_verify: true}\n")
	a = &deadLetters{}
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 100, 10, nil)))
	if ok, _ := a.Check(t, 1); ok != 1 || rcv.Stats().Messages != 20 {
		t.Fatalf("with insecure_skip_verify: acked %d, delivered %d in all", ok, rcv.Stats().Messages)
	}

	if _, err := tlsConfig(ca+".missing", false); !errors.Is(err, ErrConfig) {
		t.Fatalf("a missing ca_file: %v", err)
	}
	if _, err := tlsConfig(filepath.Join(t.TempDir()), false); !errors.Is(err, ErrConfig) {
		t.Fatalf("a directory as ca_file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.der")
	os.WriteFile(notPEM, srv.Certificate().Raw, 0o644)
	if _, err := tlsConfig(notPEM, false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a DER file as ca_file: %v", err)
	}
}

func TestRetryAfterHeaders(t *testing.T) {
	s := &Sink{opts: Options{MaxRetryAfter: 10 * time.Second, DefaultRetryAfter: 2 * time.Second}}
	h := func(k, v string) http.Header { x := http.Header{}; x.Set(k, v); return x }
	cases := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{}, 2 * time.Second},
		{h("Retry-After", "3"), 3 * time.Second},
		{h("Retry-After", "0.5"), 500 * time.Millisecond},
		{h("Retry-After", "3600"), 10 * time.Second}, // capped
		{h("X-RateLimit-Reset", "4"), 4 * time.Second},
		{h("Retry-After", "junk"), 2 * time.Second},
	}
	for _, c := range cases {
		if got := s.retryAfter(c.h); got != c.want {
			t.Errorf("retryAfter(%v) = %v, want %v", c.h, got, c.want)
		}
	}
	future := h("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(5*time.Second).Unix(), 10))
	if got := s.retryAfter(future); got < 3*time.Second || got > 5*time.Second {
		t.Errorf("unix reset: %v", got)
	}
}

// Slow responses past request.timeout are retried like network errors.
// A request that times out is retried until every row arrives. A slow
// request outlasts any timeout here (the receiver stores nothing of a
// request its client gave up on while it waited); one the receiver stored
// just as the client gave up would be sent again, with the same ids, so
// copies are allowed: on a busy machine any request may be that late.
func TestTimeoutIsRetried(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{Seed: 1, Slow: 0.3, SlowDelay: time.Minute})
	defer srv.Close()
	s := newSink(t, srv.URL(), "batch:\n  max_events: 100\nrequest:\n  timeout: 500ms\n  retry:\n    initial_backoff: 1ms\n    max_backoff: 10ms\n")
	a := &deadLetters{}
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 2000, nil)))
	if ok, _ := a.Check(t, 1); ok != 1 {
		t.Error("not acked")
	}
	if st := srv.Stats(); st.UniqueIDs != 2000 {
		t.Errorf("unique %d of 2000 (duplicates %d)", st.UniqueIDs, st.Duplicates)
	}
	if s.Stats()["status_0"] == 0 {
		t.Errorf("no timeouts seen: %v", s.Stats())
	}
}

func TestImportPathAndRequestRate(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "path: /v1/import\ngzip: false\nbatch:\n  max_events: 100\nrequest:\n  requests_rate_limit: 20/s\n")
	a := &deadLetters{}
	start := time.Now()
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 1000, nil)))
	// 10 requests at 20/s, the first one free: at least 450 ms.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("10 requests at 20/s took %v", d)
	}
	if st := srv.Stats(); st.Messages != 1000 || st.Requests != 10 || st.Gzipped != 0 {
		t.Errorf("receiver: %+v", st)
	}
}

// Requests fill up to the configured limits exactly, never past them.
func TestRequestsHoldConfiguredLimits(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	for _, c := range []struct{ events, bytes int }{{7, 500_000}, {2500, 5_000}} {
		srv := segmenttest.NewServer(segmenttest.Options{MaxEvents: c.events, MaxBodyBytes: c.bytes})
		s := newSink(t, srv.URL(), fmt.Sprintf("batch:\n  max_events: %d\n  max_bytes: %d\n", c.events, c.bytes))
		a := &deadLetters{}
		for i := 0; i < 5; i++ {
			if err := s.Write(context.Background(), a.Watch(makeBatch(mem, "s", i*333, 333, nil))); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := srv.Stats()
		if st.Violations != 0 || st.Messages != 5*333 {
			t.Errorf("%+v: %d violations %v, %d messages", c, st.Violations, srv.ViolationList(), st.Messages)
		}
		// Full requests: the count is close to the minimum possible.
		if c.events == 7 && st.Requests > 5*333/7+5 {
			t.Errorf("%d requests for %d messages at 7 per request", st.Requests, 5*333)
		}
		if c.bytes == 5_000 && float64(st.BytesDecoded)/float64(st.Requests) < 4_000 {
			t.Errorf("requests average %d bytes with max_bytes 5000", st.BytesDecoded/st.Requests)
		}
		srv.Close()
	}
}

// A panic while encoding a batch (a dictionary index past its dictionary,
// as a corrupt Arrow stream can hold) fails that batch with a
// *pipeline.PanicError instead of ending the process; the rows of the
// batches before it, waiting in the same open request, are still sent.
func TestEncodePanicFailsOnlyItsBatch(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "")
	a := &deadLetters{}
	if err := s.Write(context.Background(), a.Watch(makeBatch(mem, "before", 0, 10, nil))); err != nil {
		t.Fatal(err)
	}
	bad := makeBatch(mem, "bad", 0, 10, nil)
	events := arrowtest.CorruptDictionary(t, mem, 10)
	bad.ReplaceRecord(arrowtest.WithColumn(bad.Record, "event", events))
	events.Release()
	a.Watch(bad)
	var pe *pipeline.PanicError
	if err := s.Write(context.Background(), bad); !errors.As(err, &pe) || pe.Where != "encoding messages" {
		t.Fatalf("corrupt batch: %v", err)
	}
	if err := s.Write(context.Background(), a.Watch(makeBatch(mem, "after", 0, 10, nil))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, failed := a.Check(t, 3); ok != 2 || failed != 1 {
		t.Errorf("ok=%d failed=%d", ok, failed)
	}
	for _, split := range []string{"before", "after"} {
		for row := 0; row < 10; row++ {
			if n := srv.Count(id(split, row)); n != 1 {
				t.Fatalf("%s row %d received %d times", split, row, n)
			}
		}
	}
}

// A panic while sending (here in the HTTP transport; a bug reading a
// response would do the same) stops the sink with a *pipeline.PanicError
// instead of ending the process; every batch is still acked exactly once.
func TestSenderPanicStopsTheSink(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{})
	defer srv.Close()
	s := newSink(t, srv.URL(), "batch:\n  max_events: 50\nrequest:\n  concurrency: 1\n")
	s.client.Transport = &panicOnRequest{next: s.client.Transport, n: 3}
	a := &deadLetters{}
	var werr error
	batches := 0
	for i := 0; i < 10 && werr == nil; i++ {
		batches++
		werr = s.Write(context.Background(), a.Watch(makeBatch(mem, "s", i*100, 100, nil)))
	}
	cerr := s.Close(context.Background())
	var pe *pipeline.PanicError
	if !errors.As(cerr, &pe) || pe.Where != "segment sender" || !strings.Contains(cerr.Error(), "transport bug") {
		t.Fatalf("close: %v (write: %v)", cerr, werr)
	}
	ok, failed := a.Check(t, batches)
	if failed == 0 || ok+failed != batches {
		t.Errorf("ok=%d failed=%d of %d", ok, failed, batches)
	}
}

// panicOnRequest panics on its nth round trip.
type panicOnRequest struct {
	next http.RoundTripper
	n    int32
	seen atomic.Int32
}

func (p *panicOnRequest) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.seen.Add(1) == p.n {
		panic("transport bug")
	}
	return p.next.RoundTrip(r)
}
