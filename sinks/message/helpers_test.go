package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/backfillhq/backfill/pipeline/record"
)

// col is a test column: values are Go values, nil meaning null.
type col struct {
	name string
	typ  arrow.DataType
	vals []any
}

func str(name string, vals ...any) col { return col{name, arrow.BinaryTypes.String, vals} }
func js(name string, vals ...any) col  { return col{name, record.JSON, vals} }

// makeRecord builds a record from columns through Arrow's own builders.
func makeRecord(t testing.TB, mem memory.Allocator, cols ...col) arrow.Record {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	rb := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	defer rb.Release()
	for i, c := range cols {
		for _, v := range c.vals {
			appendValue(t, rb.Field(i), v)
		}
	}
	return rb.NewRecord()
}

func appendValue(t testing.TB, b array.Builder, v any) {
	t.Helper()
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.ExtensionBuilder:
		if sb, ok := b.StorageBuilder().(*array.StringBuilder); ok && record.IsJSON(b.Type()) {
			record.AppendJSON(b, []byte(v.(string)))
			return
		} else if ok {
			sb.Append(v.(string))
			return
		}
	case *array.StringBuilder:
		b.Append(v.(string))
		return
	case *array.LargeStringBuilder:
		b.Append(v.(string))
		return
	case *array.BinaryBuilder:
		b.Append(v.([]byte))
		return
	case *array.BooleanBuilder:
		b.Append(v.(bool))
		return
	case *array.Int8Builder:
		b.Append(int8(v.(int)))
		return
	case *array.Int32Builder:
		b.Append(int32(v.(int)))
		return
	case *array.Int64Builder:
		b.Append(int64(v.(int)))
		return
	case *array.Uint64Builder:
		b.Append(uint64(v.(int)))
		return
	case *array.Float64Builder:
		b.Append(v.(float64))
		return
	case *array.Float32Builder:
		b.Append(float32(v.(float64)))
		return
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.(int)))
		return
	case *array.Date32Builder:
		b.Append(arrow.Date32(v.(int)))
		return
	case *array.Date64Builder:
		b.Append(arrow.Date64(v.(int)))
		return
	case *array.BinaryDictionaryBuilder:
		if err := b.AppendString(v.(string)); err != nil {
			t.Fatal(err)
		}
		return
	case *array.ListBuilder:
		b.Append(true)
		for _, x := range v.([]any) {
			appendValue(t, b.ValueBuilder(), x)
		}
		return
	case *array.StructBuilder:
		b.Append(true)
		m := v.([]any)
		for i := 0; i < b.NumField(); i++ {
			appendValue(t, b.FieldBuilder(i), m[i])
		}
		return
	case *array.MapBuilder:
		b.Append(true)
		kv := v.([]any)
		for i := 0; i < len(kv); i += 2 {
			appendValue(t, b.KeyBuilder(), kv[i])
			appendValue(t, b.ItemBuilder(), kv[i+1])
		}
		return
	}
	t.Fatalf("test helper cannot append %T to %T", v, b)
}

// decode parses one message, failing on invalid JSON or a key that
// appears twice in one object (encoding/json would hide it).
func decode(t testing.TB, msg []byte) map[string]any {
	t.Helper()
	if bytes.ContainsAny(msg, "\n\r") {
		t.Fatalf("message spans lines: %s", msg)
	}
	if err := noDupKeys(json.NewDecoder(bytes.NewReader(msg))); err != nil {
		t.Fatalf("%v in %s", err, msg)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(msg))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("invalid JSON %s: %v", msg, err)
	}
	return m
}

func noDupKeys(d *json.Decoder) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return err
			}
			if seen[k.(string)] {
				return fmt.Errorf("key %q appears twice", k)
			}
			seen[k.(string)] = true
			if err := noDupKeys(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
	case json.Delim('['):
		for d.More() {
			if err := noDupKeys(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
	}
	return err
}

func arrayNewRecord(s *arrow.Schema, cols []arrow.Array, n int64) arrow.Record {
	return array.NewRecord(s, cols, n)
}
