package pipeline

import (
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline/kernel"
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
		if !ok || !kernel.Decodable(d.Dictionary().DataType()) || !want(f.Name) {
			continue
		}
		if cols == nil {
			fields = append([]arrow.Field(nil), schema.Fields()...)
			cols = append([]arrow.Array(nil), b.Record.Columns()...)
		}
		// By index: a schema may hold two columns of one name.
		fields[i].Type = d.Dictionary().DataType()
		cols[i] = kernel.DecodeDictionary(mem, d)
		defer cols[i].Release()
	}
	if cols == nil {
		return
	}
	md := schema.Metadata()
	b.ReplaceRecord(array.NewRecord(arrow.NewSchema(fields, &md), cols, b.Record.NumRows()))
}
