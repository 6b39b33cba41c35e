package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// set, rename and cast: small column edits.

func setSpec() *config.Spec {
	return config.NewSpec("set columns to constants (replacing columns of the same name)",
		config.Map("fields", "message path -> constant (string, number, boolean, or an object/list written as JSON)", config.Any("", "")).
			Example(map[string]any{"context.library.name": "backfill", "properties.source": "import"}),
	).WithExample("tag every message", `fields:
  properties.imported: true
  context.library: {name: backfill, version: "1.0"}`)
}

func renameSpec() *config.Spec {
	return config.NewSpec("rename columns",
		config.Map("fields", "old column name -> new name", config.String("", "")).
			Example(map[string]string{"user_id": "userId"}),
	).WithExample("snake to camel", `fields: {user_id: userId, anonymous_id: anonymousId}`)
}

func castSpec() *config.Spec {
	return config.NewSpec("convert column types; a value that does not convert rejects its row",
		config.Map("fields", "column -> type: string, int64, float64, bool, timestamp (RFC 3339 and ISO-8601 with or without zone, 'T' or space, or a date; no zone means UTC; to timestamp[ms, UTC]; the timestamp transform takes other layouts, unix numbers and zones) or json (JSON text to a JSON column)",
			config.String("", "").Enum(castTypes...)).Example(map[string]string{"properties.total": "float64"}),
	).WithExample("CSV strings to numbers", `fields: {properties.total: float64, properties.qty: int64, properties.gift: bool}`)
}

var castTypes = []string{"string", "int64", "float64", "bool", "timestamp", "json"}

// Set is the set transform.
type Set struct {
	names []string
	cols  []*constColumn
}

