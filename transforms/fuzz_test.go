package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/internal/testkit/ndjsontest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// fuzzRows splits a fuzz input into at most 16 rows, one a line.
func fuzzRows(data []byte) [][]byte {
	rows := bytes.Split(data, []byte{'\n'})
	if len(rows) > 16 {
		rows = rows[:16]
	}
	return rows
}

// textColumn builds a JSON column (or a string column, when asString) of
// rows, row i null when nulls has bit i.
func textColumn(mem memory.Allocator, rows [][]byte, nulls uint16, asString bool) arrow.Array {
	sb := array.NewStringBuilder(mem)
	defer sb.Release()
	for i, r := range rows {
		if nulls&(1<<i) != 0 {
			sb.AppendNull()
		} else {
			sb.BinaryBuilder.Append(r)
		}
	}
	s := sb.NewArray()
	if asString {
		return s
	}
	defer s.Release()
	return array.NewExtensionArrayWithStorage(record.JSON, s)
}

func stringColumn(mem memory.Allocator, n int, f func(i int) string) arrow.Array {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	for i := range n {
		b.Append(f(i))
	}
	return b.NewArray()
}

// refMembers is what encoding/json makes of a message: its members, the
// last of a repeated key winning (null included), or why expand must
// reject it.
func refMembers(text []byte) (map[string]json.RawMessage, string) {
	ms, valid, object := ndjsontest.Members(text, jsonscan.MaxDepth)
	switch {
	case !valid:
		return nil, "holds invalid JSON"
	case !object:
		return nil, "not a message object"
	}
	members := make(map[string]json.RawMessage, len(ms))
	for _, m := range ms {
		if m.Key == "" || strings.Contains(m.Key, ".") {
			return nil, fmt.Sprintf("has the key %q", m.Key)
		}
		members[m.Key] = m.Value
	}
	return members, ""
}

// FuzzExpand expands a column of arbitrary JSON texts (and nulls), as a
// JSON column or a string column, and checks every row against
// encoding/json: a null, a text that is not one valid JSON value (valid
// UTF-8, nested at most jsonscan.MaxDepth deep), one that is not an
// object, or an object with a key that cannot name a column is rejected
// with the reason; any other row is kept, and each of its keys' columns
// holds what encoding/json decodes there (the last of a repeated key, null
// included), as a string or as JSON text; the kept and internal input
// columns win over message keys; every row is accounted for and every
// buffer released.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		`{"type":"track","event":"Order \"Big\" Completed","userId":"u1","timestamp":"2024-03-01T10:00:00Z","properties":{"total":9.5},"_metadata":{"bundled":[]}}` + "\n" +
			`{"type":"identify","userId":"u2","traits":{"plan":"pro"},"event":null}` + "\n" + `"just a string"` + "\n" + `{"type":"track",`,
		`{"type":"track","a.b":1}` + "\n" + `{"type":"track","userId":42,"event":"E"}` + "\n" + `{"":1}`,
		`{"a":1,"a":null}` + "\n" + `{"a":"x","a":2}` + "\n" + `{"src":"msg","_key":"m","k\u0065y":"v\u00e9"}`,
		"{\"a\":\"\xff\"}\n{\"b\":1e999}\n[{\"a\":1}]\n{\"x\":[[[[[]]]]]}\n \t{\"p\":true} \n",
		`{"userId":"u","context":{"ip":"1.2.3.4","library":{"name":"analytics.js"}},"integrations":{"All":false}}`,
	} {
		f.Add([]byte(s), uint16(0), false)
		f.Add([]byte(s), uint16(0b1010), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, nulls uint16, asString bool) {
		if len(data) > 16<<10 {
			return
		}
		rows := fuzzRows(data)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		tr, err := buildTransform(mem, "expand", "column: message\nkeep: [src]")
		if err != nil {
			t.Fatal(err)
		}
		n := len(rows)
		msg := textColumn(mem, rows, nulls, asString)
		src := stringColumn(mem, n, func(i int) string { return fmt.Sprint("file-", i) })
		key := stringColumn(mem, n, func(i int) string { return fmt.Sprint("k", i) })
		other := stringColumn(mem, n, func(int) string { return "dropped" })
		schema := arrow.NewSchema([]arrow.Field{{Name: "message", Type: msg.DataType(), Nullable: true},
			{Name: "src", Type: arrow.BinaryTypes.String}, {Name: "_key", Type: arrow.BinaryTypes.String},
			{Name: "other", Type: arrow.BinaryTypes.String}}, nil)
		rec := array.NewRecord(schema, []arrow.Array{msg, src, key, other}, int64(n))
		for _, a := range []arrow.Array{msg, src, key, other} {
			a.Release()
		}
		b := pipeline.NewBatch("s", 0, rec)
		defer b.Release()
		stop := time.AfterFunc(time.Minute, func() { panic("expand takes over a minute") })
		err = tr.Apply(context.Background(), b)
		stop.Stop()
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, b)
		rejected := map[int64]string{}
		for _, r := range b.Rejects {
			if r.Stage != "transform:expand" || r.Column != "message" {
				t.Fatalf("reject %+v", r)
			}
			rejected[r.Row] = r.Reason
		}
		kept := map[int64]int{}
		for i := 0; i < int(b.NumRows()); i++ {
			kept[b.Row(i)] = i
		}
		for i, text := range rows {
			reason, isRejected := rejected[int64(i)]
			var members map[string]json.RawMessage
			want := ""
			if nulls&(1<<i) != 0 {
				want = "is null"
			} else {
				members, want = refMembers(text)
			}
			if want != "" {
				if !isRejected || !strings.Contains(reason, want) {
					t.Fatalf("row %d %q: rejected %v %q, want %q", i, text, isRejected, reason, want)
				}
				continue
			}
			if isRejected {
				t.Fatalf("row %d %q: rejected (%s), encoding/json takes it", i, text, reason)
			}
			checkExpanded(t, b.Record, kept[int64(i)], i, text, members)
		}
	})
}

