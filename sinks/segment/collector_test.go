package segment

// Tests of the sink against what real collectors do (rudder-server, the
// project's issue 16): sentAt on every message, the response's body in
// every error, adaptive throttling, origin kept, failures logged.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
	"github.com/backfillhq/backfill/sinks/message"
)

// attempt is one request as a collector received it: its batch-level
// sentAt and each message's messageId and sentAt.
type attempt struct {
	sentAt string
	msgs   []struct{ MessageID, SentAt string }
	failed bool // answered 503 after a pause
}

// recording wraps a receiver: it records every attempt's body and fails
// the first attempt of every request (by its first messageId) with a 503,
// after a pause, so every request is sent at least twice, later.
func recording(t *testing.T, next http.Handler) (*httptest.Server, func() []attempt) {
	var mu sync.Mutex
	var all []attempt
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		plain := raw
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Errorf("gzip: %v", err)
				return
			}
			plain, _ = io.ReadAll(zr)
		}
		var body struct {
			Batch []struct {
				MessageID string `json:"messageId"`
				SentAt    string `json:"sentAt"`
			} `json:"batch"`
			SentAt string `json:"sentAt"`
		}
		if err := json.Unmarshal(plain, &body); err != nil {
			t.Errorf("a body that is not JSON: %v", err)
		}
		a := attempt{sentAt: body.SentAt}
		defer func() {
			mu.Lock()
			all = append(all, a)
			mu.Unlock()
		}()
		for _, m := range body.Batch {
			a.msgs = append(a.msgs, struct{ MessageID, SentAt string }{m.MessageID, m.SentAt})
		}
		mu.Lock()
		first := len(a.msgs) > 0 && !seen[a.msgs[0].MessageID]
		if first {
			seen[a.msgs[0].MessageID] = true
		}
		mu.Unlock()
		if first {
			a.failed = true
			time.Sleep(5 * time.Millisecond) // the retry's sentAt is later
			http.Error(w, `{"code":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []attempt {
		mu.Lock()
		defer mu.Unlock()
		return append([]attempt(nil), all...)
	}
}

// withSentAt builds a batch of rows [start, start+n) of split whose rows
// in dataSentAt carry a sentAt of their own.
func withSentAt(mem memory.Allocator, split string, start, n int, dataSentAt map[int]string) *pipeline.Batch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "type", Type: arrow.BinaryTypes.String},
		{Name: "userId", Type: arrow.BinaryTypes.String},
		{Name: "event", Type: arrow.BinaryTypes.String},
		{Name: "sentAt", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Field(0).(*array.StringBuilder).Append("track")
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprint("u", i))
		b.Field(2).(*array.StringBuilder).Append("E")
		if v, ok := dataSentAt[start+i]; ok {
			b.Field(3).(*array.StringBuilder).Append(v)
		} else {
			b.Field(3).(*array.StringBuilder).AppendNull()
		}
	}
	return pipeline.NewBatch(split, int64(start), b.NewRecord())
}

// Every message carries its own sentAt (rudder-server drops the batch's),
// fresh on every attempt: equal to the batch's of that attempt, later on
// a retry, on whole requests and on the halves of a split one. A row whose
// data has a sentAt keeps it, and a dead letter's message holds none.
func TestEveryMessageHasAFreshSentAt(t *testing.T) {
	for _, gz := range []bool{true, false} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			bad := id("s", 1234)
			rcv := segmenttest.NewHandler(segmenttest.Options{KeepBodies: true, Reject: func(m segmenttest.Message) string {
				if m.MessageID == bad {
					return "a message the collector refuses"
				}
				return ""
			}})
			srv, attempts := recording(t, rcv)
			own := map[int]string{7: "2024-01-01T00:00:01+01:00", 2501: "2024-01-02T00:00:00Z"}
			s := newSink(t, srv.URL, fmt.Sprintf("gzip: %v\nbatch:\n  max_events: 500\nrequest:\n  retry:\n    initial_backoff: 1ms\n    max_backoff: 5ms\n", gz))
			dl := &deadLetters{}
			start := time.Now()
			sendAll(t, s, dl.Watch(withSentAt(mem, "s", 0, 3000, own)))
			end := time.Now()

			if st := rcv.Stats(); st.Messages != 2999 || st.NoMessageSentAt != 0 || st.BadSentAt != 0 {
				t.Fatalf("receiver: %d messages, %d without their own sentAt, %d bad batch sentAt", st.Messages, st.NoMessageSentAt, st.BadSentAt)
			}
			for row := 0; row < 3000; row++ {
				if row == 1234 {
					continue // refused: in the dead letters
				}
				body := rcv.Body(id("s", row))
				var m struct{ SentAt string }
				if err := json.Unmarshal(body, &m); err != nil || bytes.Count(body, []byte(`"sentAt"`)) != 1 {
					t.Fatalf("row %d: %v %s", row, err, body)
				}
				at, err := time.Parse(time.RFC3339Nano, m.SentAt)
				switch want, ok := own[row]; {
				case ok:
					w, _ := time.Parse(time.RFC3339, want)
					if !at.Equal(w) || len(m.SentAt) != 24 {
						t.Fatalf("row %d: the data's sentAt %q became %q", row, want, m.SentAt)
					}
				case err != nil || at.Before(start.Truncate(time.Millisecond)) || at.After(end):
					t.Fatalf("row %d: sentAt %q is not the time of sending (%v to %v)", row, m.SentAt, start, end)
				}
			}
			// Each attempt stamps its time on the batch and on every
			// message: a retry after a failed attempt has a later one (a
			// split half sent at once may share the millisecond).
			type prev struct {
				at     time.Time
				failed bool
			}
			last := map[string]prev{}
			splits := 0
			for _, a := range attempts() {
				if len(a.msgs) < 500 {
					splits++
				}
				batchAt, err := time.Parse(time.RFC3339Nano, a.sentAt)
				if err != nil {
					t.Fatalf("batch sentAt %q", a.sentAt)
				}
				for _, m := range a.msgs {
					if m.MessageID == id("s", 7) || m.MessageID == id("s", 2501) {
						continue // the data's own
					}
					if m.SentAt != a.sentAt {
						t.Fatalf("message %s has sentAt %q in a request sent at %q", m.MessageID, m.SentAt, a.sentAt)
					}
					if p, ok := last[m.MessageID]; ok && (batchAt.Before(p.at) || p.failed && !batchAt.After(p.at)) {
						t.Fatalf("message %s sent again with sentAt %v after %+v", m.MessageID, batchAt, p)
					}
					last[m.MessageID] = prev{batchAt, a.failed}
				}
			}
			if splits == 0 {
				t.Fatal("no request was split: the scratch path was not exercised")
			}
			rows := dl.All()
			if len(rows) != 1 || rows[0].Row != 1234 || bytes.Contains(rows[0].Message, []byte("sentAt")) {
				t.Fatalf("dead letters %+v", rows)
			}
		})
	}
}

// Every 4xx and 5xx error and dead letter quotes the status and the start
// of the response, secrets removed, and keeps its hint.
func TestErrorsQuoteTheResponse(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	const key = "wk-secret-7f3a"
	run := func(t *testing.T, opts segmenttest.Options, extra string) (*deadLetters, error) {
		t.Helper()
		srv := segmenttest.NewServer(opts)
		defer srv.Close()
		c, err := loadConf(t, "endpoint: "+srv.URL()+"\nwrite_key: "+key+"\n"+extra)
		if err != nil {
			t.Fatal(err)
		}
		o, err := OptionsFromConf(c)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(o, &pipeline.Env{Name: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		dl := &deadLetters{}
		s.Write(context.Background(), dl.Watch(makeBatch(mem, "s", 0, 10, nil)))
		return dl, s.Close(context.Background())
	}
	check := func(t *testing.T, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%q lacks %q", text, w)
			}
		}
		if strings.Contains(text, key) {
			t.Errorf("the write key shows: %q", text)
		}
	}

	t.Run("401", func(t *testing.T) {
		_, err := run(t, segmenttest.Options{WriteKeys: []string{"other"}}, "")
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("Close = %v", err)
		}
		check(t, err.Error(), "HTTP 401", "Invalid write key", "check write_key", "region")
	})
	t.Run("404 from a disabled source", func(t *testing.T) {
		_, err := run(t, segmenttest.Options{Status: 404, StatusBody: `{"message":"source is disabled"}`}, "")
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("Close = %v", err)
		}
		check(t, err.Error(), "HTTP 404", "source is disabled", "check endpoint and path")
	})
	t.Run("400 dead letter", func(t *testing.T) {
		dl, err := run(t, segmenttest.Options{Reject: func(m segmenttest.Message) string {
			if m.MessageID == id("s", 3) {
				return "tracking plan: event not allowed"
			}
			return ""
		}}, "")
		if err != nil {
			t.Fatal(err)
		}
		rows := dl.All()
		if len(rows) != 1 || rows[0].Status != 400 {
			t.Fatalf("dead letters %+v", rows)
		}
		check(t, rows[0].Reason, "HTTP 400", "tracking plan: event not allowed")
	})
	t.Run("5xx retries spent, a long body echoing the key", func(t *testing.T) {
		long := `{"error":"upstream ` + key + ` ` + strings.Repeat("x", 500) + `"}`
		_, err := run(t, segmenttest.Options{Status: 502, StatusBody: long},
			"request:\n  retry:\n    max_attempts: 2\n    initial_backoff: 1ms\n    max_backoff: 2ms\n")
		if err == nil {
			t.Fatal("Close = nil")
		}
		check(t, err.Error(), "HTTP 502", `{"error":"upstream `, "...")
		if n := len(err.Error()); n > 600 {
			t.Errorf("the error quotes %d bytes: %q", n, err)
		}
	})
	t.Run("5xx whose body has the key across the cut", func(t *testing.T) {
		// Redacted before it is cut: a cut first would leave half the key.
		body := strings.Repeat("x", excerptBytes-5) + key + strings.Repeat("y", 100)
		_, err := run(t, segmenttest.Options{Status: 503, StatusBody: body},
			"request:\n  retry:\n    max_attempts: 1\n")
		if err == nil {
			t.Fatal("Close = nil")
		}
		check(t, err.Error(), "HTTP 503")
		if strings.Contains(err.Error(), key[:5]) {
			t.Errorf("part of the write key shows: %q", err)
		}
	})
	t.Run("429 on one message, budget spent", func(t *testing.T) {
		_, err := run(t, segmenttest.Options{Status: 429, StatusBody: `{"message":"too many requests for source"}`},
			"batch:\n  max_events: 1\nrequest:\n  retry:\n    max_attempts: 2\n    initial_backoff: 1ms\n    max_backoff: 2ms\n    default_retry_after: 1ms\n")
		if err == nil {
			t.Fatal("Close = nil")
		}
		check(t, err.Error(), "HTTP 429", "too many requests for source", "after 2 attempts")
	})
}

