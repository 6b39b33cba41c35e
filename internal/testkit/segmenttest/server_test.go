package segmenttest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The receiver runs an HTTP server; every test must leave no goroutine of
// it (or of its clients) behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func post(t *testing.T, url, key string, body []byte, gz bool) (int, string) {
	t.Helper()
	if gz {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(body)
		w.Close()
		body = b.Bytes()
	}
	req, _ := http.NewRequest("POST", url+"/v1/batch", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func batch(msgs ...string) []byte {
	return []byte(`{"batch":[` + strings.Join(msgs, ",") + `],"sentAt":"2024-05-01T00:00:00.000Z"}`)
}

func track(id string) string {
	return fmt.Sprintf(`{"type":"track","messageId":%q,"userId":"u1","event":"Order","properties":{"a":1},"timestamp":"2023-01-01T00:00:00.000Z"}`, id)
}

func TestReceiverAcceptsValidatesAndCounts(t *testing.T) {
	s := NewServer(Options{WriteKeys: []string{"KEY"}})
	defer s.Close()

	if code, _ := post(t, s.URL(), "WRONG", batch(track("a")), false); code != 401 {
		t.Fatalf("wrong key: got %d, want 401", code)
	}
	if code, _ := post(t, s.URL(), "", batch(track("a")), false); code != 401 {
		t.Fatalf("no auth: got %d, want 401", code)
	}
	if code, body := post(t, s.URL(), "KEY", batch(track("a"), track("b")), true); code != 200 {
		t.Fatalf("gzip batch: %d %s", code, body)
	}
	post(t, s.URL(), "KEY", batch(track("a")), false)
	bad := []string{
		`{"type":"track","messageId":"n1","event":"E"}`,                         // no ids
		`{"type":"track","messageId":"n2","userId":"u"}`,                        // no event
		`{"type":"track","messageId":"n3","userId":"","event":"E"}`,             // empty id
		`{"type":"identify","messageId":"n4","userId":"u","traits":[1]}`,        // traits not an object
		`{"type":"bogus","messageId":"n5","userId":"u"}`,                        // type
		`{"type":"alias","messageId":"n6","userId":"u"}`,                        // previousId
		`{"type":"group","messageId":"n7","anonymousId":"a"}`,                   // groupId
		`{"type":"page","messageId":"n8","userId":"u","timestamp":"yesterday"}`, // timestamp
	}
	if code, _ := post(t, s.URL(), "KEY", batch(bad...), false); code != 200 {
		t.Fatalf("Segment answers 200 to invalid messages, got %d", code)
	}
	st := s.Stats()
	if st.Dropped != int64(len(bad)) {
		t.Errorf("dropped = %d, want %d (%v)", st.Dropped, len(bad), st.DroppedReasons)
	}
	if s.Count("a") != 2 || s.Count("b") != 1 || st.Duplicates != 1 || st.Messages != 3 {
		t.Errorf("counts a=%d b=%d dup=%d msgs=%d", s.Count("a"), s.Count("b"), st.Duplicates, st.Messages)
	}
	if st.Unauthorized != 2 || st.Gzipped != 1 || st.Violations != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestReceiverLimits(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	many := make([]string, MaxBatchEvents+1)
	for i := range many {
		many[i] = `{}`
	}
	if code, _ := post(t, s.URL(), "k", batch(many...), false); code != 400 {
		t.Errorf("2501 messages: got %d, want 400", code)
	}
	big := fmt.Sprintf(`{"type":"track","messageId":"x","userId":"u","event":"E","properties":{"p":%q}}`, strings.Repeat("x", MaxMessageBytes))
	if code, _ := post(t, s.URL(), "k", batch(big), true); code != 400 {
		t.Errorf("oversized message: got %d, want 400", code)
	}
	huge := make([]string, 20)
	for i := range huge {
		huge[i] = fmt.Sprintf(`{"type":"track","messageId":"h%d","userId":"u","event":"E","properties":{"p":%q}}`, i, strings.Repeat("y", 30_000))
	}
	if code, _ := post(t, s.URL(), "k", batch(huge...), true); code != 400 {
		t.Errorf("600 KB body: got %d, want 400", code)
	}
	if st := s.Stats(); st.Violations != 3 || st.Messages != 0 {
		t.Errorf("violations = %d (%v), messages = %d", st.Violations, s.ViolationList(), st.Messages)
	}
}

func TestReceiverFaultsAreDeterministic(t *testing.T) {
	run := func() []int {
		s := NewServer(Options{Seed: 7, Fail500: 0.2, Fail429: 0.2, Drop: 0.1, RetryAfter: "1"})
		defer s.Close()
		var codes []int
		for i := 0; i < 50; i++ {
			code, _ := post(t, s.URL(), "k", batch(track(fmt.Sprint(i))), false)
			codes = append(codes, code)
		}
		return codes
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different faults:\n%v\n%v", a, b)
	}
	n := map[int]int{}
	for _, c := range a {
		n[c]++
	}
	if n[500] == 0 || n[429] == 0 || n[0] == 0 || n[200] == 0 {
		t.Errorf("expected every fault kind in 50 requests: %v", n)
	}
}

// within fails t unless ch is closed soon; the bound only keeps a broken
// receiver from hanging the test.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(what)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Stored closes its channel when the request that brings the stored
// messages to n is stored, before that request is answered.
func TestStoredSignalsOnceNMessagesAreStored(t *testing.T) {
	s := NewServer(Options{})
	defer s.Close()
	if !closed(s.Stored(0)) {
		t.Fatal("Stored(0) is not closed at once")
	}
	three := s.Stored(3)
	if code, _ := post(t, s.URL(), "k", batch(track("a"), track("b")), false); code != 200 {
		t.Fatalf("first batch: %d", code)
	}
	// A message Segment would drop is not stored.
	post(t, s.URL(), "k", batch(`{"type":"track","messageId":"x","userId":"u"}`), false)
	if closed(three) {
		t.Fatal("Stored(3) closed after 2 messages")
	}
	if code, _ := post(t, s.URL(), "k", batch(track("a")), false); code != 200 {
		t.Fatalf("duplicate: %d", code)
	}
	if !closed(three) {
		t.Fatalf("Stored(3) still open once a duplicate made 3 stored messages: %+v", s.Stats())
	}
	if !closed(s.Stored(3)) {
		t.Fatal("Stored(3) is not closed at once when 3 are stored")
	}
}

// HoldAfter answers the first requests, then holds the next unanswered
// until Release.
func TestHoldAfterStallsUntilRelease(t *testing.T) {
	s := NewServer(Options{HoldAfter: 1})
	defer s.Close()
	if code, _ := post(t, s.URL(), "k", batch(track("a")), false); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	answered := make(chan int, 1)
	go func() {
		code, _ := post(t, s.URL(), "k", batch(track("b")), false)
		answered <- code
	}()
	within(t, s.Held(1), "the second request was not held")
	select {
	case code := <-answered:
		t.Fatalf("a held request was answered (%d) before Release", code)
	default:
	}
	if st := s.Stats(); st.Messages != 1 || st.Held != 1 {
		t.Fatalf("while holding: %d messages stored, %d held; want 1 and 1", st.Messages, st.Held)
	}
	s.Release()
	select {
	case code := <-answered:
		if code != 200 {
			t.Fatalf("released request: %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held request was not answered after Release")
	}
	if code, _ := post(t, s.URL(), "k", batch(track("c")), false); code != 200 {
		t.Fatalf("request after Release: %d", code)
	}
	if st := s.Stats(); st.Messages != 3 || st.Held != 1 {
		t.Fatalf("after Release: %d messages stored, %d held; want 3 and 1", st.Messages, st.Held)
	}
}

// A held request ends without any answer when its client gives up or the
// server closes: no empty 200 a client could take for a delivery.
func TestHeldRequestEndsWithoutAnswer(t *testing.T) {
	for _, how := range []string{"client gives up", "server closes"} {
		t.Run(how, func(t *testing.T) {
			s := NewServer(Options{HoldAfter: 1})
			post(t, s.URL(), "k", batch(track("a")), false)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			type result struct {
				code int
				err  error
			}
			res := make(chan result, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/v1/batch", bytes.NewReader(batch(track("b"))))
				req.SetBasicAuth("k", "")
				resp, err := client.Do(req)
				if err != nil {
					res <- result{err: err}
					return
				}
				resp.Body.Close()
				res <- result{code: resp.StatusCode}
			}()
			within(t, s.Held(1), "the request was not held")
			if how == "client gives up" {
				cancel()
			}
			// Close waits for the handlers: the held one must end.
			closedDone := make(chan struct{})
			go func() { s.Close(); close(closedDone) }()
			within(t, closedDone, "Close did not return: the held handler is still running")
			if r := <-res; r.err == nil {
				t.Fatalf("the held request got an answer: HTTP %d", r.code)
			}
			if st := s.Stats(); st.Messages != 1 {
				t.Fatalf("%d messages stored, want 1 (the held one is not)", st.Messages)
			}
		})
	}
}

func TestSplitBatch(t *testing.T) {
	body := []byte(` { "context" : {"a":[1,{"b":"]"}]}, "batch" : [ {"x":"a\"]},{"} , {"y":[1,2]},3 ,"s"] , "sentAt":"2024-01-01T00:00:00.000Z" } `)
	msgs, sentAt, err := splitBatch(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"x":"a\"]},{"}`, `{"y":[1,2]}`, `3`, `"s"`}
	if fmt.Sprintf("%q", msgs) != fmt.Sprintf("%q", want) || sentAt != "2024-01-01T00:00:00.000Z" {
		t.Errorf("got %q %q", msgs, sentAt)
	}
	if msgs, _, err := splitBatch([]byte(`{"batch":[ ]}`), nil); err != nil || len(msgs) != 0 {
		t.Errorf("empty batch: %q %v", msgs, err)
	}
	for _, bad := range []string{``, `[]`, `{"batch":[{"a":1}`, `{"batch":[{"a":"x}]}`, `{"batch":[1,]}`, `{"batch":[1 2]}`, `{"batch":[]} x`, `{"batch":[1],}`, `{"batch":[1] "sentAt":""}`} {
		if _, _, err := splitBatch([]byte(bad), nil); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// EventsPerSecond is a token bucket in events holding one second's worth:
// a request it cannot cover now is answered 429 (without Retry-After
// unless set) and takes nothing; one larger than the bucket never passes.
func TestEventsPerSecondLimit(t *testing.T) {
	s := NewServer(Options{EventsPerSecond: 10})
	defer s.Close()
	msgs := func(from, n int) []byte {
		var ms []string
		for i := from; i < from+n; i++ {
			ms = append(ms, strings.Replace(track(fmt.Sprint("m", i)), `"properties"`, `"sentAt":"2024-05-01T00:00:00.000Z","properties"`, 1))
		}
		return batch(ms...)
	}
	if code, _ := post(t, s.URL(), "k", msgs(0, 11), false); code != 429 {
		t.Fatalf("11 events against a bucket of 10: %d", code)
	}
	if code, body := post(t, s.URL(), "k", msgs(0, 8), false); code != 200 {
		t.Fatalf("8 events: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", s.URL()+"/v1/batch", bytes.NewReader(msgs(8, 8)))
	req.SetBasicAuth("k", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("8 more at once: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	time.Sleep(700 * time.Millisecond) // 7 tokens more: 9 in the bucket
	if code, body := post(t, s.URL(), "k", msgs(8, 8), false); code != 200 {
		t.Fatalf("after refilling: %d %s", code, body)
	}
	st := s.Stats()
	if st.Messages != 16 || st.RateLimited != 2 || st.ByStatus[429] != 2 || st.NoMessageSentAt != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Messages without their own sentAt are counted.
	s2 := NewServer(Options{})
	defer s2.Close()
	post(t, s2.URL(), "k", batch(track("x")), false)
	if st := s2.Stats(); st.NoMessageSentAt != 1 {
		t.Fatalf("a message without sentAt: %+v", st)
	}
}

// Status answers every authorized request with a fixed status and body.
func TestStatusAnswer(t *testing.T) {
	s := NewServer(Options{WriteKeys: []string{"KEY"}, Status: 404, StatusBody: `{"message":"source is disabled"}`})
	defer s.Close()
	if code, body := post(t, s.URL(), "KEY", batch(track("a")), false); code != 404 || !strings.Contains(body, "source is disabled") {
		t.Fatalf("got %d %s", code, body)
	}
	if code, _ := post(t, s.URL(), "OTHER", batch(track("a")), false); code != 401 {
		t.Fatalf("a wrong key still gets 401: %d", code)
	}
	if st := s.Stats(); st.Messages != 0 || st.ByStatus[404] != 1 {
		t.Fatalf("stats %+v", st)
	}
}
