// Package transforms holds backfill's built-in transforms, one file per
// transform: map, timestamp, strip, integrations, message_id, filter, set,
// rename and cast. Each registers itself into config.Default in init().
//
// All of them work on the record contract of package record: columns named
// by their path in the Segment message, JSON objects in record.JSON columns.
// They are safe for concurrent use by several split workers.
package transforms

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// constMem allocates the constant columns transforms cache across batches.
// They outlive any one batch and the transform has no Close in the
// contract, so they live on the Go heap and the GC reclaims them.
var constMem = memory.NewGoAllocator()

// missingColumn is the error for a referenced column the data lacks: it
// names the column, suggests the closest one and lists what exists. What
// exists is every column of the data, as the reader recorded them
// (pipeline.DataColumns: those the pipeline does not read too), and the
// columns of the record that are not among them (set, renamed).
func missingColumn(stage, name string, schema *arrow.Schema) error {
	data := pipeline.DataColumns(schema)
	names := append([]string(nil), data...)
	inData := make(map[string]bool, len(data))
	for _, n := range data {
		inData[n] = true
	}
	for _, f := range schema.Fields() {
		if !inData[f.Name] {
			names = append(names, f.Name)
		}
	}
	if inData[name] {
		// Read from the data, then gone before this transform: an earlier
		// one dropped it (strip), or the source was not asked for it.
		return fmt.Errorf("%s: column %q is in the data but not in the record here: an earlier transform dropped it, or it was not read; columns here: %s",
			stage, name, listColumns(schemaNames(schema)))
	}
	hint := ""
	if s := config.Suggest(name, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Errorf("%s: column %q is not in the data%s; columns: %s", stage, name, hint, listColumns(names))
}

func schemaNames(s *arrow.Schema) []string {
	names := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return names
}

// listColumns lists names for an error, the first 50 of a wide table.
func listColumns(names []string) string {
	const most = 50
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, ... (%d more)", strings.Join(names[:most], ", "), len(names)-most)
}

// colIndex is the index of the first column named name, or -1.
func colIndex(schema *arrow.Schema, name string) int {
	if idx := schema.FieldIndices(name); len(idx) > 0 {
		return idx[0]
	}
	return -1
}

// constColumn is one constant value served as a column of any length. It
// builds the column once for the largest batch seen and hands out zero-copy
// slices of it, so a run builds it about once.
type constColumn struct {
	val any
	typ arrow.DataType

	mu  sync.Mutex
	arr arrow.Array
}

// newConstColumn types a YAML constant: string, integer, number, boolean,
// or an object/list (a JSON column).
func newConstColumn(v any) (*constColumn, error) {
	c := &constColumn{val: v}
	switch x := v.(type) {
	case string:
		c.typ = arrow.BinaryTypes.String
	case int:
		c.typ = arrow.PrimitiveTypes.Int64
	case int64:
		c.typ = arrow.PrimitiveTypes.Int64
	case float64:
		c.typ = arrow.PrimitiveTypes.Float64
	case bool:
		c.typ = arrow.FixedWidthTypes.Boolean
	case map[string]any, []any:
		text, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("constant is not JSON-encodable: %v", err)
		}
		c.val, c.typ = text, record.JSON
	case nil:
		return nil, fmt.Errorf("a constant must not be null")
	default:
		return nil, fmt.Errorf("unsupported constant %v (%T)", v, v)
	}
	return c, nil
}

// get returns an n-row column; the caller releases it.
func (c *constColumn) get(n int) arrow.Array {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.arr == nil || c.arr.Len() < n {
		if c.arr != nil {
			c.arr.Release()
		}
		c.arr = c.build(n)
	}
	if c.arr.Len() == n {
		c.arr.Retain()
		return c.arr
	}
	return array.NewSlice(c.arr, 0, int64(n))
}

// repeat is n copies of v.
func repeat[T any](n int, v T) []T {
	vals := make([]T, n)
	for i := range vals {
		vals[i] = v
	}
	return vals
}

func (c *constColumn) build(n int) arrow.Array {
	switch v := c.val.(type) {
	case string:
		b := array.NewStringBuilder(constMem)
		defer b.Release()
		b.Reserve(n)
		b.ReserveData(n * len(v))
		for i := 0; i < n; i++ {
			b.Append(v)
		}
		return b.NewArray()
	case int, int64:
		var x int64
		if i, ok := v.(int); ok {
			x = int64(i)
		} else {
			x = v.(int64)
		}
		b := array.NewInt64Builder(constMem)
		defer b.Release()
		b.AppendValues(repeat(n, x), nil)
		return b.NewArray()
	case float64:
		b := array.NewFloat64Builder(constMem)
		defer b.Release()
		b.AppendValues(repeat(n, v), nil)
		return b.NewArray()
	case bool:
		b := array.NewBooleanBuilder(constMem)
		defer b.Release()
		b.AppendValues(repeat(n, v), nil)
		return b.NewArray()
	case []byte: // JSON text
		b := record.NewJSONBuilder(constMem)
		defer b.Release()
		sb := b.StorageBuilder().(*array.StringBuilder)
		sb.Reserve(n)
		sb.ReserveData(n * len(v))
		for i := 0; i < n; i++ {
			sb.BinaryBuilder.Append(v)
		}
		return b.NewArray()
	}
	panic(fmt.Sprintf("transforms: constColumn of %T", c.val)) // unreachable: newConstColumn typed it
}

