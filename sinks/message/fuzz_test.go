package message

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/backfillhq/backfill/pipeline/record"
)

// fuzzTypes are the message types the fuzzer picks from: valid ones, ones
// that need fields the record lacks (group, alias) and an unknown one.
var fuzzTypes = []string{"track", "identify", "page", "screen", "group", "alias", "bogus", ""}

// FuzzEncodeMatchesEncodingJSON encodes two rows of arbitrary values (the
// second with the columns picked by nullMask null) and checks, against
// encoding/json and the rules in segment-wire.md rather than the encoder's
// own code: every row comes out exactly once, as a message or a reject with
// a reason; every message is valid JSON within the size limit, follows
// Segment's rules and decodes to the values put in; and a row that breaks
// no rule is never rejected.
func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	f.Add(uint8(0), "u1", "Order Completed", int64(42), 19.9, true, int64(1709294400250), `{"a":[1,"x"]}`, uint8(0))
	f.Add(uint8(1), "", "anon-1", int64(-7), math.Copysign(0, -1), false, int64(0), ``, uint8(0xff))
	f.Add(uint8(0), "bad\xffutf8 \u2028 <&>", "e\"v\\e\nnt", int64(math.MinInt64), 1e-7, true, int64(-62135596800000), `null`, uint8(0x55))
	f.Add(uint8(6), "u", "", int64(1), math.Inf(1), true, int64(253402300800000), `{"a":`, uint8(0xaa))
	f.Add(uint8(4), "u", "e", int64(1), math.NaN(), false, int64(1), "[\"\xff\"]", uint8(3))
	f.Add(uint8(0), "u", "e", int64(1), 123456789.125, false, int64(1), "{\n \"k\": 1\n}", uint8(0))
	f.Fuzz(func(t *testing.T, typ uint8, s1, s2 string, n int64, fl float64, ok bool, ms int64, js string, nullMask uint8) {
		type_ := fuzzTypes[int(typ)%len(fuzzTypes)]
		// Row 1 is row 0 with some columns null.
		v := func(bit int, x any) []any {
			if nullMask&(1<<bit) != 0 {
				return []any{x, nil}
			}
			return []any{x, x}
		}
		cols := []col{
			{"type", arrow.BinaryTypes.String, []any{type_, type_}},
			{"userId", arrow.BinaryTypes.String, v(0, s1)},
			{"anonymousId", arrow.BinaryTypes.String, v(1, s2)},
			{"event", arrow.BinaryTypes.String, v(2, s2)},
			{"timestamp", &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, v(3, int(ms))},
			{"properties.n", arrow.PrimitiveTypes.Int64, v(4, int(n))},
			{"properties.f", arrow.PrimitiveTypes.Float64, v(5, fl)},
			{"properties.ok", arrow.FixedWidthTypes.Boolean, v(6, ok)},
			{"properties.nested.s", arrow.BinaryTypes.String, v(7, s1)},
			{"properties.extra", record.JSON, []any{js, js}},
		}
		res := encode(t, Options{}, "fuzz.parquet", cols...)
		for _, r := range res.rejects {
			if r.Reason == "" {
				t.Fatalf("row %d rejected without a reason", r.Row)
			}
		}
		for row := 0; row < 2; row++ {
			val := func(c int) any { return cols[c].vals[row] }
			msg, emitted := res.msgs[row]
			if !emitted {
				if why := mustPass(type_, val, js); why == "" {
					t.Fatalf("row %d breaks no rule but was rejected: %+v", row, res.rejects)
				}
				continue
			}
			checkFuzzMessage(t, msg, val, js)
		}
	})
}

// mustPass returns "" when a row breaks none of Segment's rules, so the
// encoder must emit it, or a rule it may break. It is conservative: a
// message near the size limit counts as possibly over.
func mustPass(type_ string, val func(int) any, js string) string {
	str := func(c int) string { s, _ := val(c).(string); return s }
	id := func(c int) bool { return str(c) != "" }
	switch {
	case type_ != "track" && type_ != "identify" && type_ != "page" && type_ != "screen":
		return "type"
	case !id(1) && !id(2):
		return "no userId or anonymousId"
	case type_ == "track" && !id(3):
		return "track without event"
	case type_ != "track" && id(3):
		return "event on a type that takes none" // only track takes event
	case type_ == "identify" && (val(5) != nil || val(6) != nil || val(7) != nil || val(8) != nil || js != "" && js != "null"):
		return "properties on identify" // identify takes traits, not properties
	case !validJSONColumn(js):
		return "bad JSON column"
	case 6*(2*len(str(1))+2*len(str(2))+len(js))+1000 > DefaultMaxMessageBytes:
		return "maybe too large"
	}
	if ms, ok := val(4).(int); ok {
		if y := time.UnixMilli(int64(ms)).UTC().Year(); y < 0 || y > 9999 {
			return "timestamp out of range"
		}
	}
	if f, ok := val(6).(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return "float JSON cannot carry"
	}
	return ""
}