// A collector that admits fewer events per second than one request holds
// (rudder-server's token bucket, 429 without Retry-After): requests get
// smaller and the rate drops until requests pass; every row is delivered.
// Before, the sink resent the same 2,500-event request every second.
func TestThrottleBelowOneRequest(t *testing.T) {
	for _, tc := range []struct {
		name, extra, retryAfter string
		ceiling                 int64
		batch                   int // rows per batch, 3 batches
	}{
		{name: "default settings, no Retry-After", batch: 1000},
		{name: "rate_limit above the collector's, Retry-After", extra: "request:\n  rate_limit: 1000/s\n", retryAfter: "1", ceiling: 1000, batch: 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			srv := segmenttest.NewServer(segmenttest.Options{EventsPerSecond: 300, RetryAfter: tc.retryAfter})
			defer srv.Close()
			var logs syncBuffer
			c, err := loadConf(t, "endpoint: "+srv.URL()+"\nwrite_key: KEY\n"+tc.extra)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := OptionsFromConf(c)
			if err != nil {
				t.Fatal(err)
			}
			if d := DefaultOptions(); opts.MaxEvents != d.MaxEvents || opts.Concurrency != d.Concurrency || opts.FlushInterval != d.FlushInterval {
				t.Fatalf("not the default batch settings: %+v", opts)
			}
			s, err := New(opts, &pipeline.Env{Name: "test", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := s.Open(ctx); err != nil {
				t.Fatal(err)
			}
			a := &deadLetters{}
			var maxRate atomic.Int64
			stop := make(chan struct{})
			go func() { // the gauge, as the progress line reads it
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if r := s.Stats()["rate_limit_events_per_s"]; r > maxRate.Load() {
						maxRate.Store(r)
					}
				}
			}()
			start := time.Now()
			for i := 0; i < 3; i++ {
				if err := s.Write(ctx, a.Watch(makeBatch(mem, "s", i*tc.batch, tc.batch, nil))); err != nil {
					t.Fatal(err)
				}
			}
			err = s.Close(ctx)
			close(stop)
			took := time.Since(start)
			st, ss := srv.Stats(), s.Stats()
			if err != nil {
				t.Fatalf("Close after %v: %v (receiver %+v, sink %v)", took, err, st, ss)
			}
			if ok, _ := a.Check(t, 3); ok != 3 || st.UniqueIDs != int64(3*tc.batch) || st.Violations != 0 {
				t.Fatalf("acked %d of 3, received %d of %d", ok, st.UniqueIDs, 3*tc.batch)
			}
			if st.RateLimited == 0 || ss["rate_limit_cuts"] == 0 || ss["throttle_splits"] == 0 || ss["rate_limit_events_per_s"] == 0 {
				t.Fatalf("no adaptation seen: receiver %+v, sink %v", st, ss)
			}
			if tc.ceiling > 0 && maxRate.Load() > tc.ceiling {
				t.Fatalf("the rate rose to %d, above rate_limit %d", maxRate.Load(), tc.ceiling)
			}
			if !strings.Contains(logs.String(), "HTTP 429s continue") {
				t.Errorf("the slow-down was not logged:\n%s", logs.String())
			}
			t.Logf("%v: %d requests, %d refused; sink %v", took.Round(time.Millisecond), st.Requests, st.RateLimited, ss)
		})
	}
}