func newSet(conf *config.Conf, _ *pipeline.Env) (pipeline.Transform, error) {
	s := &Set{}
	var errs []error
	for _, e := range conf.Map("fields") {
		c, err := newConstColumn(e.Value)
		if err != nil {
			errs = append(errs, conf.NodeErrorf(e.Node, conf.Path()+"/fields/"+e.Key, "%s: %v", e.Key, err))
			continue
		}
		s.names, s.cols = append(s.names, e.Key), append(s.cols, c)
	}
	if len(s.names) == 0 && len(errs) == 0 {
		errs = append(errs, conf.Errorf("fields", "set sets nothing"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply adds the constant columns.
func (s *Set) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	n := int(b.Record.NumRows())
	arrs := make([]arrow.Array, len(s.cols))
	for i, c := range s.cols {
		arrs[i] = c.get(n)
		defer arrs[i].Release()
	}
	b.ReplaceRecord(replaceColumns(b.Record, s.names, arrs))
	return nil
}

// Requires drops the columns set here from the projection.
func (s *Set) Requires(out pipeline.Columns) pipeline.Columns {
	for _, n := range s.names {
		out = withoutName(out, n)
	}
	return out
}

// Rename is the rename transform.
type Rename struct {
	from, to []string
	namedColumns
}

func newRename(conf *config.Conf, _ *pipeline.Env) (pipeline.Transform, error) {
	r := &Rename{}
	var errs []error
	seen := map[string]bool{}
	for _, e := range conf.Map("fields") {
		to, _ := e.Value.(string)
		if to == "" || seen[to] {
			errs = append(errs, conf.NodeErrorf(e.Node, conf.Path()+"/fields/"+e.Key, "%s: the new name is empty or used twice", e.Key))
		}
		seen[to] = true
		r.from, r.to = append(r.from, e.Key), append(r.to, to)
	}
	if len(r.from) == 0 && len(errs) == 0 {
		errs = append(errs, conf.Errorf("fields", "rename renames nothing"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.nameKeys(conf, "fields")
	return r, nil
}

// Apply renames columns without touching their data.
func (r *Rename) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	s := b.Record.Schema()
	fields := append([]arrow.Field(nil), s.Fields()...)
	for k, from := range r.from {
		i := colIndex(s, from)
		if i < 0 {
			return missingColumn("rename", from, s)
		}
		fields[i].Name = r.to[k]
	}
	md := s.Metadata()
	if data := pipeline.DataColumns(s); data != nil {
		// The data's columns as they are named from here on: a per batch
		// cost in names, for the error of a later missing column.
		for i, n := range data {
			if k := slices.Index(r.from, n); k >= 0 {
				data[i] = r.to[k]
			}
		}
		md = pipeline.DataColumnsMetadata(md, data)
	}
	b.ReplaceRecord(array.NewRecord(arrow.NewSchema(fields, &md), b.Record.Columns(), b.Record.NumRows()))
	return nil
}

// Requires asks for the old names of renamed columns, and for every
// column it renames: Apply needs them whether or not a later transform
// reads them.
func (r *Rename) Requires(out pipeline.Columns) pipeline.Columns {
	if out.All {
		return out
	}
	res := pipeline.Columns{}
	for _, n := range out.Names {
		for k, to := range r.to {
			if n == to {
				n = r.from[k]
			}
		}
		res.Names = append(res.Names, n)
	}
	return requireNames(res, r.from...)
}

// Cast is the cast transform.
type Cast struct {
	cols, types []string
	mem         memory.Allocator
	namedColumns
}

func newCast(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	c := &Cast{mem: env.Alloc}
	for _, e := range conf.Map("fields") {
		c.cols, c.types = append(c.cols, e.Key), append(c.types, e.Value.(string))
	}
	if len(c.cols) == 0 {
		return nil, conf.Errorf("fields", "cast converts nothing")
	}
	c.nameKeys(conf, "fields")
	return c, nil
}

// Requires adds the columns converted: Apply needs them whether or not a
// later transform reads them.
func (c *Cast) Requires(out pipeline.Columns) pipeline.Columns {
	return requireNames(out, c.cols...)
}

// Apply converts each column; rows with a value that does not convert are
// rejected naming the column and the value.
func (c *Cast) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	b.DecodeDictionaries(c.mem, named(c.cols...))
	rec := b.Record
	var fates map[int]pipeline.RowFate
	bad := func(i int, col, format string, args ...any) {
		if fates == nil {
			fates = map[int]pipeline.RowFate{}
		}
		if _, done := fates[i]; !done {
			fates[i] = reject("cast", col, format, args...)
		}
	}
	outs := make([]arrow.Array, 0, len(c.cols))
	for k, name := range c.cols {
		i := colIndex(rec.Schema(), name)
		if i < 0 {
			return missingColumn("cast", name, rec.Schema())
		}
		out, err := c.convert(rec.Column(i), name, c.types[k], bad)
		if err != nil {
			return err
		}
		defer out.Release()
		outs = append(outs, out)
	}
	return replaceAndDrop(b, c.mem, replaceColumns(rec, c.cols, outs), fates)
}

func (c *Cast) convert(in arrow.Array, name, typ string, bad func(int, string, string, ...any)) (arrow.Array, error) {
	n := in.Len()
	if typ == "string" {
		if in.DataType().ID() == arrow.STRING && !record.IsJSON(in.DataType()) {
			in.Retain()
			return in, nil
		}
		bl := array.NewStringBuilder(c.mem)
		defer bl.Release()
		for i := 0; i < n; i++ {
			if in.IsNull(i) {
				bl.AppendNull()
			} else if s, ok := stringAt(in, i); ok {
				bl.Append(s)
			} else {
				bl.Append(string(canonicalValue(nil, in, i)))
			}
		}
		return bl.NewArray(), nil
	}
	if !isStringLike(in.DataType()) {
		if (typ == "int64" && in.DataType().ID() == arrow.INT64) || (typ == "float64" && in.DataType().ID() == arrow.FLOAT64) ||
			(typ == "bool" && in.DataType().ID() == arrow.BOOL) || (typ == "timestamp" && arrow.TypeEqual(in.DataType(), TimestampType)) {
			in.Retain()
			return in, nil
		}
		return nil, fmt.Errorf("cast: column %q is %s; cast converts strings (or any type to string)", name, in.DataType())
	}
	var bl array.Builder
	switch typ {
	case "int64":
		bl = array.NewInt64Builder(c.mem)
	case "float64":
		bl = array.NewFloat64Builder(c.mem)
	case "bool":
		bl = array.NewBooleanBuilder(c.mem)
	case "timestamp":
		bl = array.NewTimestampBuilder(c.mem, TimestampType)
	case "json":
		bl = record.NewJSONBuilder(c.mem)
	}
	defer bl.Release()
	bl.Reserve(n)
	for i := 0; i < n; i++ {
		s, _ := stringAt(in, i)
		if in.IsNull(i) {
			bl.AppendNull()
			continue
		}
		t := strings.TrimSpace(s)
		var err error
		switch x := bl.(type) {
		case *array.Int64Builder:
			var v int64
			if v, err = strconv.ParseInt(t, 10, 64); err == nil {
				x.Append(v)
			}
		case *array.Float64Builder:
			var v float64
			if v, err = strconv.ParseFloat(t, 64); err == nil {
				x.Append(v)
			}
		case *array.BooleanBuilder:
			var v bool
			if v, err = strconv.ParseBool(t); err == nil {
				x.Append(v)
			}
		case *array.TimestampBuilder:
			var v time.Time
			if v, err = parseISO(t); err == nil {
				x.Append(arrow.Timestamp(v.UnixMilli()))
			}
		case *array.ExtensionBuilder:
			if !json.Valid([]byte(t)) {
				err = errors.New("invalid JSON")
			} else {
				record.AppendJSON(x, []byte(t))
			}
		}
		if err != nil {
			bad(i, name, "%s: %.80q is not a valid %s", name, s, typ)
			bl.AppendNull()
		}
	}
	return bl.NewArray(), nil
}
