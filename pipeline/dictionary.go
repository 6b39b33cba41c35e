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
	value := func(k int) string {
		switch v := vals.(type) {
		case *array.String:
			return v.Value(k)
		case *array.LargeString:
			return v.Value(k)
		case *array.Binary:
			return v.ValueString(k)
		case *array.LargeBinary:
			return v.ValueString(k)
		}
		return ""
	}
	bl := array.NewBuilder(mem, vals.DataType()).(interface {
		array.Builder
		AppendString(string)
		ReserveData(int)
	})
	defer bl.Release()
	size := 0
	for i := 0; i < d.Len(); i++ {
		if d.IsValid(i) && vals.IsValid(d.GetValueIndex(i)) {
			size += len(value(d.GetValueIndex(i)))
		}
	}
	bl.Reserve(d.Len())
	bl.ReserveData(size)
	for i := 0; i < d.Len(); i++ {
		if d.IsNull(i) || vals.IsNull(d.GetValueIndex(i)) {
			bl.AppendNull()
			continue
		}
		bl.AppendString(value(d.GetValueIndex(i)))
	}
	return bl.NewArray()
}