// replaceColumns returns rec with the named columns set to cols (replacing a
// column of the same name in place, appending otherwise). It retains what it
// keeps; the caller still owns cols.
func replaceColumns(rec arrow.Record, names []string, cols []arrow.Array) arrow.Record {
	schema := rec.Schema()
	fields := append([]arrow.Field(nil), schema.Fields()...)
	arrs := append([]arrow.Array(nil), rec.Columns()...)
	for k, name := range names {
		f := arrow.Field{Name: name, Type: cols[k].DataType(), Nullable: true}
		if i := colIndex(schema, name); i >= 0 {
			fields[i], arrs[i] = f, cols[k]
		} else {
			fields = append(fields, f)
			arrs = append(arrs, cols[k])
		}
	}
	md := schema.Metadata()
	return array.NewRecord(arrow.NewSchema(fields, &md), arrs, rec.NumRows())
}

// dropColumns returns rec without the columns whose index is in drop, or
// nil when there is nothing to drop.
func dropColumns(rec arrow.Record, drop map[int]bool) arrow.Record {
	if len(drop) == 0 {
		return nil
	}
	schema := rec.Schema()
	var fields []arrow.Field
	var arrs []arrow.Array
	for i, f := range schema.Fields() {
		if !drop[i] {
			fields = append(fields, f)
			arrs = append(arrs, rec.Column(i))
		}
	}
	md := schema.Metadata()
	return array.NewRecord(arrow.NewSchema(fields, &md), arrs, rec.NumRows())
}

// requireNames is a projection that adds names to out (out.All stays All).
// internalNames are the internal columns (names starting with "_") that
// out needs: transforms that build a new record carry them through.
func internalNames(out pipeline.Columns) []string {
	if out.All {
		return nil
	}
	var names []string
	for _, n := range out.Names {
		if strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	return names
}

func requireNames(out pipeline.Columns, names ...string) pipeline.Columns {
	if out.All {
		return out
	}
	seen := map[string]bool{}
	res := pipeline.Columns{}
	for _, n := range append(append([]string(nil), out.Names...), names...) {
		if !seen[n] {
			seen[n] = true
			res.Names = append(res.Names, n)
		}
	}
	sort.Strings(res.Names)
	return res
}

// stringAt reads row i of a string-like column (utf8, large utf8, JSON,
// binary) without copying; ok is false for other types.
func stringAt(arr arrow.Array, i int) (string, bool) {
	switch a := arr.(type) {
	case *array.String:
		return a.Value(i), true
	case *array.LargeString:
		return a.Value(i), true
	case *record.JSONArray:
		return a.Value(i), true
	case *array.Binary:
		return string(a.Value(i)), true
	}
	return "", false
}

// isStringLike reports whether stringAt reads dt.
func isStringLike(dt arrow.DataType) bool {
	if record.IsJSON(dt) {
		return true
	}
	switch dt.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY:
		return true
	}
	return false
}

// schemaCache remembers one value derived from the last schema seen, which
// is almost always the schema of the next batch too.
type schemaCache[T any] struct {
	mu     sync.Mutex
	schema *arrow.Schema
	val    T
}

func (c *schemaCache[T]) get(s *arrow.Schema, build func(*arrow.Schema) (T, error)) (T, error) {
	c.mu.Lock()
	if c.schema != nil && (c.schema == s || c.schema.Equal(s)) {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	v, err := build(s)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	c.schema, c.val = s, v
	c.mu.Unlock()
	return v, nil
}

// reject builds a row fate with a reason.
// replaceAndDrop swaps in a transform's output record and drops the rows
// fates name. A rejected row's dead letter shows the row as the transform
// read it, from the input record, not as it rewrote it (a time it could
// not read, not the null it put in its place).
func replaceAndDrop(b *pipeline.Batch, mem memory.Allocator, out arrow.Record, fates map[int]pipeline.RowFate) error {
	for i, f := range fates {
		if f.Reject != nil && f.Reject.Values == nil {
			f.Reject.Values = pipeline.RowValues(b.Record, i)
		}
	}
	b.ReplaceRecord(out)
	return b.Drop(mem, fates)
}

func reject(stage, column, format string, args ...any) pipeline.RowFate {
	return pipeline.RowFate{Reject: &pipeline.Reject{Stage: "transform:" + stage, Column: column, Reason: fmt.Sprintf(format, args...)}}
}

// withoutName drops a column this transform writes from a projection.
func withoutName(out pipeline.Columns, name string) pipeline.Columns {
	if out.All {
		return out
	}
	res := pipeline.Columns{}
	for _, n := range out.Names {
		if n != name {
			res.Names = append(res.Names, n)
		}
	}
	return res
}

// named selects the columns called one of names.
func named(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}
