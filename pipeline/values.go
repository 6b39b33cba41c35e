package pipeline

import (
	"encoding/json"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/backfillhq/backfill/pipeline/record"
)

// RowValues renders row i of rec as a JSON object of its columns, as a
// stage that rejects the row saw it: what a dead letter shows of a row a
// transform turned away, so it can be fixed and sent again. JSON columns
// are spliced in as they are; a column that cannot be rendered is left out.
func RowValues(rec arrow.Record, i int) json.RawMessage {
	if rec == nil || i < 0 || int64(i) >= rec.NumRows() {
		return nil
	}
	out := []byte{'{'}
	for c, col := range rec.Columns() {
		v, ok := cellJSON(col, i)
		if !ok {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(rec.ColumnName(c))
		out = append(out, name...)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}')
}

func cellJSON(col arrow.Array, i int) (v []byte, ok bool) {
	defer func() {
		if recover() != nil { // an array Arrow cannot marshal: leave it out
			v, ok = nil, false
		}
	}()
	if col.IsNull(i) {
		return []byte("null"), true
	}
	if j, isJSON := col.(*record.JSONArray); isJSON {
		if b := j.ValueBytes(i); json.Valid(b) {
			return b, true
		}
	}
	if d, isDict := col.(*array.Dictionary); isDict {
		return cellJSON(d.Dictionary(), d.GetValueIndex(i))
	}
	b, err := json.Marshal(col.GetOneForMarshal(i))
	return b, err == nil
}
