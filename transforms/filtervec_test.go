package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/compute"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// TestFilterVectorizedMatchesExpr runs each expression twice, vectorized
// and through expr on every row, and wants the same kept rows, filtered
// count and reject reasons.
func TestFilterVectorizedMatchesExpr(t *testing.T) {
	cols := []col{
		{"event", str, `["A","B",null,"A","C","a",""]`},
		{"amount", f64, `[1,2.5,null,100,-3,0,7]`},
		{"qty", arrow.PrimitiveTypes.Int32, `[1,2,3,null,5,-6,7]`},
		{"n8", arrow.PrimitiveTypes.Uint8, `[1,2,3,4,5,6,null]`},
		{"properties.total", f64, `[1,null,3,4,5,6,7]`},
		{"properties.plan", str, `["x","y",null,"x","y","x","z"]`},
		{"context", record.JSON, `["{\"ip\":\"1\"}",null,"{}","{\"ip\":\"2\"}","{}","{}","{}"]`},
	}
	exprs := []string{
		`event == "A"`, `event != "A"`, `event < "B"`, `"B" > event`, `event >= ""`,
		`event == nil`, `nil != event`, `amount > 2`, `amount <= 2.5`, `amount == 100`, `amount != 2.5`,
		`qty > 2 && amount > 0`, `qty == 2 || event == "C"`, `!(qty > 3)`, `not (event == "A")`,
		`qty > 2.5`, `n8 >= 3`, `amount > -3`, `-3 < amount`,
		`event in ["A", "C"]`, `event not in ["A"]`, `qty in [1, 5, 7]`, `amount in [1.0, 100.0]`, `amount in [1, 2]`,
		`properties.total > 3`, `properties.plan == "x" && properties.total >= 1`,
		`len(event) > 0 && amount > 1`, `amount > 1 && len(event) > 0`, `amount > 1 || len(event) > 0`,
		`context?.ip == "1" || qty > 4`, `event == 1`, `amount == "x"`, `event > 1`,
		`qty > 3 && (event == "A" || amount > 0)`,
	}
	checkVecMatchesExpr(t, cols, exprs)
}

// TestFilterVectorizedJSONMatchesExpr is the same for paths into a JSON
// column, whose rows expr decodes with json.Unmarshal: texts that do not
// decode (bad syntax anywhere, a number out of range), duplicate keys,
// escapes, missing keys, nulls, nested objects, values of another kind.
func TestFilterVectorizedJSONMatchesExpr(t *testing.T) {
	props := []string{
		`{"total":5,"plan":"x","flag":true,"nested":{"a":1}}`,
		`{"total":"5","plan":null,"flag":"true"}`,
		`{}`,
		``, // null
		`{"total":60.5,"plan":"y\u00e9","total":70}`,
		`{"total":55,}`,
		`{"total":1e400}`,
		`{"total":55,"big":1e400}`,
		`{"total":[1],"plan":{"a":1},"flag":null}`,
		`[1,2]`,
		`"str"`,
		`null`,
		`7`,
		`{"nested":{"a":"b"},"nested":5}`,
		`{"total":51,"x":tru}`,
		`{"total":-0.5e1,"flag":false,"nested":{}}`,
		`{"plan":"a\"b","nested":{"a":2,"b":[1,{"c":null}]}}`,
		`{"total":98,"t\u006ftal":99}`,
		` { "total" : 50 , "plan" : "x" } `,
		`{"total":01}`,
		"{\"plan\":\"tab\there\",\"total\":52}", // a raw tab
		`{"total":57,"a":[1 2]}`,
		`{"total":58,"a":[1,{"b":tru}]}`,
		`{"total":59,"s":"\u12zz"}`,
		`"\u12`,
		`{"plan":"x","total":53,"nested":{"a":1,"a":null}}`,
		`{"total":54}{}`,
		`{"total":55,"s":"\x"}`,
		`{"total":56,"s":"\u12"}`,
	}
	var js []string
	var events []string
	for i, p := range props {
		q, _ := json.Marshal(p)
		if p == "" {
			q = []byte("null")
		}
		js = append(js, string(q))
		events = append(events, []string{`"A"`, `"B"`, `null`}[i%3])
	}
	cols := []col{
		{"event", str, "[" + strings.Join(events, ",") + "]"},
		{"properties", record.JSON, "[" + strings.Join(js, ",") + "]"},
	}
	exprs := []string{
		`properties.total > 50`, `properties.total == 5`, `properties.total != 5`, `properties.total <= 70`,
		`properties.total == nil`, `properties.total != nil`, `properties.total == "5"`, `properties["total"] > 4`,
		`properties.total >= 5.5`, `-5 == properties.total`, `properties.total == 99`,
		`properties.plan == "x"`, `properties.plan < "y"`, `properties.plan == nil`, `properties.plan != "yé"`,
		`properties.flag == true`, `properties.flag != false`, `properties.flag == nil`,
		`properties.nested.a == 1`, `properties.nested.a > 0`, `properties.nested.a == nil`, `properties.nested == nil`,
		`properties.nested.b == nil`, `properties.nested.a.z == nil`,
		`properties == nil`, `properties != nil`, `properties > 1`, `properties == 7`,
		`properties.plan in ["x", "yé"]`, `properties.total in [5.0, 70.0]`, `properties.total in [5, 70]`,
		`properties.total > 50 && properties.plan == "x"`, `!(properties.total > 50) || properties.flag == true`,
		`properties.total > 4 && len(properties) > 0`, `properties.total == 5 || event == "A"`,
		`properties.total > 50 && event == "A"`,
	}
	checkVecMatchesExpr(t, cols, exprs)
}

