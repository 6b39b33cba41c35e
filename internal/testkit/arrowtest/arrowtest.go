// Package arrowtest holds what tests of Arrow-handling code share.
package arrowtest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
)

// CheckedMem is an allocator that fails t if anything allocated from it is
// still held when t ends: every record retained must be released.
func CheckedMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// Dictionary returns src dictionary-encoded with index type idx, as the
// Parquet reader gives a column that repeats few values.
func Dictionary(t testing.TB, mem memory.Allocator, src *array.String, idx arrow.DataType) *array.Dictionary {
	t.Helper()
	dt := &arrow.DictionaryType{IndexType: idx, ValueType: src.DataType()}
	b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	for j := 0; j < src.Len(); j++ {
		if src.IsNull(j) {
			b.AppendNull()
		} else if err := b.AppendString(src.Value(j)); err != nil {
			t.Fatal(err)
		}
	}
	return b.NewArray().(*array.Dictionary)
}

// CorruptDictionary returns n rows of a string dictionary column whose last
// index points past its two values, as a corrupt Arrow stream can hold:
// Arrow does not check indices, so reading that row panics.
func CorruptDictionary(t testing.TB, mem memory.Allocator, n int) *array.Dictionary {
	t.Helper()
	vals := array.NewStringBuilder(mem)
	defer vals.Release()
	vals.AppendValues([]string{"Order Completed", "Signed Up"}, nil)
	dict := vals.NewArray()
	defer dict.Release()
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	for i := 0; i < n; i++ {
		ib.Append(int32(i % 2))
	}
	idx := ib.NewArray()
	defer idx.Release()
	arrow.Int32Traits.CastFromBytes(idx.Data().Buffers()[1].Bytes())[n-1] = 9
	return array.NewDictionaryArray(&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, idx, dict)
}

// WithColumn returns rec with the column named name replaced by col (of any
// type); rec is left as it was.
func WithColumn(rec arrow.Record, name string, col arrow.Array) arrow.Record {
	return replaceColumns(rec, func(_ int, f arrow.Field) arrow.Array {
		if f.Name == name {
			return col
		}
		return nil
	})
}

// DictionaryColumns returns rec with its string columns named in names
// (every string column when names is empty) dictionary-encoded with index
// type idx, as the Parquet source reads repetitive columns. It releases rec.
func DictionaryColumns(t testing.TB, mem memory.Allocator, rec arrow.Record, idx arrow.DataType, names ...string) arrow.Record {
	t.Helper()
	defer rec.Release()
	var made []arrow.Array
	defer func() {
		for _, a := range made {
			a.Release()
		}
	}()
	out := replaceColumns(rec, func(i int, f arrow.Field) arrow.Array {
		s, ok := rec.Column(i).(*array.String)
		if !ok || len(names) > 0 && !slices.Contains(names, f.Name) {
			return nil
		}
		made = append(made, Dictionary(t, mem, s, idx))
		return made[len(made)-1]
	})
	if len(names) > 0 && len(made) != len(names) {
		out.Release()
		t.Fatalf("DictionaryColumns: %d of the columns %v are string columns of the record", len(made), names)
	}
	return out
}

// replaceColumns returns rec with each column for which repl returns an
// array replaced by it (nil keeps the column); rec is left as it was.
func replaceColumns(rec arrow.Record, repl func(i int, f arrow.Field) arrow.Array) arrow.Record {
	fields := rec.Schema().Fields()
	cols := slices.Clone(rec.Columns())
	for i, f := range fields {
		if col := repl(i, f); col != nil {
			fields[i].Type, cols[i] = col.DataType(), col
		}
	}
	return array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

// ParquetBytes writes rec as a Parquet file.
func ParquetBytes(t testing.TB, rec arrow.Record, props *parquet.WriterProperties, arrowProps pqarrow.ArrowWriterProperties) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(rec.Schema(), &buf, props, arrowProps)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
