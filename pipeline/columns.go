package pipeline

import (
	"context"
	"encoding/json"

	"github.com/apache/arrow/go/v15/arrow"
)

// SchemaPeeker is implemented by sources that can name the columns of
// their data without reading it: a Parquet footer, a CSV header line, the
// first lines of an NDJSON file, a BigQuery table's metadata. `backfill
// validate` compares them with the columns the pipeline reads.
type SchemaPeeker interface {
	// PeekColumns returns the names of the data's columns, as the
	// source's readers name them (every column, not only the projected
	// ones), and where they were read, as a noun phrase for messages
	// ("orders.parquet", "the first 1000 lines of events.ndjson", "table
	// p.d.t"). It reads no more than a header, a footer or the first lines
	// of one split (or a table's metadata): for a source of many files,
	// the first one speaks for the rest. It may be called on a source that
	// is built but not opened (Splits not called).
	PeekColumns(ctx context.Context) (names []string, where string, err error)
	// PeekRemote reports whether PeekColumns sends a request to a service
	// (S3, BigQuery): one that needs credentials, may be slow or billed.
	// validate peeks then only when asked to (--source).
	PeekRemote() bool
}

// ColumnNamer is implemented by transforms whose config names the input
// columns they read (map's column names, timestamp's field, filter's
// expression roots). ColumnError returns the error to report when column
// name, one the source is asked for, is not in the data: msg says so and
// where it looked, hint suggests a column (did you mean). The error is
// positioned at the value of the pipeline file that names the column (a
// config error, or several joined when the transform names it more than
// once). It is nil when the transform does not read name from its input
// or does without it (timestamp with on_missing: now).
type ColumnNamer interface {
	ColumnError(name, msg, hint string) error
}

// DataColumnsKey is the Arrow schema metadata key under which a reader
// records every column of its input, the projected-out ones included (a
// JSON list of names), so that an error for a missing column can suggest
// among all of them. A transform that renames columns into another
// naming (map, expand) drops it.
const DataColumnsKey = "backfill.data_columns"

// DataColumnsMetadata returns md with names recorded under DataColumnsKey
// (replacing a list already there). md itself is left alone.
func DataColumnsMetadata(md arrow.Metadata, names []string) arrow.Metadata {
	text, _ := json.Marshal(names)
	keys := make([]string, 0, md.Len()+1)
	vals := make([]string, 0, md.Len()+1)
	for i, k := range md.Keys() {
		if k != DataColumnsKey {
			keys, vals = append(keys, k), append(vals, md.Values()[i])
		}
	}
	return arrow.NewMetadata(append(keys, DataColumnsKey), append(vals, string(text)))
}

// WithoutDataColumns returns md without the DataColumnsKey entry.
func WithoutDataColumns(md arrow.Metadata) arrow.Metadata {
	i := md.FindKey(DataColumnsKey)
	if i < 0 {
		return md
	}
	keys := append(append([]string(nil), md.Keys()[:i]...), md.Keys()[i+1:]...)
	vals := append(append([]string(nil), md.Values()[:i]...), md.Values()[i+1:]...)
	return arrow.NewMetadata(keys, vals)
}

// DataColumns returns the columns of the data a schema's record was read
// from, as its reader recorded them (DataColumnsKey), or nil when no
// reader did.
func DataColumns(s *arrow.Schema) []string {
	if s == nil {
		return nil
	}
	md := s.Metadata()
	i := md.FindKey(DataColumnsKey)
	if i < 0 {
		return nil
	}
	var names []string
	if json.Unmarshal([]byte(md.Values()[i]), &names) != nil {
		return nil
	}
	return names
}