// The throttle's arithmetic: a cut halves the rate once for the requests
// in flight, the request size follows, and deliveries raise the rate
// additively, never above a configured ceiling.
func TestThrottleAIMD(t *testing.T) {
	t0 := time.Now()
	th := newThrottle(1000, 2500)
	if th.maxEvents() != 2500 {
		t.Fatal(th.maxEvents())
	}
	cut, r, size := th.limited(2500, t0, t0.Add(time.Second), true)
	if !cut || r != 500 || size != 500 {
		t.Fatalf("first cut: %v %v %d", cut, r, size)
	}
	// A request attempted before that cut does not cut again.
	if cut, r, _ := th.limited(100, t0.Add(time.Millisecond), t0.Add(time.Second), false); cut || r != 500 {
		t.Fatalf("a second signal of one round: %v %v", cut, r)
	}
	if cut, r, size := th.limited(500, t0.Add(2*time.Second), t0.Add(3*time.Second), true); !cut || r != 250 || size != 250 {
		t.Fatalf("second cut: %v %v %d", cut, r, size)
	}
	// Back to the rate it was cut from after 5 seconds of sending: 1,875
	// events from 250/s rising to 500/s.
	for i := 0; i < 75; i++ {
		th.delivered(25)
	}
	m := map[string]int64{}
	th.stats(m)
	if r := m["rate_limit_events_per_s"]; r < 480 || r > 520 || m["rate_limit_cuts"] != 2 {
		t.Fatalf("after 1,250 events: %v", m)
	}
	for i := 0; i < 10000; i++ {
		th.delivered(250)
	}
	m = map[string]int64{}
	th.stats(m)
	if _, small := m["request_max_events_now"]; m["rate_limit_events_per_s"] != 1000 || th.maxEvents() != 2500 || small {
		t.Fatalf("recovered: %v", m)
	}

	// Without a configured limit: unlimited until 429s continue, then
	// half what was being sent: 4,000 events in the one second so far.
	un := newThrottle(0, 2500)
	un.attempt(4000, t0)
	m = map[string]int64{}
	un.stats(m)
	if _, ok := m["rate_limit_events_per_s"]; ok || un.wait(context.Background(), 1e6) != nil {
		t.Fatalf("unlimited: %v", m)
	}
	if cut, r, size := un.limited(2500, t0, t0.Add(time.Second), true); !cut || r != 2000 || size != 1250 {
		t.Fatalf("first cut without a limit: %v %v %d", cut, r, size)
	}
}

