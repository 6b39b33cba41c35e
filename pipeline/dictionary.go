package pipeline

import (
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// DecodeDictionaries replaces the record's dictionary-encoded string and
// binary columns whose names want selects with plain ones. Sources may
// hand a column as a dictionary (the Parquet reader does for columns that
// repeat few values); a transform that reads values calls this for the
// columns it reads, and passes the others through for the sink to write
// directly.
func (b *Batch) DecodeDictionaries(mem memory.Allocator, want func(name string) bool) {
	if b.Record == nil {
		return
	}
	schema := b.Record.Schema()
	var fields []arrow.Field
	var cols []arrow.Array
	for i, f := range schema.Fields() {
		d, ok := b.Record.Column(i).(*array.Dictionary)
		if !ok || !decodable(d.Dictionary().DataType()) || !want(f.Name) {
			continue
		}
		if cols == nil {
			fields = append([]arrow.Field(nil), schema.Fields()...)
			cols = append([]arrow.Array(nil), b.Record.Columns()...)
		}
		// By index: a schema may hold two columns of one name.
		fields[i].Type = d.Dictionary().DataType()
		cols[i] = decodeDictionary(mem, d)
		defer cols[i].Release()
	}
	if cols == nil {
		return
	}
	md := schema.Metadata()
	b.ReplaceRecord(array.NewRecord(arrow.NewSchema(fields, &md), cols, b.Record.NumRows()))
}

func decodable(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
		return true
	}
	return false
}

// decodeDictionary builds d's values row by row (d's value type is
// decodable); a null index or a null value is a null.
func decodeDictionary(mem memory.Allocator, d *array.Dictionary) arrow.Array {
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
