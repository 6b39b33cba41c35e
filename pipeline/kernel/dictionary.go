package kernel

import (
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// Decodable says whether a dictionary of dt values can be decoded by
// DecodeDictionary: strings and binaries.
func Decodable(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return true
	}
	return false
}

// DecodeDictionary builds d's values row by row (d's value type is
// decodable); a null index or a null value is a null.
func DecodeDictionary(mem memory.Allocator, d *array.Dictionary) arrow.Array {
	vals := d.Dictionary()
	var value func(int) string // chosen once, not per row
	switch v := vals.(type) {
	case *array.String:
		value = v.Value
	case *array.LargeString:
		value = v.Value
	case *array.Binary:
		value = v.ValueString
	case *array.LargeBinary:
		value = v.ValueString
	}
	// key is row i's value index, or -1 for a null row or value.
	key := func(i int) int {
		if d.IsNull(i) {
			return -1
		}
		if k := d.GetValueIndex(i); vals.IsValid(k) {
			return k
		}
		return -1
	}
	bl := array.NewBuilder(mem, vals.DataType()).(interface {
		array.Builder
		AppendString(string)
		ReserveData(int)
	})
	defer bl.Release()
	size := 0 // reserved up front: growing copies the data buffer
	for i := 0; i < d.Len(); i++ {
		if k := key(i); k >= 0 {
			size += len(value(k))
		}
	}
	bl.Reserve(d.Len())
	bl.ReserveData(size)
	for i := 0; i < d.Len(); i++ {
		if k := key(i); k >= 0 {
			bl.AppendString(value(k))
		} else {
			bl.AppendNull()
		}
	}
	return bl.NewArray()
}