func checkVecMatchesExpr(t *testing.T, cols []col, exprs []string) {
	t.Helper()
	for _, e := range exprs {
		for _, drop := range []bool{false, true} {
			conf := "expr: '" + e + "'"
			if drop {
				conf = "drop: '" + e + "'"
			}
			t.Run(conf, func(t *testing.T) {
				var got [2][]string
				for k, noVec := range []bool{false, true} {
					mem := newMem(t)
					tr := mustTransform(t, mem, "filter", conf)
					tr.(*Filter).noVec = noVec
					b := pipeline.NewBatch("s", 0, mkRecord(t, mem, cols...))
					if err := tr.Apply(context.Background(), b); err != nil {
						t.Fatal(err)
					}
					checkAccounting(t, b)
					got[k] = append(rows(b), fmt.Sprint("rows ", b.Rows, " filtered ", b.Filtered))
					got[k] = append(got[k], reasons(b)...)
					b.Release()
					mem.AssertSize(t, 0)
				}
				if !equalStrings(got[0], got[1]) {
					t.Errorf("vectorized:\n%q\nexpr:\n%q", got[0], got[1])
				}
			})
		}
	}
}

// TestDropRowsMatchesCompute compares pipeline.Batch.DropMask with arrow's filter kernel
// on every column type it copies itself and on the fallback (a list), on
// a sliced record (non-zero array offsets).
func TestDropRowsMatchesCompute(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	full := mkRecord(t, mem,
		col{"s", str, `["a",null,"ccc","","eeeee","f","gg","h",null,"j"]`},
		col{"ls", arrow.BinaryTypes.LargeString, `["a","b",null,"d","e","f","g","h","i","j"]`},
		col{"bin", arrow.BinaryTypes.Binary, `["YQ==",null,"Yw==","ZA==","ZQ==","Zg==","Zw==","aA==","aQ==","ag=="]`},
		col{"i64", arrow.PrimitiveTypes.Int64, `[1,2,3,null,5,6,7,8,9,10]`},
		col{"u8", arrow.PrimitiveTypes.Uint8, `[1,2,3,4,5,6,7,8,9,10]`},
		col{"f", f64, `[1.5,null,3,4,5,6,7,8,9,null]`},
		col{"b", arrow.FixedWidthTypes.Boolean, `[true,false,null,true,true,false,true,false,true,true]`},
		col{"ts", TimestampType, `["2024-01-01T00:00:00Z",null,"2024-01-03T00:00:00Z","2024-01-04T00:00:00Z","2024-01-05T00:00:00Z","2024-01-06T00:00:00Z","2024-01-07T00:00:00Z","2024-01-08T00:00:00Z","2024-01-09T00:00:00Z","2024-01-10T00:00:00Z"]`},
		col{"j", record.JSON, `["{}",null,"[1]","2","{\"a\":1}","3","4","5","6","7"]`},
		col{"l", arrow.ListOf(arrow.BinaryTypes.String), `[["a"],null,[],["b","c"],["d"],["e"],["f"],["g"],["h"],["i"]]`},
		col{"n", arrow.Null, `[null,null,null,null,null,null,null,null,null,null]`},
	)
	defer full.Release()
	rec := full.NewSlice(1, 10) // 9 rows at offset 1
	defer rec.Release()
	for _, keep := range []string{"111111111", "000000000", "101010101", "110011100", "011111110", "100000001"} {
		t.Run(keep, func(t *testing.T) {
			mask := make([]uint8, len(keep))
			bb := array.NewBooleanBuilder(mem)
			for i, c := range keep {
				if c == '0' {
					mask[i] = pipeline.FateFilter
				}
				bb.Append(c == '1')
			}
			m := bb.NewArray()
			bb.Release()
			defer m.Release()
			want, err := compute.FilterRecordBatch(compute.WithAllocator(context.Background(), mem), rec, m, compute.DefaultFilterOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer want.Release()
			rec.Retain()
			b := pipeline.NewBatch("s", 1, rec)
			defer b.Release()
			if err := b.DropMask(mem, mask, nil); err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, b)
			if !array.RecordEqual(b.Record, want) {
				t.Errorf("got\n%v\nwant\n%v", b.Record, want)
			}
		})
	}
	// A dictionary column (as the Parquet source reads repetitive strings),
	// which arrow's filter kernel does not take: its kept rows must hold
	// the same values, still as a dictionary.
	vals := `["w","x",null,"y","x","x","z",null,"y","x","z"]` // sliced from row 1
	dict := arrowtest.DictionaryColumns(t, mem, mkRecord(t, mem, col{"d", str, vals}), arrow.PrimitiveTypes.Int32)
	defer dict.Release()
	plain := mkRecord(t, mem, col{"d", str, vals})
	defer plain.Release()
	for _, keep := range []string{"1111111111", "0000000000", "1010101010", "0110011100", "0000000001"} {
		mask := make([]uint8, len(keep))
		var want []string
		for i, c := range keep {
			if c == '0' {
				mask[i] = pipeline.FateFilter
			} else {
				want = append(want, plain.Column(0).ValueStr(i+1))
			}
		}
		sliced := dict.NewSlice(1, 11)
		b := pipeline.NewBatch("s", 0, sliced)
		if err := b.DropMask(mem, mask, nil); err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, b)
		var got []string
		d, ok := b.Record.Column(0).(*array.Dictionary)
		for i := 0; ok && i < d.Len(); i++ {
			got = append(got, d.ValueStr(i))
		}
		if !ok || !equalStrings(got, want) {
			t.Errorf("keep %s: dictionary column %v holds %q, want %q", keep, b.Record.Column(0).DataType(), got, want)
		}
		b.Release()
	}
}

