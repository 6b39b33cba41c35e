// Package arrowtest holds what tests of Arrow-handling code share.
package arrowtest

import (
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
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