// At the default log level the first failure of each kind is a warning
// with the status and the start of the response; later ones are counted
// and summed up at most every 10 s (here shortened), and at Close.
func TestFirstFailureIsAWarning(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{Seed: 5, Fail500: 0.4, Drop: 0.1})
	defer srv.Close()
	var logs syncBuffer
	c, err := loadConf(t, "endpoint: "+srv.URL()+"\nwrite_key: KEY\nbatch:\n  max_events: 50\nrequest:\n  retry:\n    initial_backoff: 1ms\n    max_backoff: 5ms\n    max_attempts: 30\n")
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := OptionsFromConf(c)
	// The run's logger at the default level, info.
	s, err := New(opts, &pipeline.Env{Name: "test", Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	s.warn.every = 20 * time.Millisecond
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := &deadLetters{}
	sendAll(t, s, a.Watch(makeBatch(mem, "s", 0, 3000, nil)))
	out := logs.String()
	if n := strings.Count(out, `msg="segment: first HTTP 500 from `+srv.URL()+`/v1/batch"`); n != 1 {
		t.Fatalf("%d first-500 warnings:\n%s", n, out)
	}
	for _, want := range []string{`level=WARN msg="segment: first HTTP 500`, `status=500`, `response="{\"code\":\"internal\"}"`,
		`msg="segment: first network error posting to `, `msg="segment: failed attempts`, "http_500="} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=DEBUG") || strings.Count(out, "\n") > 100 {
		t.Errorf("too much at info level:\n%s", out)
	}
	if srv.Stats().UniqueIDs != 3000 {
		t.Fatalf("delivered %d", srv.Stats().UniqueIDs)
	}
}

