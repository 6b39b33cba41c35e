package pipeline_test

import (
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

// TestDropAccountsForEveryRow drops rows twice from one batch (as two
// transforms would) and checks that every split row is still accounted
// for: kept with its offset, rejected with its offset and reason, or
// counted as filtered.
func TestDropAccountsForEveryRow(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	const n = 10_000
	sb := array.NewStringBuilder(mem)
	ib := array.NewInt64Builder(mem)
	for i := 0; i < n; i++ {
		sb.Append(fmt.Sprintf("value-%d", i))
		ib.Append(int64(i))
	}
	s, i64 := sb.NewArray(), ib.NewArray()
	sb.Release()
	ib.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}, {Name: "i", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := array.NewRecord(schema, []arrow.Array{s, i64}, n)
	s.Release()
	i64.Release()
	b := pipeline.NewBatch("split", 500, rec)
	defer b.Release()

	// First: reject every 7th row, filter every 5th (by record row).
	fates := map[int]pipeline.RowFate{}
	for r := 0; r < n; r++ {
		switch {
		case r%7 == 0:
			fates[r] = pipeline.RowFate{Reject: &pipeline.Reject{Reason: fmt.Sprint("bad ", r)}}
		case r%5 == 0:
			fates[r] = pipeline.RowFate{Filter: true}
		}
	}
	if err := b.Drop(mem, fates); err != nil {
		t.Fatal(err)
	}
	// Second, over the survivors: filter the odd values with a mask.
	mask := make([]uint8, b.NumRows())
	for r := range mask {
		if b.Record.Column(1).(*array.Int64).Value(r)%2 == 1 {
			mask[r] = pipeline.FateFilter
		}
	}
	if err := b.DropMask(mem, mask, nil); err != nil {
		t.Fatal(err)
	}

	kept := map[int64]bool{}
	for r := 0; r < int(b.NumRows()); r++ {
		v := b.Record.Column(1).(*array.Int64).Value(r)
		if got := b.Record.Column(0).(*array.String).Value(r); got != fmt.Sprintf("value-%d", v) {
			t.Fatalf("row %d: string %q with value %d", r, got, v)
		}
		if b.Row(r) != 500+v {
			t.Fatalf("row %d (value %d) maps to offset %d", r, v, b.Row(r))
		}
		kept[v] = true
	}
	rejected := map[int64]bool{}
	for _, rj := range b.Rejects {
		v := rj.Row - 500
		if v%7 != 0 || rj.Reason != fmt.Sprint("bad ", v) {
			t.Fatalf("reject %+v", rj)
		}
		rejected[v] = true
	}
	if int64(len(kept))+int64(len(rejected))+b.Filtered != n {
		t.Fatalf("%d kept + %d rejected + %d filtered != %d", len(kept), len(rejected), b.Filtered, n)
	}
	for v := int64(0); v < n; v++ {
		want := v%7 != 0 && v%5 != 0 && v%2 == 0
		if kept[v] != want {
			t.Fatalf("value %d kept=%v, want %v", v, kept[v], want)
		}
	}
}
