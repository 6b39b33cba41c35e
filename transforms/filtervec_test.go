package transforms

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/compute"

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
}
