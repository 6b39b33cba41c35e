package pipeline_test

import (
	"slices"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// DecodeDictionaries decodes the selected dictionary columns in place, by
// position (two columns may share a name), with nulls from the indices and
// from the values; other columns and types are left as they are.
func TestDecodeDictionaries(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	str := func(vals ...string) arrow.Array {
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for _, v := range vals {
			b.Append(v)
		}
		return b.NewArray()
	}
	// indices [0 null 1 2 0] over values ["a", null, "b"]: rows a, null, null, b, a
	dictOf := func(values arrow.Array) arrow.Array {
		ib := array.NewInt32Builder(mem)
		defer ib.Release()
		ib.AppendValues([]int32{0, 0, 1, 2, 0}, []bool{true, false, true, true, true})
		idx := ib.NewArray()
		defer idx.Release()
		dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: values.DataType()}
		return array.NewDictionaryArray(dt, idx, values)
	}
	sb := array.NewStringBuilder(mem)
	sb.AppendValues([]string{"a", "", "b"}, []bool{true, false, true})
	values := sb.NewArray()
	sb.Release()
	bb := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
	bb.AppendValues([][]byte{[]byte("x"), nil, {0xff}}, []bool{true, false, true})
	binValues := bb.NewArray()
	bb.Release()
	jsonValues := array.NewExtensionArrayWithStorage(record.JSON, values)

	cols := []arrow.Array{str("1", "2", "3", "4", "5"), dictOf(values), dictOf(binValues), dictOf(jsonValues), dictOf(values)}
	for _, a := range []arrow.Array{values, binValues, jsonValues} {
		a.Release()
	}
	fields := []arrow.Field{{Name: "n", Type: cols[0].DataType()}, {Name: "n", Type: cols[1].DataType()},
		{Name: "bin", Type: cols[2].DataType()}, {Name: "json", Type: cols[3].DataType()}, {Name: "other", Type: cols[4].DataType()}}
	rec := array.NewRecord(arrow.NewSchema(fields, nil), cols, 5)
	for _, c := range cols {
		c.Release()
	}
	b := pipeline.NewBatch("s", 0, rec)
	defer b.Release()
	b.DecodeDictionaries(mem, func(n string) bool { return n != "other" })

	got := func(i int) []string {
		var out []string
		c := b.Record.Column(i)
		for r := 0; r < c.Len(); r++ {
			if c.IsNull(r) {
				out = append(out, "null")
			} else {
				out = append(out, c.ValueStr(r))
			}
		}
		return out
	}
	for _, tc := range []struct {
		col  int
		typ  arrow.DataType
		want []string
	}{
		{0, arrow.BinaryTypes.String, []string{"1", "2", "3", "4", "5"}},
		{1, arrow.BinaryTypes.String, []string{"a", "null", "null", "b", "a"}},
		{2, arrow.BinaryTypes.Binary, []string{"eA==", "null", "null", "/w==", "eA=="}},
	} {
		if !arrow.TypeEqual(b.Record.Column(tc.col).DataType(), tc.typ) || !slices.Equal(got(tc.col), tc.want) {
			t.Errorf("column %d: %s %q, want %s %q", tc.col, b.Record.Column(tc.col).DataType(), got(tc.col), tc.typ, tc.want)
		}
	}
	for _, c := range []int{3, 4} { // a JSON dictionary, and a column not selected
		if b.Record.Column(c).DataType().ID() != arrow.DICTIONARY {
			t.Errorf("column %d decoded to %s", c, b.Record.Column(c).DataType())
		}
	}
}
