package message

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

const ours = `{"name":"backfill","version":"1.2.3"}`

// libraryOf returns the raw JSON of a message's context.library.
func libraryOf(t *testing.T, msg []byte) string {
	t.Helper()
	var m struct {
		Context map[string]json.RawMessage `json:"context"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if n := bytes.Count(msg, []byte(`"library"`)); n != 1 {
		t.Fatalf("%d library keys in %s", n, msg)
	}
	return string(m.Context["library"])
}

// The data's context.library says where an event came from (analytics.js
// 4.1.0 in a Segment archive): it is kept, in whatever form the data
// holds it, and only a row without one gets this tool's. library: backfill
// (OwnLibrary) sets this tool's on every row.
func TestContextLibraryIsKept(t *testing.T) {
	archived := `{"name":"analytics.js","version":"4.1.0"}`
	ctxType := arrow.StructOf(
		arrow.Field{Name: "ip", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "library", Type: arrow.StructOf(arrow.Field{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true})
	cases := []struct {
		name string
		cols []col
		keep []string // per row, the library kept
	}{
		{"a context json column, per row", tr2(js("context", `{"ip":"1.1.1.1","library":`+archived+`}`, `{"ip":"2.2.2.2"}`)),
			[]string{archived, ours}},
		{"a context json column whose library is null or empty", tr2(js("context", `{"library":null}`, `{"library":{}}`)),
			[]string{ours, ours}},
		{"a context json column and a sub-path column", tr2(js("context", `{"library":`+archived+`}`, `{"ip":"1"}`), str("context.locale", "fr", "de")),
			[]string{archived, ours}},
		{"a context.library json column", tr2(js("context.library", archived, nil)), []string{archived, ours}},
		{"context.library sub-path columns", tr2(str("context.library.name", "analytics-python", nil), str("context.library.version", "2.3", nil)),
			[]string{`{"name":"analytics-python","version":"2.3"}`, ours}},
		{"context.library sub-path columns with a context json column", tr2(js("context", `{"ip":"1"}`, `{"library":`+archived+`}`), str("context.library.name", "x", nil)),
			[]string{`{"name":"x"}`, archived}},
		{"a context struct column", tr2(col{"context", ctxType, []any{[]any{"1.1.1.1", []any{"analytics.js"}}, []any{"2.2.2.2", nil}}}),
			[]string{`{"name":"analytics.js"}`, ours}},
		{"no context at all", tr2(), []string{ours, ours}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := encode(t, Options{}, "s", c.cols...)
			for row, want := range c.keep {
				if got := libraryOf(t, res.msgs[row]); !jsonEqual(got, want) {
					t.Errorf("row %d: library %s, want %s (message %s)", row, got, want, res.msgs[row])
				}
			}
			own := encode(t, Options{OwnLibrary: true}, "s", c.cols...)
			for row := range c.keep {
				if got := libraryOf(t, own.msgs[row]); !jsonEqual(got, ours) {
					t.Errorf("OwnLibrary, row %d: library %s (message %s)", row, got, own.msgs[row])
				}
			}
		})
	}
}

// tr2 is tr for two rows.
func tr2(more ...col) []col {
	return append([]col{str("type", "track", "track"), str("userId", "u1", "u2"), str("event", "E", "E")}, more...)
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

// With Options.SentAt every message ends with a sentAt placeholder whose
// place SentAtOffset gives, so the sender stamps each attempt without
// encoding again. A row whose data has its own sentAt keeps it and gets
// no placeholder. Without the option, the data's sentAt is still written.
func TestSentAtPlaceholder(t *testing.T) {
	cols := []col{str("type", "track", "track", "track"), str("userId", "u1", "u2", "u3"), str("event", "E", "E", "E"),
		str("sentAt", nil, "2024-01-01T00:00:01+01:00", "")}
	rec := makeRecord(t, arrowtest.CheckedMem(t), cols...)
	b := pipeline.NewBatch("s", 0, rec)
	defer b.Release()
	e := NewEncoder(Options{Pipeline: "p", SentAt: true})
	var offs []int
	msgs := map[int][]byte{}
	if _, err := e.Encode(b, func(row int, msg []byte) error {
		offs = append(offs, e.SentAtOffset())
		msgs[row] = append([]byte(nil), msg...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, row := range []int{0, 2} { // no sentAt in the data: the placeholder, last
		msg, off := msgs[row], offs[row]
		if off < 0 || string(msg[off:off+len(SentAtStamp)]) != SentAtStamp || off+len(SentAtStamp)+2 != len(msg) {
			t.Fatalf("row %d: offset %d in %s", row, off, msg)
		}
		stamped := append([]byte(nil), msg...)
		now := time.Date(2026, 12, 1, 10, 11, 12, 345e6, time.UTC)
		copy(stamped[off:], AppendStamp(nil, now))
		var m map[string]any
		if err := json.Unmarshal(stamped, &m); err != nil || m["sentAt"] != "2026-12-01T10:11:12.345Z" {
			t.Fatalf("row %d stamped: %v %s", row, err, stamped)
		}
		if without := WithoutSentAt(nil, msg, off); bytes.Contains(without, []byte("sentAt")) || json.Unmarshal(without, &m) != nil {
			t.Fatalf("row %d without its sentAt: %s", row, without)
		}
	}
	if offs[1] != -1 || bytes.Count(msgs[1], []byte(`"sentAt"`)) != 1 || !bytes.Contains(msgs[1], []byte(`"sentAt":"2023-12-31T23:00:01.000Z"`)) {
		t.Fatalf("the data's sentAt: offset %d in %s", offs[1], msgs[1])
	}

	// Without the option (a file sink): the data's sentAt, no placeholder.
	res := encode(t, Options{}, "s", cols...)
	if bytes.Contains(res.msgs[0], []byte("sentAt")) || !bytes.Contains(res.msgs[1], []byte(`"sentAt":"2023-12-31T23:00:01.000Z"`)) {
		t.Fatalf("without Options.SentAt: %s / %s", res.msgs[0], res.msgs[1])
	}
}

// The placeholder counts against the message size limit, and a rejected
// message's copy in the dead letters does not hold it: a redrive sends it
// with a fresh sentAt. A sentAt that is not a time rejects the row.
func TestSentAtCountsAndRejects(t *testing.T) {
	body := strings.Repeat("y", 100)
	// Find the size of the message without a sentAt, then set the limit
	// between it and the size with one.
	plain := encode(t, Options{}, "s", tr(str("properties.blob", body))...)
	n := len(plain.msgs[0])
	res := encode(t, Options{SentAt: true, MaxMessageBytes: n + 10}, "s", tr(str("properties.blob", body))...)
	if len(res.rejects) != 1 {
		t.Fatalf("a message over the limit only with its sentAt was sent: %s", res.msgs[0])
	}
	r := res.rejects[0]
	if !strings.Contains(r.Reason, "with its sentAt") || bytes.Contains(r.Message, []byte("sentAt")) || string(r.Message) != string(plain.msgs[0]) {
		t.Fatalf("reject %q, message %s", r.Reason, r.Message)
	}
	bad := encode(t, Options{SentAt: true}, "s", tr(str("sentAt", "yesterday"))...)
	if len(bad.rejects) != 1 || bad.rejects[0].Column != "sentAt" || !strings.Contains(bad.rejects[0].Reason, "RFC 3339") {
		t.Fatalf("a sentAt that is not a time: %+v", bad.rejects)
	}
}