// checkExpanded checks record row r (input row i, text) against its
// members.
func checkExpanded(t *testing.T, rec arrow.Record, r, i int, text []byte, members map[string]json.RawMessage) {
	t.Helper()
	cols := map[string]arrow.Array{}
	for c, fd := range rec.Schema().Fields() {
		if _, dup := cols[fd.Name]; dup {
			t.Fatalf("two columns named %q", fd.Name)
		}
		cols[fd.Name] = rec.Column(c)
	}
	if got := cols["src"].(*array.String).Value(r); got != fmt.Sprint("file-", i) {
		t.Fatalf("row %d: kept column src = %q", i, got)
	}
	if got := cols["_key"].(*array.String).Value(r); got != fmt.Sprint("k", i) {
		t.Fatalf("row %d: internal column _key = %q", i, got)
	}
	if _, ok := cols["other"]; ok {
		t.Fatal("a column neither kept nor internal is in the output")
	}
	for name, a := range cols {
		if name == "src" || name == "_key" {
			continue
		}
		raw, present := members[name]
		if !present || string(raw) == "null" {
			if !a.IsNull(r) {
				t.Fatalf("row %d %q: %s is not null", i, text, name)
			}
			continue
		}
		if a.IsNull(r) {
			t.Fatalf("row %d %q: %s is null, want %s", i, text, name, raw)
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		dec.Decode(&want)
		var got any
		switch col := a.(type) {
		case *array.String:
			got = col.Value(r)
		case *record.JSONArray:
			dec := json.NewDecoder(strings.NewReader(col.Value(r)))
			dec.UseNumber()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("row %d: %s holds %q: %v", i, name, col.Value(r), err)
			}
		default:
			t.Fatalf("%s is %s", name, a.DataType())
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d %q: %s = %#v, want %#v", i, text, name, got, want)
		}
	}
	for k, raw := range members {
		if _, ok := cols[k]; !ok && string(raw) != "null" {
			t.Fatalf("row %d %q: key %q has no column", i, text, k)
		}
	}
}

