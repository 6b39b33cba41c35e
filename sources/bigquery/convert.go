package bigquery

import (
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline/record"
)

// What the Storage Read API sends, and what the pipeline gets:
//
//	INT64, FLOAT64, BOOL, STRING, BYTES  int64, float64, bool, utf8, binary (as is)
//	TIMESTAMP                             timestamp[us, tz=UTC] (as is)
//	DATETIME                              timestamp[us] without zone (as is)
//	DATE, TIME                            date32, time64[us] (as is)
//	NUMERIC, BIGNUMERIC                   decimal128(38,9), decimal256(76,38) -> utf8, exact
//	JSON                                  utf8 + google:sqlType:json -> record.JSON
//	GEOGRAPHY                             utf8 (WKT) + google:sqlType:geography -> utf8
//	STRUCT, REPEATED                      struct, list (children converted the same way)
//
// Decimals become exact decimal strings because the sink and the Segment
// API take JSON numbers as float64: a string keeps every digit.
const (
	extName     = "ARROW:extension:name"
	extMetadata = "ARROW:extension:metadata"
	sqlJSON     = "google:sqlType:json"
	sqlGeo      = "google:sqlType:geography"
)

func extensionOf(f arrow.Field) string {
	if i := f.Metadata.FindKey(extName); i >= 0 {
		return f.Metadata.Values()[i]
	}
	return ""
}

// withoutExtension drops the BigQuery extension keys (the data type now
// says what the column is) and keeps any other metadata.
func withoutExtension(md arrow.Metadata) arrow.Metadata {
	var keys, vals []string
	for i, k := range md.Keys() {
		if k != extName && k != extMetadata {
			keys = append(keys, k)
			vals = append(vals, md.Values()[i])
		}
	}
	return arrow.NewMetadata(keys, vals)
}

// convertField is the field the pipeline sees for a server field.
func convertField(f arrow.Field) arrow.Field {
	out := f
	switch t := f.Type.(type) {
	case *arrow.Decimal128Type, *arrow.Decimal256Type:
		out.Type = arrow.BinaryTypes.String
	case *arrow.StringType:
		switch extensionOf(f) {
		case sqlJSON:
			out.Type = record.JSON
			out.Metadata = withoutExtension(f.Metadata)
		case sqlGeo:
			out.Metadata = withoutExtension(f.Metadata)
		}
	case *arrow.StructType:
		fields := make([]arrow.Field, t.NumFields())
		for i, c := range t.Fields() {
			fields[i] = convertField(c)
		}
		out.Type = arrow.StructOf(fields...)
	case *arrow.ListType:
		out.Type = arrow.ListOfField(convertField(t.ElemField()))
	}
	return out
}

func needsConversion(from, to arrow.Field) bool {
	return !arrow.TypeEqual(from.Type, to.Type) || !from.Metadata.Equal(to.Metadata)
}

// convertSchema returns the pipeline schema and whether any column changes.
func convertSchema(sc *arrow.Schema) (*arrow.Schema, bool) {
	fields := make([]arrow.Field, sc.NumFields())
	changed := false
	for i, f := range sc.Fields() {
		fields[i] = convertField(f)
		changed = changed || needsConversion(f, fields[i])
	}
	if !changed {
		return sc, false
	}
	md := sc.Metadata()
	return arrow.NewSchema(fields, &md), true
}

// convertRecord rebuilds rec under schema out. It returns a new reference;
// rec is left to the caller.
func convertRecord(mem memory.Allocator, rec arrow.Record, out *arrow.Schema) arrow.Record {
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		cols[i] = convertArray(mem, rec.Column(i).Data(), rec.Schema().Field(i), out.Field(i))
	}
	res := array.NewRecord(out, cols, rec.NumRows())
	for _, c := range cols {
		c.Release()
	}
	return res
}

// convertArray returns a new array of field to holding the data of from.
func convertArray(mem memory.Allocator, d arrow.ArrayData, from, to arrow.Field) arrow.Array {
	if !needsConversion(from, to) {
		return array.MakeFromData(d)
	}
	switch ft := from.Type.(type) {
	case *arrow.Decimal128Type:
		a := array.NewDecimal128Data(d)
		defer a.Release()
		return decimalStrings(mem, a.Len(), a.IsNull, func(i int) string {
			return decimalText(a.Value(i).BigInt().String(), ft.Scale)
		})
	case *arrow.Decimal256Type:
		a := array.NewDecimal256Data(d)
		defer a.Release()
		return decimalStrings(mem, a.Len(), a.IsNull, func(i int) string {
			return decimalText(a.Value(i).BigInt().String(), ft.Scale)
		})
	case *arrow.StringType:
		if record.IsJSON(to.Type) {
			storage := array.MakeFromData(d)
			defer storage.Release()
			return array.NewExtensionArrayWithStorage(record.JSON, storage)
		}
		return array.MakeFromData(d) // metadata-only change
	case *arrow.StructType:
		tt := to.Type.(*arrow.StructType)
		children := make([]arrow.ArrayData, len(d.Children()))
		for i, c := range d.Children() {
			a := convertArray(mem, c, ft.Field(i), tt.Field(i))
			children[i] = a.Data()
			defer a.Release()
		}
		nd := array.NewData(to.Type, d.Len(), d.Buffers(), children, d.NullN(), d.Offset())
		defer nd.Release()
		return array.MakeFromData(nd)
	case *arrow.ListType:
		tt := to.Type.(*arrow.ListType)
		vals := convertArray(mem, d.Children()[0], ft.ElemField(), tt.ElemField())
		defer vals.Release()
		nd := array.NewData(to.Type, d.Len(), d.Buffers(), []arrow.ArrayData{vals.Data()}, d.NullN(), d.Offset())
		defer nd.Release()
		return array.MakeFromData(nd)
	}
	return array.MakeFromData(d)
}

func decimalStrings(mem memory.Allocator, n int, isNull func(int) bool, text func(int) string) arrow.Array {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		if isNull(i) {
			b.AppendNull()
			continue
		}
		b.Append(text(i))
	}
	return b.NewArray()
}

// decimalText places the decimal point in an unscaled integer's digits,
// exactly, and trims trailing fractional zeros ("1.500000000" -> "1.5").
func decimalText(digits string, scale int32) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	if scale > 0 {
		for len(digits) <= int(scale) {
			digits = "0" + digits
		}
		cut := len(digits) - int(scale)
		frac := strings.TrimRight(digits[cut:], "0")
		digits = digits[:cut]
		if frac != "" {
			digits += "." + frac
		}
	} else if scale < 0 {
		digits += strings.Repeat("0", int(-scale))
	}
	if neg && digits != "0" {
		digits = "-" + digits
	}
	return digits
}
