package segmenttest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

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