// FuzzFilter runs a filter expression over rows holding arbitrary JSON
// (a JSON column, whose texts need not be valid), a string, a float and
// an int column, twice: vectorized and through expr on every row. Both
// keep the same rows and give the same rejects and filtered count; every
// row is accounted for and every buffer released.
func FuzzFilter(f *testing.F) {
	exprs := []string{
		`properties.total > 50`, `properties.total == 5`, `properties.total != 5`, `properties.total <= 70`,
		`properties.total == nil`, `properties.plan == "x"`, `properties.plan < "y"`, `properties.flag == true`,
		`properties.nested.a == 1`, `properties.nested.a > 0`, `properties == nil`, `properties > 1`,
		`properties.plan in ["x", "yé"]`, `properties.total in [5.0, 70.0]`, `properties.total in [5, 70]`,
		`properties.total > 50 && properties.plan == "x"`, `!(properties.total > 50) || properties.flag == true`,
		`properties.total > 4 && len(properties) > 0`, `properties.total == 5 || event == "A"`,
		`event == "A"`, `event < "B"`, `amount > 2`, `amount in [1, 2]`, `qty > 2.5 && amount > 0`, `not (event == "A")`,
		`-5 == properties.total`, `properties["total"] > 4`, `properties?.total == 1`, `properties.total.x == nil`,
	}
	props := strings.Join([]string{
		`{"total":5,"plan":"x","flag":true,"nested":{"a":1}}`, `{"total":"5","plan":null,"flag":"true"}`, `{}`, `null`,
		`{"total":60.5,"plan":"y\u00e9","total":70}`, `{"total":55,}`, `{"total":1e400}`, `[1,2]`, `"str"`, `7`,
		`{"nested":{"a":"b"},"nested":5}`, `{"total":98,"t\u006ftal":99}`, ` { "total" : 50 , "plan" : "x" } `, `{"total":01}`,
	}, "\n")
	for i, e := range exprs {
		f.Add(e, []byte(props), uint16(1<<3), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, expr string, data []byte, nulls uint16, drop bool) {
		if len(expr) > 256 || len(data) > 16<<10 {
			return
		}
		rows := fuzzRows(data)
		conf := "expr: "
		if drop {
			conf = "drop: "
		}
		q, _ := json.Marshal(expr) // a YAML double-quoted scalar
		conf += string(q)
		var got [2][]string
		for k, noVec := range []bool{false, true} {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			tr, err := buildTransform(mem, "filter", conf)
			if err != nil {
				return // not an expression filter takes
			}
			tr.(*Filter).noVec = noVec
			n := len(rows)
			cols := []arrow.Array{
				textColumn(mem, rows, nulls, false),
				stringColumn(mem, n, func(i int) string { return []string{"A", "B", "a", "", "é"}[i%5] }),
			}
			fb := array.NewFloat64Builder(mem)
			ib := array.NewInt32Builder(mem)
			for i := range n {
				if i%4 == 2 {
					fb.AppendNull()
				} else {
					fb.Append([]float64{1, 2.5, -3, 100, 0, 50}[i%6])
				}
				ib.Append(int32(i - 3))
			}
			cols = append(cols, fb.NewArray(), ib.NewArray())
			fb.Release()
			ib.Release()
			schema := arrow.NewSchema([]arrow.Field{{Name: "properties", Type: record.JSON, Nullable: true},
				{Name: "event", Type: arrow.BinaryTypes.String}, {Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
				{Name: "qty", Type: arrow.PrimitiveTypes.Int32}}, nil)
			rec := array.NewRecord(schema, cols, int64(n))
			for _, c := range cols {
				c.Release()
			}
			b := pipeline.NewBatch("s", 0, rec)
			stop := time.AfterFunc(time.Minute, func() { panic(fmt.Sprintf("filter %q takes over a minute", expr)) })
			err = tr.Apply(context.Background(), b)
			stop.Stop()
			if err != nil {
				// A column the expression names is not there: both ways.
				got[k] = []string{"error " + err.Error()}
			} else {
				checkAccounting(t, b)
				got[k] = append(rows2(b), fmt.Sprint("rows ", b.Rows, " filtered ", b.Filtered))
				got[k] = append(got[k], reasons(b)...)
			}
			b.Release()
			mem.AssertSize(t, 0)
		}
		if !equalStrings(got[0], got[1]) {
			t.Fatalf("%s over %q:\nvectorized:\n%q\nexpr:\n%q", conf, rows, got[0], got[1])
		}
	})
}

// rows2 is rows, with a batch whose record is nil (every row dropped).
func rows2(b *pipeline.Batch) []string {
	if b.Record == nil {
		return []string{"no record"}
	}
	return rows(b)
}