// The segment sink keeps the data's context.library by default, and sets
// its own on every message with library: backfill.
func TestLibraryOption(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	for _, tc := range []struct{ conf, want string }{
		{"", `{"name":"analytics.js","version":"4.1.0"}`},
		{"library: backfill\n", `{"name":"backfill","version":"1.2.3"}`},
	} {
		srv := segmenttest.NewServer(segmenttest.Options{KeepBodies: true})
		s := newSink(t, srv.URL(), tc.conf)
		schema := arrow.NewSchema([]arrow.Field{
			{Name: "type", Type: arrow.BinaryTypes.String},
			{Name: "userId", Type: arrow.BinaryTypes.String},
			{Name: "event", Type: arrow.BinaryTypes.String},
			{Name: "context", Type: record.JSON},
		}, nil)
		rb := array.NewRecordBuilder(mem, schema)
		for i := 0; i < 5; i++ {
			rb.Field(0).(*array.StringBuilder).Append("track")
			rb.Field(1).(*array.StringBuilder).Append("u")
			rb.Field(2).(*array.StringBuilder).Append("E")
			record.AppendJSON(rb.Field(3).(*array.ExtensionBuilder), []byte(`{"ip":"1.2.3.4","library":{"name":"analytics.js","version":"4.1.0"}}`))
		}
		b := pipeline.NewBatch("s", 0, rb.NewRecord())
		rb.Release()
		a := &deadLetters{}
		sendAll(t, s, a.Watch(b))
		var m struct {
			Context struct{ Library json.RawMessage }
		}
		body := srv.Body(id("s", 2))
		if err := json.Unmarshal(body, &m); err != nil || string(m.Context.Library) != tc.want {
			t.Errorf("%q: library %s in %s", tc.conf, m.Context.Library, body)
		}
		srv.Close()
	}
	o := DefaultOptions()
	o.WriteKey, o.Library = "k", "mine"
	if _, err := New(o, nil); err == nil || !strings.Contains(err.Error(), message.LibraryKeep) {
		t.Errorf("library: mine: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the sink's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
