package transforms

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
)

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// ids runs message_id with conf over cols and returns the messageIds
// (one per kept row) and the rejects.
func ids(t *testing.T, conf string, cols ...col) ([]string, []string) {
	t.Helper()
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "message_id", conf)
	b := pipeline.NewBatch("s", 0, mkRecord(t, mem, cols...))
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	var out []string
	c := b.Record.Column(colIndex(b.Record.Schema(), "messageId"))
	for i := 0; i < c.Len(); i++ {
		out = append(out, c.ValueStr(i))
	}
	return out, reasons(b)
}

func TestMessageID(t *testing.T) {
	orig := col{"messageId", str, `["m1","m2","m1",null]`}
	a, rej := ids(t, "salt: s1", orig)
	if len(a) != 3 || a[0] != a[2] || a[0] == a[1] {
		t.Errorf("ids = %v: same input must give the same id, different inputs different ids", a)
	}
	for _, id := range a {
		if !uuidShape.MatchString(id) {
			t.Errorf("%q is not UUID-shaped", id)
		}
	}
	if len(rej) != 1 || rej[0] != "3:messageId:message_id: messageId is null: nothing to derive a messageId from" {
		t.Errorf("rejects = %q", rej)
	}
	again, _ := ids(t, "salt: s1", orig)
	other, _ := ids(t, "salt: s2", orig)
	unsalted, _ := ids(t, "{}", orig)
	if !equalStrings(a, again) || a[0] == other[0] || a[0] == unsalted[0] || a[0] == "m1" {
		t.Errorf("salted %v, rerun %v, other salt %v, unsalted %v", a, again, other, unsalted)
	}

	// Keys: type-independent values, nulls in some keys, no ambiguity.
	k1, _ := ids(t, "key: [a, b]", col{"a", str, `["42","4",null]`}, col{"b", str, `["x","2x","x"]`})
	k2, _ := ids(t, "key: [a, b]", col{"a", i64, `[42,4,null]`}, col{"b", str, `["x","2x","x"]`})
	if !equalStrings(k1, k2) {
		t.Errorf("42 and \"42\" differ: %v vs %v", k1, k2)
	}
	k3, _ := ids(t, "key: [a, b]", col{"a", str, `["42x"]`}, col{"b", str, `[""]`})
	if k1[0] == k3[0] || k1[2] == k1[0] {
		t.Errorf("ambiguous key encoding: %v %v", k1, k3)
	}
	_, rej = ids(t, "key: [a, b]", col{"a", str, `[null]`}, col{"b", f64, `[null]`})
	if len(rej) != 1 || !strings.Contains(rej[0], "a, b is null") {
		t.Errorf("rejects = %q", rej)
	}

	// keep: good ids stay, missing, empty and too long ones are derived.
	long := strings.Repeat("x", 100)
	kept, _ := ids(t, "mode: keep\nkey: [k]", col{"messageId", str, `["good",null,"","` + long + `"]`}, col{"k", str, `["1","2","3","4"]`})
	if kept[0] != "good" || !uuidShape.MatchString(kept[1]) || !uuidShape.MatchString(kept[2]) || !uuidShape.MatchString(kept[3]) {
		t.Errorf("keep mode: %v", kept)
	}
	// other key types render canonically
	ts := &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}
	x, _ := ids(t, "key: [t, f, b]", col{"t", ts, `["2024-01-01T00:00:00Z"]`}, col{"f", f64, `[1.5]`}, col{"b", arrow.FixedWidthTypes.Boolean, `[true]`})
	y, _ := ids(t, "key: [t, f, b]", col{"t", str, `["2024-01-01T00:00:00Z"]`}, col{"f", str, `["1.5"]`}, col{"b", str, `["true"]`})
	if !equalStrings(x, y) {
		t.Errorf("canonical values differ: %v %v", x, y)
	}
}

func TestMessageIDErrors(t *testing.T) {
	for conf, want := range map[string]string{
		"mode: keep":    "mode keep derives ids for rows without a messageId",
		"key: []":       "key is empty",
		"key: [a, a]":   `key column "a" is empty or repeated`,
		"mode: replace": `"replace" is not an allowed value`,
	} {
		_, err := buildTransform(memory.DefaultAllocator, "message_id", conf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want %q", conf, err, want)
		}
	}
	tr := mustTransform(t, memory.DefaultAllocator, "message_id", "key: [order]")
	b := pipeline.NewBatch("s", 0, mkRecord(t, memory.DefaultAllocator, col{"order_id", str, `["1"]`}))
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err == nil || !strings.Contains(err.Error(), `"order" is not in the data (did you mean "order_id"?)`) {
		t.Errorf("error = %v", err)
	}
}