// TestExtractJSONPathUTF8 checks what the test column cannot hold: a
// string with invalid UTF-8 is decoded as Unmarshal does (U+FFFD).
func TestExtractJSONPathUTF8(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	bld := record.NewJSONBuilder(mem)
	record.AppendJSON(bld, []byte("{\"k\xff\":\"a\xffb\",\"k\":\"\xc3\xa9\"}"))
	a := bld.NewArray().(*record.JSONArray)
	bld.Release()
	defer a.Release()
	for _, tc := range []struct{ key, want string }{{"k\ufffd", "a\ufffdb"}, {"k", "é"}} {
		v := extractJSONPath(a, []string{tc.key})
		if v.kind[0] != jStr || v.str[0] != tc.want {
			t.Errorf("%q: kind %d %q, want %q", tc.key, v.kind[0], v.str[0], tc.want)
		}
	}
}

// TestSimpleFloat wants ParseFloat's result wherever simpleFloat gives one.
func TestSimpleFloat(t *testing.T) {
	cases := []string{"0", "-0", "1", "-1", "123.5", "0.1", "0.3", "-0.000001", "123456789012345", "1234567890123456",
		"999999999999999.9", "0.123456789012345", "3.141592653589793", "1e5", "-1.5E-3", "100000000000000.5", "0.000000000000001"}
	for i := 0; i < 2000; i++ {
		cases = append(cases, fmt.Sprintf("%d.%0*d", i*7919%100000, i%9+1, i*104729%1000000000))
	}
	for _, c := range cases {
		want, _ := strconv.ParseFloat(c, 64)
		got, ok := simpleFloat([]byte(c))
		if ok && (got != want || math.Signbit(got) != math.Signbit(want)) {
			t.Errorf("%s: got %v, want %v", c, got, want)
		}
	}
}
