package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
	"github.com/google/uuid"
)

var (
	tsType = func(u arrow.TimeUnit) arrow.DataType { return &arrow.TimestampType{Unit: u, TimeZone: "UTC"} }
	i64    = arrow.PrimitiveTypes.Int64
	f64    = arrow.PrimitiveTypes.Float64
	uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// tr is a valid one-row track message's columns plus more.
func tr(more ...col) []col {
	return append([]col{str("type", "track"), str("userId", "u1"), str("event", "Order Completed")}, more...)
}

const trJSON = `"type":"track","userId":"u1","event":"Order Completed"`

type result struct {
	msgs    map[int][]byte
	rejects []pipeline.Reject
}

func encode(t *testing.T, opts Options, split string, cols ...col) result {
	t.Helper()
	mem := arrowtest.CheckedMem(t)
	rec := makeRecord(t, mem, cols...)
	b := pipeline.NewBatch(split, 100, rec)
	defer b.Release()
	if opts.Pipeline == "" {
		opts.Pipeline = "test-pipeline"
	}
	opts.Version = "1.2.3"
	e := NewEncoder(opts)
	res := result{msgs: map[int][]byte{}}
	rejects, err := e.Encode(b, func(row int, msg []byte) error {
		res.msgs[row] = append([]byte(nil), msg...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res.rejects = rejects
	if got := len(res.msgs) + len(rejects); got != int(rec.NumRows()) {
		t.Fatalf("%d rows in, %d emitted + %d rejected", rec.NumRows(), len(res.msgs), len(rejects))
	}
	return res
}

// strip removes what every message gets (messageId, context.library) after
// checking it, so cases compare the rest.
func strip(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	id, _ := m["messageId"].(string)
	if id == "" {
		t.Fatalf("no messageId in %v", m)
	}
	delete(m, "messageId")
	ctx, _ := m["context"].(map[string]any)
	want := map[string]any{"name": "backfill", "version": "1.2.3"}
	if !reflect.DeepEqual(ctx["library"], want) {
		t.Fatalf("context.library = %v, want %v", ctx["library"], want)
	}
	delete(ctx, "library")
	if len(ctx) == 0 {
		delete(m, "context")
	}
	if _, ok := m["sentAt"]; ok {
		t.Fatalf("sentAt emitted")
	}
	return m
}

func TestEncodeMessages(t *testing.T) {
	const ms = int64(1709294400123) // 2024-03-01T12:00:00.123Z
	cases := []struct {
		name string
		cols []col
		want string // the message without messageId and context.library
	}{
		{"track", tr(str("properties.plan", "pro"), col{"properties.total", f64, []any{9.5}}),
			`{` + trJSON + `,"properties":{"plan":"pro","total":9.5}}`},
		{"nested paths several levels", tr(str("context.device.type", "ios"), str("context.ip", "1.2.3.4"),
			str("context.device.id", "d1"), str("properties.a.b.c", "x"), str("properties.a.d", "y")),
			`{` + trJSON + `,"context":{"device":{"type":"ios","id":"d1"},"ip":"1.2.3.4"},"properties":{"a":{"b":{"c":"x"},"d":"y"}}}`},
		{"nulls omitted, empty object left out", []col{str("type", "identify"), str("userId", nil), str("anonymousId", "a1"),
			str("traits.email", nil), str("traits.name", nil), str("context.ip", nil)},
			`{"type":"identify","anonymousId":"a1"}`},
		{"empty id string is absent", []col{str("type", "page"), str("userId", ""), str("anonymousId", "a1"), str("name", "")},
			`{"type":"page","anonymousId":"a1"}`},
		{"integer ids are strings", []col{str("type", "group"), col{"userId", i64, []any{42}}, col{"groupId", arrow.PrimitiveTypes.Int32, []any{7}}},
			`{"type":"group","userId":"42","groupId":"7"}`},
		{"alias", []col{str("type", "alias"), str("userId", "u2"), str("previousId", "a1")},
			`{"type":"alias","userId":"u2","previousId":"a1"}`},
		{"json column spliced", tr(js("properties", `{"plan":"pro","items":[1,{"a":null}],"ok":true}`), js("integrations", `{"All":false,"Amplitude":true}`)),
			`{` + trJSON + `,"properties":{"plan":"pro","items":[1,{"a":null}],"ok":true},"integrations":{"All":false,"Amplitude":true}}`},
		{"json merge: sub-path wins, no duplicate key", tr(js("properties", `{"plan":"free","total":3}`), str("properties.plan", "pro")),
			`{` + trJSON + `,"properties":{"plan":"pro","total":3}}`},
		{"json merge: sub-path column before the json column", tr(str("properties.plan", "pro"), js("properties", `{"plan":"free","total":3}`)),
			`{` + trJSON + `,"properties":{"plan":"pro","total":3}}`},
		{"json merge deep", tr(js("properties", `{"address":{"city":"Paris","zip":"75001"},"x":1}`), str("properties.address.city", "Lyon")),
			`{` + trJSON + `,"properties":{"address":{"city":"Lyon","zip":"75001"},"x":1}}`},
		{"json merge: null sub-path keeps the json value", tr(js("properties", `{"plan":"free"}`), str("properties.plan", nil)),
			`{` + trJSON + `,"properties":{"plan":"free"}}`},
		{"json merge: escaped key matched", tr(js("properties", `{"pl\u0061n":"free","b":2}`), str("properties.plan", "pro")),
			`{` + trJSON + `,"properties":{"plan":"pro","b":2}}`},
		{"json merge: non-object below is replaced", tr(js("properties", `{"address":"somewhere"}`), str("properties.address.city", "Lyon")),
			`{` + trJSON + `,"properties":{"address":{"city":"Lyon"}}}`},
		{"json with line breaks is put on one line", tr(js("properties", "{\n  \"a\": \"x y\",\r\n  \"b\": [1, 2]\n}\n")),
			`{` + trJSON + `,"properties":{"a":"x y","b":[1,2]}}`},
		{"json null and empty are absent", tr(js("properties", `null`), js("traits", "")),
			`{` + trJSON + `}`},
		{"context json without library gets ours", tr(js("context", `{"ip":"1.1.1.1"}`), str("context.locale", "fr")),
			`{` + trJSON + `,"context":{"locale":"fr","ip":"1.1.1.1"}}`},
		{"internal columns are not encoded", tr(str("_source_file", "x.csv"), str("properties._ok", "kept")),
			`{` + trJSON + `,"properties":{"_ok":"kept"}}`},
		{"escaping", tr(str("properties.s", "q\"b\\s/n\nr\rt\tc\x01\x1f<>&é😀\u2028"), str("properties.bad", "a\xffb\xc3"), str("properties.k\"ey", "v")),
			`{` + trJSON + `,"properties":{"s":"q\"b\\s/n\nr\rt\tc\u0001\u001f<>&é😀\u2028","bad":"a\ufffdb\ufffd","k\"ey":"v"}}`},
		{"dotted key escaped in path", tr(str(`properties.a\.b`, "v")),
			`{` + trJSON + `,"properties":{"a.b":"v"}}`},
		{"numbers and bools", tr(col{"properties.i8", arrow.PrimitiveTypes.Int8, []any{-128}}, col{"properties.i64", i64, []any{math.MinInt64}},
			col{"properties.u64", arrow.PrimitiveTypes.Uint64, []any{-1}}, col{"properties.f32", arrow.PrimitiveTypes.Float32, []any{0.1}},
			col{"properties.big", f64, []any{1e21}}, col{"properties.small", f64, []any{1e-7}}, col{"properties.zero", f64, []any{0.0}},
			col{"properties.t", arrow.FixedWidthTypes.Boolean, []any{true}}, col{"properties.f", arrow.FixedWidthTypes.Boolean, []any{false}}),
			`{` + trJSON + `,"properties":{"i8":-128,"i64":-9223372036854775808,"u64":18446744073709551615,"f32":0.1,"big":1e+21,"small":1e-7,"zero":0,"t":true,"f":false}}`},
		{"timestamps of each unit", tr(col{"timestamp", tsType(arrow.Millisecond), []any{int(ms)}},
			col{"properties.s", tsType(arrow.Second), []any{int(ms / 1000)}},
			col{"properties.us", tsType(arrow.Microsecond), []any{int(ms*1000 + 456)}},
			col{"properties.ns", tsType(arrow.Nanosecond), []any{int(ms*1000000 + 456789)}},
			col{"properties.before1970", tsType(arrow.Microsecond), []any{-1}},
			col{"properties.d32", arrow.FixedWidthTypes.Date32, []any{19783}},
			col{"properties.d64", arrow.FixedWidthTypes.Date64, []any{19783 * 86400000}},
			col{"properties.leap", tsType(arrow.Second), []any{951825600}}),
			`{` + trJSON + `,"timestamp":"2024-03-01T12:00:00.123Z","properties":{"s":"2024-03-01T12:00:00.000Z","us":"2024-03-01T12:00:00.123Z","ns":"2024-03-01T12:00:00.123Z","before1970":"1969-12-31T23:59:59.999Z","d32":"2024-03-01T00:00:00.000Z","d64":"2024-03-01T00:00:00.000Z","leap":"2000-02-29T12:00:00.000Z"}}`},
		{"RFC 3339 text timestamp in UTC with milliseconds", tr(str("timestamp", "2024-03-01T12:00:00.1234+02:00")),
			`{` + trJSON + `,"timestamp":"2024-03-01T10:00:00.123Z"}`},
		{"empty text timestamp left out", tr(str("timestamp", "")), `{` + trJSON + `}`},
		{"other fields' text times as they are", tr(str("properties.at", "2024-03-01 12:00")),
			`{` + trJSON + `,"properties":{"at":"2024-03-01 12:00"}}`},
		{"struct, list, map columns", tr(
			col{"properties", arrow.StructOf(arrow.Field{Name: "plan", Type: arrow.BinaryTypes.String, Nullable: true}, arrow.Field{Name: "n", Type: i64, Nullable: true}), []any{[]any{"pro", nil}}},
			col{"properties.tags", arrow.ListOf(arrow.BinaryTypes.String), []any{[]any{"a", nil, "c"}}},
			col{"integrations", arrow.MapOf(arrow.BinaryTypes.String, arrow.FixedWidthTypes.Boolean), []any{[]any{"All", false, "k2", nil, "Amplitude", true}}}),
			`{` + trJSON + `,"properties":{"tags":["a",null,"c"],"plan":"pro"},"integrations":{"All":false,"Amplitude":true}}`},
		{"dictionary strings", []col{{"type", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}, []any{"track"}},
			str("anonymousId", "a1"), {"event", &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, []any{"Signed Up"}}},
			`{"type":"track","anonymousId":"a1","event":"Signed Up"}`},
		{"binary as base64", tr(col{"properties.raw", arrow.BinaryTypes.Binary, []any{[]byte{0, 1, 255}}}),
			`{` + trJSON + `,"properties":{"raw":"AAH/"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := encode(t, Options{}, "split-1", c.cols...)
			if len(res.rejects) > 0 {
				t.Fatalf("rejected: %+v", res.rejects[0])
			}
			got := strip(t, decode(t, res.msgs[0]))
			var want map[string]any
			d := json.NewDecoder(strings.NewReader(c.want))
			d.UseNumber()
			if err := d.Decode(&want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				gj, _ := json.Marshal(got)
				t.Fatalf("got  %s\nwant %s\nraw  %s", gj, c.want, res.msgs[0])
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	long := strings.Repeat("x", 100)
	cases := []struct {
		name    string
		opts    Options
		cols    []col
		column  string
		reason  string
		message bool // the reject carries the encoded message
	}{
		{"no type column", Options{}, []col{str("userId", "u1")}, "type", "message has no type", true},
		{"null type", Options{}, []col{str("type", nil), str("userId", "u1")}, "type", "message has no type", true},
		{"unknown type", Options{}, []col{str("type", "Track"), str("userId", "u1")}, "type", `type "Track" is not one of identify, track, page, screen, group, alias`, true},
		{"type not a string", Options{}, []col{{"type", i64, []any{1}}, str("userId", "u1")}, "type", "type is not a string", true},
		{"no user", Options{}, []col{str("type", "identify"), str("userId", nil), str("anonymousId", "")}, "userId", "identify message has neither userId nor anonymousId", true},
		{"userId not a string", Options{}, []col{str("type", "identify"), {"userId", f64, []any{1.5}}}, "userId", "userId is not a string", true},
		{"track without event", Options{}, []col{str("type", "track"), str("userId", "u1")}, "event", "track message has no event", true},
		{"track with empty event", Options{}, []col{str("type", "track"), str("userId", "u1"), str("event", "")}, "event", "track message has no event", true},
		{"group without groupId", Options{}, []col{str("type", "group"), str("userId", "u1")}, "groupId", "group message has no groupId", true},
		{"alias without previousId", Options{}, []col{str("type", "alias"), str("userId", "u1")}, "previousId", "alias message has no previousId", true},
		{"alias without userId", Options{}, []col{str("type", "alias"), str("anonymousId", "a"), str("previousId", "p")}, "userId", "alias message has no userId", true},
		{"properties json not an object", Options{}, tr(js("properties", `"pro"`)), "properties", "properties holds a string, not an object", false},
		{"traits json array", Options{}, tr(js("traits", `[1]`)), "traits", "traits holds an array, not an object", false},
		{"properties string column", Options{}, tr(str("properties", "{}")), "properties", "properties is a utf8 column; Segment needs an object", false},
		{"merge into non-object json", Options{}, tr(js("properties", `[1]`), str("properties.plan", "pro")), "properties", "properties holds an array, not an object, so properties.* columns cannot be merged into it", false},
		{"invalid json", Options{}, tr(js("properties", `{"a":}`)), "properties", "properties holds invalid JSON: byte 6: expected a JSON value, got '}'", false},
		{"invalid utf-8 in json", Options{}, tr(js("context", "{\"a\":\"\xff\"}")), "context", "context holds invalid JSON: byte 7: invalid UTF-8", false},
		{"json trailing garbage", Options{}, tr(js("integrations", `{} x`)), "integrations", `integrations holds invalid JSON: byte 4: unexpected 'x' after the value`, false},
		{"text timestamp not RFC 3339", Options{}, tr(str("timestamp", "2024-03-01 12:00:00")), "timestamp",
			`timestamp "2024-03-01 12:00:00" is not an RFC 3339 time (2024-03-01T12:00:00Z); a timestamp transform reads other forms (no zone, a space, unix times, Go layouts)`, false},
		{"NaN", Options{}, tr(col{"properties.total", f64, []any{math.NaN()}}), "properties.total", "properties.total is NaN, which JSON cannot carry", false},
		{"Inf", Options{}, tr(col{"properties.total", arrow.PrimitiveTypes.Float32, []any{math.Inf(-1)}}), "properties.total", "properties.total is -Inf, which JSON cannot carry", false},
		{"NaN in a list", Options{}, tr(col{"properties.xs", arrow.ListOf(f64), []any{[]any{1.0, math.NaN()}}}), "properties.xs[]", "properties.xs[] is NaN, which JSON cannot carry", false},
		{"timestamp beyond year 9999", Options{}, tr(col{"timestamp", tsType(arrow.Second), []any{253402300800}}), "timestamp", "timestamp is outside years 0000-9999 (253402300800000 ms since 1970)", false},
		{"messageId too long", Options{}, tr(str("messageId", long)), "messageId", "messageId is 100 characters; Segment takes fewer than 100", true},
		{"messageId not a string", Options{}, tr(col{"messageId", f64, []any{1.5}}), "messageId", "messageId is not a string", true},
		{"message too large", Options{MaxMessageBytes: 200}, tr(str("properties.blob", strings.Repeat("y", 100))), "", "message is 292 bytes, over Segment's 200-byte limit", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := encode(t, c.opts, "s", c.cols...)
			if len(res.rejects) != 1 {
				t.Fatalf("want 1 reject, got %d (messages %s)", len(res.rejects), res.msgs[0])
			}
			r := res.rejects[0]
			if r.Row != 100 || r.Stage != "sink" || r.Column != c.column || r.Reason != c.reason {
				t.Fatalf("got reject row=%d stage=%q column=%q reason=%q\nwant column=%q reason=%q", r.Row, r.Stage, r.Column, r.Reason, c.column, c.reason)
			}
			if c.message {
				decode(t, r.Message)
			} else if r.Message != nil {
				t.Fatalf("unexpected message %s", r.Message)
			}
		})
	}
}

func TestMessageIDs(t *testing.T) {
	// DeriveID is UUIDv5 in Namespace, reproducible elsewhere.
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/backfillhq/backfill/message-id"))
	if ns.String() != Namespace {
		t.Fatalf("Namespace = %s, want %s", Namespace, ns)
	}
	if got, want := DeriveID("p", "s", 1), uuid.NewSHA1(ns, []byte("p\x00s\x001")).String(); got != want {
		t.Fatalf("DeriveID = %s, want %s", got, want)
	}
	if got := DeriveID("p", "s", 1); got != "a983fca7-40eb-5e46-aa73-87be0fab1253" { // Python's uuid.uuid5
		t.Fatalf("DeriveID = %s", got)
	}
	longSplit := strings.Repeat("s3://bucket/very/long/key/", 20)
	if got, want := DeriveID("p", longSplit, 7), uuid.NewSHA1(ns, []byte("p\x00"+longSplit+"\x007")).String(); got != want {
		t.Fatalf("long DeriveID = %s, want %s", got, want)
	}

	cols := tr()
	cols[0].vals = []any{"track", "track", "track", "track"}
	cols[1].vals = []any{"u1", "u1", "u2", "u2"}
	cols[2].vals = []any{"E", "E", "E", "E"}
	cols = append(cols, str("messageId", "kept-1", nil, "", "kept-4"))
	res := encode(t, Options{Pipeline: "pipe"}, "split-a", cols...)
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = decode(t, res.msgs[i])["messageId"].(string)
	}
	if ids[0] != "kept-1" || ids[3] != "kept-4" {
		t.Fatalf("messageId column not kept: %v", ids)
	}
	// NewBatch starts at row 100 in encode.
	if ids[1] != DeriveID("pipe", "split-a", 101) || ids[2] != DeriveID("pipe", "split-a", 102) {
		t.Fatalf("derived ids %v", ids)
	}
	for _, id := range ids[1:3] {
		if !uuidRe.MatchString(id) {
			t.Fatalf("%q is not a v5 UUID", id)
		}
	}
	// A rerun gives the same ids; another pipeline name gives others.
	again := encode(t, Options{Pipeline: "pipe"}, "split-a", cols...)
	other := encode(t, Options{Pipeline: "pipe2"}, "split-a", cols...)
	if string(again.msgs[1]) != string(res.msgs[1]) || decode(t, other.msgs[1])["messageId"] == ids[1] {
		t.Fatal("derived ids are not deterministic per pipeline")
	}

	// Key columns: the id follows the key, not the split or position.
	keyed := func(split string, keys ...any) []string {
		rows := make([]any, len(keys))
		for i := range rows {
			rows[i] = "u1"
		}
		typ := make([]any, len(keys))
		for i := range typ {
			typ[i] = "identify"
		}
		r := encode(t, Options{Pipeline: "pipe", IDColumns: []string{"_order_id", "userId"}}, split,
			col{"type", arrow.BinaryTypes.String, typ}, col{"userId", arrow.BinaryTypes.String, rows}, col{"_order_id", i64, keys})
		out := make([]string, len(keys))
		for i := range out {
			m := decode(t, r.msgs[i])
			if _, ok := m["_order_id"]; ok {
				t.Fatal("internal id column encoded")
			}
			out[i] = m["messageId"].(string)
		}
		return out
	}
	a, b := keyed("split-a", 1, 2, nil), keyed("split-b", nil, 2, 1)
	if a[0] != b[2] || a[1] != b[1] || a[2] != b[0] || a[0] == a[1] || a[0] == a[2] {
		t.Fatalf("key-derived ids: %v vs %v", a, b)
	}
	if want := uuid.NewSHA1(ns, []byte("pipe\x00key\x001\x00\"u1\"")).String(); a[0] != want {
		t.Fatalf("key id %s, want %s", a[0], want)
	}
}

func TestEncodeBatchRowsAndErrors(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	rec := makeRecord(t, mem, str("type", "track", "track", "track"), str("userId", "u", "u", "u"), str("event", "E", nil, "E"))
	b := pipeline.NewBatch("s", 10, rec)
	defer b.Release()
	b.Rows = []int64{10, 15, 20} // rows dropped upstream
	e := NewEncoder(Options{Pipeline: "p"})
	var rows []int
	rejects, err := e.Encode(b, func(row int, msg []byte) error { rows = append(rows, row); return nil })
	if err != nil || len(rejects) != 1 || rejects[0].Row != 15 || !reflect.DeepEqual(rows, []int{0, 2}) {
		t.Fatalf("rows %v rejects %+v err %v", rows, rejects, err)
	}
	m := decode(t, func() []byte {
		var last []byte
		_, _ = e.Encode(b, func(_ int, msg []byte) error { last = append([]byte(nil), msg...); return nil })
		return last
	}())
	if m["messageId"] != DeriveID("p", "s", 20) {
		t.Fatalf("derived id ignores Batch.Rows: %v", m["messageId"])
	}

	stop := errTest("stop")
	n := 0
	_, err = e.Encode(b, func(int, []byte) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("emit error not returned: %v after %d", err, n)
	}
	// Two columns writing one path is a schema error.
	rec2 := makeRecord(t, mem, str("type", "track"), str("userId", "u"))
	defer rec2.Release()
	dup := arrow.NewSchema([]arrow.Field{{Name: "properties.a", Type: arrow.BinaryTypes.String}, {Name: `properties.a`, Type: arrow.BinaryTypes.String}}, nil)
	rec3 := arrowRecord(dup, rec2)
	defer rec3.Release()
	if _, err := e.Encode(pipeline.NewBatch("s", 0, rec3), func(int, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "two columns write properties.a") {
		t.Fatalf("duplicate path: %v", err)
	}
	if _, err := NewEncoder(Options{IDColumns: []string{"nope"}}).Encode(pipeline.NewBatch("s", 0, rec2), func(int, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), `id column "nope"`) {
		t.Fatalf("missing id column: %v", err)
	}
	// A nil record encodes nothing.
	if r, err := e.Encode(pipeline.NewBatch("s", 0, nil), nil); r != nil || err != nil {
		t.Fatal(r, err)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// arrowRecord renames rec's columns with schema s.
func arrowRecord(s *arrow.Schema, rec arrow.Record) arrow.Record {
	return arrayNewRecord(s, rec.Columns(), rec.NumRows())
}

func TestSchemaCache(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	e := NewEncoder(Options{Pipeline: "p"})
	for i := 0; i < 3; i++ {
		// A new but equal schema each time reuses the plan.
		rec := makeRecord(t, mem, tr(str("properties.x", "v"))...)
		_, err := e.Encode(pipeline.NewBatch("s", 0, rec), func(int, []byte) error { return nil })
		rec.Release()
		if err != nil || len(e.plans) != 1 {
			t.Fatalf("plans %d err %v", len(e.plans), err)
		}
	}
	rec := makeRecord(t, mem, tr(js("properties", `{"a":1}`))...)
	defer rec.Release()
	var got []byte
	if _, err := e.Encode(pipeline.NewBatch("s", 0, rec), func(_ int, m []byte) error { got = append(got, m...); return nil }); err != nil || len(e.plans) != 2 {
		t.Fatalf("plans %d err %v", len(e.plans), err)
	}
	if !strings.Contains(string(got), `"properties":{"a":1}`) {
		t.Fatalf("second schema encoded with the first plan: %s", got)
	}
	_ = record.JSON
}

// A sliced record (array offsets != 0, as Batch.Drop and readers make)
// encodes the same rows as the unsliced one.
func TestSlicedRecord(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	dict := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}
	st := arrow.StructOf(arrow.Field{Name: "a", Type: i64, Nullable: true})
	rec := makeRecord(t, mem,
		str("type", "track", "track", "track", "track", "track"),
		str("userId", "u0", nil, "u2", "u3", "u4"), str("anonymousId", "a0", "a1", nil, "a3", "a4"),
		col{"event", dict, []any{"E0", "E1", nil, "E3", "E4"}},
		col{"properties.n", i64, []any{0, nil, 2, 3, nil}}, col{"properties.b", arrow.FixedWidthTypes.Boolean, []any{true, false, nil, true, false}},
		col{"properties.f", f64, []any{0.5, 1.5, nil, 3.5, 4.5}},
		col{"timestamp", tsType(arrow.Millisecond), []any{0, 1000, nil, 3000, 4000}},
		col{"properties.s", st, []any{[]any{0}, nil, []any{2}, []any{nil}, []any{4}}},
		col{"properties.l", arrow.ListOf(i64), []any{[]any{0}, []any{1, 1}, nil, []any{3, 3, 3}, []any{}}},
		js("context.traits", `{"x":0}`, nil, `{"x":2}`, `{"x":3}`, `{"x":4}`))
	defer rec.Release()
	full := map[int64]string{}
	e := NewEncoder(Options{Pipeline: "p"})
	if _, err := e.Encode(pipeline.NewBatch("s", 0, rec), func(row int, m []byte) error { full[int64(row)] = string(m); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, sl := range [][2]int64{{1, 4}, {2, 5}, {3, 4}} {
		part := rec.NewSlice(sl[0], sl[1])
		got := map[int64]string{}
		rejects, err := e.Encode(pipeline.NewBatch("s", sl[0], part), func(row int, m []byte) error { got[sl[0]+int64(row)] = string(m); return nil })
		part.Release()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rejects {
			if _, ok := full[r.Row]; ok {
				t.Fatalf("slice %v rejects row %d: %s", sl, r.Row, r.Reason)
			}
		}
		for row, m := range got {
			if full[row] != m {
				t.Fatalf("slice %v row %d:\n got %s\nwant %s", sl, row, m, full[row])
			}
		}
		if len(got)+len(rejects) != int(sl[1]-sl[0]) {
			t.Fatalf("slice %v: %d rows accounted", sl, len(got)+len(rejects))
		}
	}
	if len(full) != 4 { // row 2 is a track without event
		t.Fatalf("%d messages", len(full))
	}
}

// String dictionaries (what the Parquet source reads repetitive columns
// as) encode exactly as the same strings do: escaping, nulls, an empty id
// left out, and the uncached paths (int8 indices; a dictionary far larger
// than the batch).
func TestDictionaryColumnsEncodeAsStrings(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	defer mem.AssertSize(t, 0)
	names := []string{"type", "userId", "anonymousId", "event", "properties.plan", "context.page.path"}
	plainRecord := func(reversed bool) arrow.Record {
		cols := []col{
			str("type", "track", "track", "identify", "track", "track", "track"),
			str("userId", "u1", "u1", "", "u1", nil, "u\"2"),
			str("anonymousId", "", "a1", "a1", nil, "a1", "a1"),
			str("event", "Order \"Completed\"", "Order \"Completed\"", nil, "caf\u00e9 \u2028", "\x01ctl", "Order \"Completed\""),
			str("properties.plan", nil, "pro", "pro", "", "pro", "free"),
			str("context.page.path", "/a", "/a", "/b\\c", "/a", nil, "/\xffbad")}
		if reversed { // the next batch: other dictionaries, in another order
			for _, c := range cols {
				slices.Reverse(c.vals)
			}
		}
		return makeRecord(t, mem, cols...)
	}
	// Each record once, through one encoder: a batch's cached values must
	// not leak into the next batch's.
	encodeAll := func(recs ...arrow.Record) []string {
		var out []string
		e := NewEncoder(Options{Pipeline: "p"})
		for _, rec := range recs {
			rejects, err := e.Encode(pipeline.NewBatch("s", 0, rec), func(row int, m []byte) error {
				out = append(out, fmt.Sprintf("%d %s", row, m))
				return nil
			})
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rejects {
				out = append(out, fmt.Sprintf("reject %d %s %s", r.Row, r.Column, r.Reason))
			}
		}
		return out
	}
	want := encodeAll(plainRecord(false), plainRecord(true))
	if len(want) < 10 {
		t.Fatalf("only %d results: the case tests little", len(want))
	}
	for _, idx := range []arrow.DataType{arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int8} {
		got := encodeAll(arrowtest.DictionaryColumns(t, mem, plainRecord(false), idx, names...),
			arrowtest.DictionaryColumns(t, mem, plainRecord(true), idx, names...))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s indices:\n%s\nwant\n%s", idx, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// Two rows of a 200-value dictionary: too large to cache per batch.
	var vals []any
	for i := 0; i < 200; i++ {
		vals = append(vals, fmt.Sprintf("E%d", i))
	}
	types := make([]any, 200)
	for i := range types {
		types[i] = "track"
	}
	big := arrowtest.DictionaryColumns(t, mem, makeRecord(t, mem, col{"type", arrow.BinaryTypes.String, types}, str("userId", append([]any{"u"}, types[1:]...)...),
		col{"event", arrow.BinaryTypes.String, vals}), arrow.PrimitiveTypes.Int32, "event")
	defer big.Release()
	part := big.NewSlice(198, 200)
	defer part.Release()
	var msgs []string
	if _, err := NewEncoder(Options{Pipeline: "p"}).Encode(pipeline.NewBatch("s", 198, part), func(_ int, m []byte) error {
		msgs = append(msgs, string(m))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], `"event":"E198"`) || !strings.Contains(msgs[1], `"event":"E199"`) {
		t.Fatalf("large dictionary: %q", msgs)
	}
}

// Derived ids stay DeriveID's whatever the split ID's length: the per-batch
// prefix's whole SHA-1 blocks are hashed once (long S3 keys span one or
// two), and rows hash the rest. Key-column ids too.
func TestDerivedIDsAcrossPrefixLengths(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	rec := makeRecord(t, mem, str("type", "track", "track", "track"), str("userId", "u", "u", "u"),
		str("event", "E", "E", "E"), str("k", "x", "y", "z"))
	defer rec.Release()
	e := NewEncoder(Options{Pipeline: "p"})
	keyed := NewEncoder(Options{Pipeline: "p", IDColumns: []string{"k"}})
	ids := func(enc *Encoder, split string, start int64) []string {
		var got []string
		if _, err := enc.Encode(pipeline.NewBatch(split, start, rec), func(_ int, m []byte) error {
			got = append(got, decode(t, m)["messageId"].(string))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != int(rec.NumRows()) {
			t.Fatalf("split of %d bytes: %d messages", len(split), len(got))
		}
		return got
	}
	for n := 0; n < 200; n++ { // prefixes of 19 to 218 bytes: 0 to 3 whole blocks
		split := strings.Repeat("s", n)
		for i, id := range ids(e, split, 1000) {
			if want := DeriveID("p", split, 1000+int64(i)); id != want {
				t.Fatalf("split of %d bytes, row %d: %s, want %s", n, i, id, want)
			}
		}
	}
	// Key ids do not depend on the split: every batch gives the same ones.
	var first []string
	for _, split := range []string{"", strings.Repeat("s", 70), strings.Repeat("s", 150)} {
		got := ids(keyed, split, 0)
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			t.Fatalf("key ids for split of %d bytes: %q, want %q", len(split), got, first)
		}
	}
}

// A panic while encoding (here: a dictionary index past its dictionary,
// which a corrupt Arrow stream can hold) fails the batch with a
// *pipeline.PanicError, and the encoder goes on encoding the next one.
func TestEncodePanicFailsTheBatch(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	good := makeRecord(t, mem, str("type", "track", "track"), str("userId", "u1", "u2"), str("event", "A", "B"))
	defer good.Release()
	events := arrowtest.CorruptDictionary(t, mem, 2)
	defer events.Release()
	bad := arrowtest.WithColumn(good, "event", events)
	defer bad.Release()

	e := NewEncoder(Options{Pipeline: "p"})
	for _, dictionaries := range []bool{true, false} {
		rec := bad
		if !dictionaries {
			rec = good
		}
		var emitted int
		rejects, err := e.Encode(pipeline.NewBatch("s", 0, rec), func(int, []byte) error { emitted++; return nil })
		var pe *pipeline.PanicError
		switch {
		case dictionaries && (!errors.As(err, &pe) || pe.Where != "encoding messages" || len(pe.Stack) == 0 || rejects != nil):
			t.Fatalf("corrupt batch: err %v, rejects %v", err, rejects)
		case !dictionaries && (err != nil || emitted != 2 || len(rejects) != 0):
			t.Fatalf("the batch after: err %v, %d emitted, rejects %v", err, emitted, rejects)
		}
	}
}

// An error from emit that wraps a *pipeline.PanicError (the Segment sink's
// enqueue returns the sink's failure, a sender's panic) is not the
// encoder's own panic: it comes back with the rejects found before it.
func TestEmitErrorWrappingAPanicKeepsRejects(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	// row 0: a track without event (rejected); row 1: valid (emitted).
	rec := makeRecord(t, mem, str("type", "track", "track"), str("userId", "u1", "u2"), str("event", "", "B"))
	defer rec.Release()
	senderPanic := &pipeline.PanicError{Where: "segment sender", Value: "boom"}
	rejects, err := NewEncoder(Options{Pipeline: "p"}).Encode(pipeline.NewBatch("s", 0, rec), func(int, []byte) error { return senderPanic })
	if !errors.Is(err, senderPanic) || len(rejects) != 1 {
		t.Fatalf("err %v, %d rejects (want the 1 found before emit failed)", err, len(rejects))
	}
}

// A dictionary may hold a null value that valid indices point at: those
// rows' field is absent, as a null row's is, cached or not.
func TestDictionaryNullValues(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	vals := array.NewStringBuilder(mem)
	defer vals.Release()
	vals.AppendValues([]string{"Paid", "", "Trial \"x\""}, []bool{true, false, true})
	dict := vals.NewArray()
	defer dict.Release()
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	ib.AppendValues([]int32{0, 1, 2, 1, 0}, []bool{true, true, true, true, false})
	idx := ib.NewArray()
	defer idx.Release()
	plans := array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, idx, dict)
	defer plans.Release()
	plain := makeRecord(t, mem, str("type", "track", "track", "track", "track", "track"), str("userId", "u1", "u2", "u3", "u4", "u5"),
		str("event", "E", "E", "E", "E", "E"), str("properties.plan", "Paid", nil, "Trial \"x\"", nil, nil))
	defer plain.Release()
	withDict := arrowtest.WithColumn(plain, "properties.plan", plans)
	defer withDict.Release()
	encode := func(rec arrow.Record) (out []string) {
		if _, err := NewEncoder(Options{Pipeline: "p"}).Encode(pipeline.NewBatch("s", 0, rec), func(_ int, m []byte) error {
			out = append(out, string(m))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := encode(plain), encode(withDict)
	if len(want) != 5 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("dictionary:\n%s\nplain:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Count(strings.Join(got, ""), `"plan"`) != 2 {
		t.Fatalf("plan written %d times, want 2", strings.Count(strings.Join(got, ""), `"plan"`))
	}
}

// An id, type or messageId column that is a dictionary of non-strings
// (binary values, numbers) is not a string: its rows are rejected with
// that reason, never sent as a number, base64 or an empty id, and never a
// panic.
func TestNonStringDictionaryFieldsAreRejected(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	bb := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	defer bb.Release()
	bb.AppendValues([][]byte{[]byte("u1"), {}}, nil)
	bdict := bb.NewArray()
	defer bdict.Release()
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	ib.AppendValues([]int64{42}, nil)
	idict := ib.NewArray()
	defer idict.Release()
	for _, c := range []struct {
		col  string
		dict arrow.Array
	}{{"userId", bdict}, {"anonymousId", bdict}, {"userId", idict}, {"type", bdict}, {"messageId", idict}} {
		xb := array.NewInt32Builder(mem)
		xb.AppendValues([]int32{0, int32(c.dict.Len() - 1)}, nil)
		idx := xb.NewArray()
		xb.Release()
		d := array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: c.dict.DataType()}, idx, c.dict)
		idx.Release()
		plain := makeRecord(t, mem, str("type", "identify", "identify"), str("userId", "x", "x"), str("anonymousId", "a", "a"), str("messageId", "m1", "m2"))
		rec := arrowtest.WithColumn(plain, c.col, d)
		plain.Release()
		d.Release()
		var msgs []string
		rejects, err := NewEncoder(Options{Pipeline: "p"}).Encode(pipeline.NewBatch("s", 0, rec), func(_ int, m []byte) error {
			msgs = append(msgs, string(m))
			return nil
		})
		rec.Release()
		if len(msgs) > 0 || err != nil || len(rejects) != 2 || !strings.Contains(rejects[0].Reason, "not a string") {
			t.Errorf("%s as %s: sent %s (err %v, rejects %+v)", c.col, c.dict.DataType(), strings.Join(msgs, "\n"), err, rejects)
		}
	}
}

// Derived ids count row digits up from the last row's: across the digit
// rollovers (9 to 10, 9999 to 10000), after a gap in the rows (a filter
// dropped some) and from one batch to the next, each id stays DeriveID's.
func TestDerivedIDsCountRowsUp(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	e := NewEncoder(Options{Pipeline: "p"})
	types := make([]any, 30)
	users := make([]any, 30)
	for i := range types {
		types[i], users[i] = "identify", fmt.Sprintf("u%d", i)
	}
	rec := makeRecord(t, mem, str("type", types...), str("userId", users...))
	defer rec.Release()
	for _, b := range []*pipeline.Batch{
		pipeline.NewBatch("s", 0, rec), pipeline.NewBatch("s", 9985, rec), pipeline.NewBatch("s", 99_999_990, rec),
		{Split: "s", Record: rec, Rows: []int64{5, 6, 8, 9, 10, 11, 99, 100, 101, 7, 8, 999, 1000, 1001, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27}},
	} {
		seen := 0
		if _, err := e.Encode(b, func(i int, m []byte) error {
			var msg struct{ MessageID string }
			if err := json.Unmarshal(m, &msg); err != nil {
				return err
			}
			if want := DeriveID("p", "s", b.Row(i)); msg.MessageID != want {
				t.Errorf("row %d: id %s, want %s", b.Row(i), msg.MessageID, want)
			}
			seen++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if seen != 30 {
			t.Fatalf("%d messages", seen)
		}
	}
}

// Each message type carries only its own fields (record.TypeFields, after
// Segment's Spec): a row whose type, read from the data, does not take a
// field it carries is rejected with the reason, since Segment would drop
// the field; a null, empty-id or empty-object value there loses nothing
// and passes. Rows of other types in the same batch take the same columns.
func TestEncodeFieldsByMessageType(t *testing.T) {
	res := encode(t, Options{}, "s",
		str("type", "track", "track", "track", "identify", "group", "track", "page", "identify", "track", "track", "alias"),
		str("userId", "u1", "u1", "u1", "u1", "u1", "u1", "u1", "u1", "u1", "u1", "u2"),
		str("event", "E", "E", "E", nil, nil, "E", "E", nil, "E", "E", nil),
		js("traits", `{"email":"a@x"}`, nil, "{ }", `{"email":"a@x"}`, `{"name":"Acme"}`, nil, nil, nil, nil, nil, nil),
		str("groupId", nil, nil, nil, nil, "g1", nil, nil, nil, "g1", "", nil),
		str("previousId", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, "a1"),
		str("properties.total", nil, "9.5", nil, nil, nil, nil, nil, "9.5", nil, nil, nil),
		str("name", nil, nil, nil, nil, nil, "Home", nil, nil, nil, nil, nil),
		str("context.traits.plan", "pro", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil))
	type reject struct{ column, reason string }
	want := map[int64]reject{
		100: {"traits", "track messages carry no traits: Segment ignores top-level traits on track; map them to context.traits"},
		105: {"name", "track messages carry no name: Segment ignores top-level name on track; map it to properties.name"},
		106: {"event", "page messages carry no event: Segment ignores top-level event on page; page and screen take name; map it to name or properties.event"},
		107: {"properties", "identify messages carry no properties: Segment ignores top-level properties on identify; map them to traits"},
		108: {"groupId", "track messages carry no groupId: Segment ignores top-level groupId on track; map it to context.groupId"},
	}
	got := map[int64]reject{}
	for _, r := range res.rejects {
		got[r.Row] = reject{r.Column, r.Reason}
		if m := decode(t, r.Message); m["type"] == nil {
			t.Errorf("row %d: reject carries no message", r.Row)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rejects\n%v\nwant\n%v", got, want)
	}
	// What passes: a null traits value on track (row 1), an empty object
	// (row 2), an empty groupId (row 9); identify and group with traits;
	// alias with previousId and userId.
	wantMsgs := map[int]string{
		1:  `{"type":"track","userId":"u1","event":"E","properties":{"total":"9.5"}}`,
		2:  `{"type":"track","userId":"u1","event":"E","traits":{}}`,
		3:  `{"type":"identify","userId":"u1","traits":{"email":"a@x"}}`,
		4:  `{"type":"group","userId":"u1","traits":{"name":"Acme"},"groupId":"g1"}`,
		9:  `{"type":"track","userId":"u1","event":"E"}`,
		10: `{"type":"alias","userId":"u2","previousId":"a1"}`,
	}
	if len(res.msgs) != len(wantMsgs) {
		t.Fatalf("%d messages, want %d", len(res.msgs), len(wantMsgs))
	}
	for row, w := range wantMsgs {
		m, ok := res.msgs[row]
		if !ok {
			t.Fatalf("row %d not emitted", row)
		}
		var want map[string]any
		if err := json.Unmarshal([]byte(w), &want); err != nil {
			t.Fatal(err)
		}
		gotM := strip(t, decode(t, m))
		gj, _ := json.Marshal(gotM)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("row %d: got %s\nwant %s", row, gj, wj)
		}
	}
}

// A schema whose columns fit every type's fields plans no per-row check.
func TestPlanChecksOnlyForeignColumns(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	rec := makeRecord(t, mem, tr(str("properties.x", "v"), str("context.traits.email", "a@x"))...)
	defer rec.Release()
	e := NewEncoder(Options{Pipeline: "p"})
	p, err := e.planFor(rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.foreign[iTrack]) != 0 {
		t.Fatalf("track checks %d columns, want none", len(p.foreign[iTrack]))
	}
	if len(p.foreign[iIdentify]) != 2 { // event, properties
		t.Fatalf("identify checks %d columns, want 2", len(p.foreign[iIdentify]))
	}
	// The encoder's type indices follow record.MessageTypes.
	idx := map[string]int{"identify": iIdentify, "track": iTrack, "page": iPage, "screen": iScreen, "group": iGroup, "alias": iAlias}
	for i, typ := range record.MessageTypes {
		if j, ok := idx[typ]; !ok || j != i {
			t.Fatalf("%s is record.MessageTypes[%d], the encoder's index %d", typ, i, j)
		}
	}
	if len(record.MessageTypes) != len(idx) {
		t.Fatalf("record.MessageTypes %v, the encoder knows %d types", record.MessageTypes, len(idx))
	}
}