func validJSONColumn(js string) bool {
	return js == "" || js == "null" || json.Valid([]byte(js)) && utf8.ValidString(js)
}

// checkFuzzMessage checks one emitted message against the rules and the
// values of its row (val(c) is column c's value, nil when null).
func checkFuzzMessage(t *testing.T, msg []byte, val func(int) any, js string) {
	t.Helper()
	if !json.Valid(msg) || len(msg) > DefaultMaxMessageBytes || bytes.ContainsAny(msg, "\n\r") {
		t.Fatalf("not one valid JSON line within the size limit (%d bytes): %q", len(msg), msg)
	}
	d := json.NewDecoder(bytes.NewReader(msg))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	// What encoding/json makes of a Go string: invalid UTF-8 becomes U+FFFD.
	asJSON := func(s string) string {
		b, _ := json.Marshal(s)
		var out string
		json.Unmarshal(b, &out)
		return out
	}
	// An id field: an empty string is absent.
	wantID := func(key string, c int) {
		s, _ := val(c).(string)
		got, present := m[key]
		if s == "" {
			if present {
				t.Fatalf("%s is %q, want it left out: %s", key, got, msg)
			}
			return
		}
		if got != asJSON(s) {
			t.Fatalf("%s = %q, want %q: %s", key, got, asJSON(s), msg)
		}
	}
	typ, _ := m["type"].(string)
	switch typ {
	case "track", "identify", "page", "screen":
	default:
		t.Fatalf("emitted a message of type %q: %s", typ, msg)
	}
	wantID("userId", 1)
	wantID("anonymousId", 2)
	if typ == "track" {
		wantID("event", 3)
		if m["event"] == nil {
			t.Fatalf("track message without event: %s", msg)
		}
	}
	// Segment ignores event on every type but track, and properties on
	// identify: such a message would lose them.
	if _, present := m["event"]; present && typ != "track" {
		t.Fatalf("%s message with an event: %s", typ, msg)
	}
	if _, present := m["properties"]; present && typ == "identify" {
		t.Fatalf("identify message with properties: %s", msg)
	}
	if m["userId"] == nil && m["anonymousId"] == nil {
		t.Fatalf("message with neither userId nor anonymousId: %s", msg)
	}
	if id, _ := m["messageId"].(string); id == "" || len(id) >= 100 {
		t.Fatalf("messageId %q: %s", id, msg)
	}
	if ms, ok := val(4).(int); ok {
		if want := time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z"); m["timestamp"] != want {
			t.Fatalf("timestamp = %v, want %s", m["timestamp"], want)
		}
	} else if _, present := m["timestamp"]; present {
		t.Fatalf("null timestamp written: %s", msg)
	}
	props, _ := m["properties"].(map[string]any)
	prop := func(k string) (any, bool) { x, ok := props[k]; return x, ok }
	if x, ok := val(5).(int); ok {
		if got, _ := prop("n"); got != json.Number(strconv.Itoa(x)) {
			t.Fatalf("properties.n = %v, want %d", got, x)
		}
	} else if _, present := prop("n"); present {
		t.Fatalf("null properties.n written: %s", msg)
	}
	if x, ok := val(6).(float64); ok {
		got, _ := prop("f")
		want, _ := json.Marshal(x)
		if got != json.Number(want) {
			t.Fatalf("properties.f = %v, want %s (encoding/json)", got, want)
		}
	}
	if x, ok := val(7).(bool); ok {
		if got, _ := prop("ok"); got != x {
			t.Fatalf("properties.ok = %v, want %v", got, x)
		}
	}
	if s, ok := val(8).(string); ok {
		nested, _ := props["nested"].(map[string]any)
		if nested["s"] != asJSON(s) {
			t.Fatalf("properties.nested.s = %q, want %q", nested["s"], asJSON(s))
		}
	}
	got, present := prop("extra")
	if js == "" || js == "null" {
		if present {
			t.Fatalf("empty JSON column written: %s", msg)
		}
		return
	}
	d = json.NewDecoder(bytes.NewReader([]byte(js)))
	d.UseNumber()
	var want any
	if err := d.Decode(&want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("properties.extra = %v, want %v", got, want)
	}
}
