package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

func expandSpec() *config.Spec {
	return config.NewSpec(
		"turn a column holding whole Segment messages (JSON) into message fields",
		config.String("column", "the JSON column, or string column of JSON text, holding one message per row").
			Example("message"),
		config.Strings("keep", "other input columns to carry (they win over message keys of the same name)").Optional(),
	).WithDescription(`Each top-level key of the messages becomes a column named by it: type, userId,
timestamp, properties, context, ... A key whose values are all JSON strings
in a batch becomes a string column (timestamp, userId and the other ids are
then checked as the other sources' are); any other key becomes a JSON
column holding the value as written. Keys starting with "_" (_metadata)
become internal columns, which are never sent. The output holds these
columns, the columns named in keep, and the internal columns of the input.
A row whose value is null, not JSON, or not an object is rejected with the
reason. For a Snowflake VARIANT or BigQuery JSON column unloaded with each
event, a Kafka or Firehose record wrapping one, or the messages of the
segment sink's dead-letter file.`).
		WithExample("resend the segment sink's dead letters after fixing the cause", `column: message`).
		WithExample("a warehouse dump with the event in a JSON column", `column: payload
keep: [_key]`)
}

// Expand is the expand transform.
type Expand struct {
	column string
	keep   []string
	mem    memory.Allocator
	namedColumns
}

func newExpand(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	x := &Expand{column: conf.String("column"), keep: conf.Strings("keep"), mem: env.Alloc}
	if x.column == "" {
		return nil, conf.Errorf("column", "column must name the column holding the messages")
	}
	if x.mem == nil {
		x.mem = memory.DefaultAllocator
	}
	x.nameField(conf, "column")
	x.nameItems(conf, "keep")
	return x, nil
}

// Requires is the message column, the kept columns and the internal ones
// the output needs.
func (x *Expand) Requires(out pipeline.Columns) pipeline.Columns {
	names := append([]string{x.column}, x.keep...)
	return requireNames(pipeline.Columns{}, append(names, internalNames(out)...)...)
}

// expandKey is one message key: its value in each row (nil: absent or
// null), and whether every value is a JSON string.
type expandKey struct {
	name    string
	vals    [][]byte // views of the input column's buffer
	strings bool
}

// Apply replaces the record with the messages' fields.
func (x *Expand) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	b.DecodeDictionaries(x.mem, named(x.column))
	rec := b.Record
	ci := colIndex(rec.Schema(), x.column)
	if ci < 0 {
		return missingColumn("expand", x.column, rec.Schema())
	}
	col := rec.Column(ci)
	if !isStringLike(col.DataType()) {
		return fmt.Errorf("expand: column %q is %s; expand reads JSON text (a JSON or string column)", x.column, col.DataType())
	}
	n := int(rec.NumRows())
	var keys []*expandKey
	byName := map[string]*expandKey{}
	fates := map[int]pipeline.RowFate{}
	var members []jsonscan.Member
	for i := 0; i < n; i++ {
		if col.IsNull(i) {
			fates[i] = reject("expand", x.column, "%s is null: there is no message to send", x.column)
			continue
		}
		s, _ := stringAt(col, i)
		raw := unsafe.Slice(unsafe.StringData(s), len(s)) // read only, while rec lives
		if _, err := jsonscan.Strict.Valid(raw); err != nil {
			fates[i] = reject("expand", x.column, "%s holds invalid JSON: %v", x.column, err)
			continue
		}
		var isObject bool
		var err error
		if members, isObject, err = jsonscan.Members(raw, members[:0]); err != nil || !isObject {
			fates[i] = reject("expand", x.column, "%s holds %s, not a message object", x.column, jsonscan.Describe(raw))
			continue
		}
		if bad := badKey(members); bad >= 0 {
			fates[i] = reject("expand", x.column, "%s has the key %q, which cannot be a message field (empty, or with a '.')",
				x.column, members[bad].Name())
			continue
		}
		for _, m := range members {
			name := m.Name()
			k := byName[name]
			if k == nil {
				k = &expandKey{name: strings.Clone(name), vals: make([][]byte, n), strings: true}
				byName[k.name] = k
				keys = append(keys, k)
			}
			v := raw[m.Val:m.End]
			if string(v) == "null" {
				k.vals[i] = nil // a repeated key's last value wins, as in encoding/json: null too
				continue
			}
			k.vals[i] = v
			k.strings = k.strings && v[0] == '"'
		}
	}
	var fields []arrow.Field
	var cols []arrow.Array
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	taken := map[string]bool{}
	for _, name := range x.keep {
		j := colIndex(rec.Schema(), name)
		if j < 0 {
			return missingColumn("expand", name, rec.Schema())
		}
		taken[name] = true
		fields = append(fields, rec.Schema().Field(j))
		c := rec.Column(j)
		c.Retain()
		cols = append(cols, c)
	}
	for j, f := range rec.Schema().Fields() {
		if strings.HasPrefix(f.Name, "_") && !taken[f.Name] && j != ci {
			taken[f.Name] = true
			fields = append(fields, f)
			c := rec.Column(j)
			c.Retain()
			cols = append(cols, c)
		}
	}
	for _, k := range keys {
		if taken[k.name] {
			continue
		}
		arr, err := x.build(k)
		if err != nil {
			return err
		}
		fields = append(fields, arrow.Field{Name: k.name, Type: arr.DataType(), Nullable: true})
		cols = append(cols, arr)
	}
	return replaceAndDrop(b, x.mem, array.NewRecord(arrow.NewSchema(fields, nil), cols, int64(n)), fates)
}

// build makes a key's column: strings when every value is a JSON string,
// else JSON text.
func (x *Expand) build(k *expandKey) (arrow.Array, error) {
	if k.strings {
		bl := array.NewStringBuilder(x.mem)
		defer bl.Release()
		for _, v := range k.vals {
			switch {
			case v == nil:
				bl.AppendNull()
			case bytes.IndexByte(v, '\\') < 0:
				bl.BinaryBuilder.Append(v[1 : len(v)-1])
			default:
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return nil, fmt.Errorf("expand: key %q: %w", k.name, err) // Valid passed it: a bug
				}
				bl.Append(s)
			}
		}
		return bl.NewArray(), nil
	}
	bl := record.NewJSONBuilder(x.mem)
	defer bl.Release()
	for _, v := range k.vals {
		if v == nil {
			bl.AppendNull()
		} else {
			record.AppendJSON(bl, v)
		}
	}
	return bl.NewArray(), nil
}

// badKey is the index of the first key that cannot name a column of the
// record contract (empty, or a '.', which would read as a path), or -1.
func badKey(members []jsonscan.Member) int {
	for i, m := range members {
		if name := m.Name(); name == "" || strings.Contains(name, ".") {
			return i
		}
	}
	return -1
}
