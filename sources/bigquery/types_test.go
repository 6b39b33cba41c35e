package bigquery

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/decimal256"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

func ext(name string) arrow.Metadata {
	if name == sqlGeo {
		return arrow.NewMetadata([]string{extName, extMetadata}, []string{name, `{"encoding": "WKT"}`})
	}
	return arrow.NewMetadata([]string{extName}, []string{name})
}

// allTypes is one row of every BigQuery type, shaped as the Storage Read
// API sends it (types and field metadata), plus a row of nulls.
func allTypes(mem memory.Allocator) arrow.Record {
	num := &arrow.Decimal128Type{Precision: 38, Scale: 9}
	bignum := &arrow.Decimal256Type{Precision: 76, Scale: 38}
	props := arrow.StructOf(
		arrow.Field{Name: "plan", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "total", Type: num, Nullable: true},
	)
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "dt", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true, Metadata: ext("google:sqlType:datetime")},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "num", Type: num, Nullable: true},
		{Name: "bignum", Type: bignum, Nullable: true},
		{Name: "doc", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: ext(sqlJSON)},
		{Name: "geo", Type: arrow.BinaryTypes.String, Nullable: true, Metadata: ext(sqlGeo)},
		{Name: "props", Type: props, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "amounts", Type: arrow.ListOf(num)},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	ts := time.Date(2024, 2, 29, 12, 34, 56, 789012000, time.UTC)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2}, nil)
	b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
	b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
	b.Field(3).(*array.Date32Builder).Append(arrow.Date32FromTime(ts))
	b.Field(4).(*array.Decimal128Builder).Append(decimal128.FromI64(-12345000000)) // -12.345
	big38, _ := new(big.Int).SetString("1234567890123456789012345678901234567"+"00000000000000000000000000000000000001", 10)
	b.Field(5).(*array.Decimal256Builder).Append(decimal256.FromBigInt(big38))
	b.Field(6).(*array.StringBuilder).Append(`{"a":[1,2]}`)
	b.Field(7).(*array.StringBuilder).Append("POINT(2.35 48.85)")
	sb := b.Field(8).(*array.StructBuilder)
	sb.Append(true)
	sb.FieldBuilder(0).(*array.StringBuilder).Append("pro")
	sb.FieldBuilder(1).(*array.Decimal128Builder).Append(decimal128.FromI64(1500000000)) // 1.5
	lb := b.Field(9).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.StringBuilder).AppendValues([]string{"x", "y"}, nil)
	ab := b.Field(10).(*array.ListBuilder)
	ab.Append(true)
	ab.ValueBuilder().(*array.Decimal128Builder).Append(decimal128.FromI64(2000000000))
	for i := 1; i <= 8; i++ { // row 2: nulls
		b.Field(i).AppendNull()
	}
	lb.Append(true) // empty lists
	ab.Append(true)
	return b.NewRecord()
}

func TestTypesComeThrough(t *testing.T) {
	srv, mem := eventsServer(t, "", 0)
	rec := allTypes(memory.NewGoAllocator())
	srv.AddTable("proj.ds.types", rec)
	rec.Release()

	src := newSource(t, srv, "table: proj.ds.types", newState(), mem)
	splits, err := src.Splits(context.Background())
	if err != nil || len(splits) != 2 {
		t.Fatalf("splits %v %v", splits, err)
	}
	var rows []map[string]any
	var sc *arrow.Schema
	for _, sp := range splits {
		rd, err := src.Open(context.Background(), sp, pipeline.ReadOptions{Columns: pipeline.AllColumns})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rd.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sc = b.Record.Schema()
		row := map[string]any{}
		for i, f := range sc.Fields() {
			row[f.Name] = b.Record.Column(i).GetOneForMarshal(0)
			if f.Name == "doc" && !b.Record.Column(i).IsNull(0) {
				row["doc"] = b.Record.Column(i).(*record.JSONArray).Value(0)
			}
		}
		rows = append(rows, row)
		b.Release()
		rd.Close()
	}
	types := map[string]string{}
	for _, f := range sc.Fields() {
		types[f.Name] = f.Type.String()
	}
	want := map[string]string{
		"ts": "timestamp[us, tz=UTC]", "dt": "timestamp[us]", "d": "date32", "num": "utf8", "bignum": "utf8",
		"doc": "json", "geo": "utf8", "props": "struct<plan: utf8, total: utf8>", "tags": "list<item: utf8, nullable>",
		"amounts": "list<item: utf8, nullable>",
	}
	for k, v := range want {
		if types[k] != v {
			t.Errorf("column %s: type %s, want %s", k, types[k], v)
		}
	}
	if !record.IsJSON(sc.Field(fieldIndex(sc, "doc")).Type) {
		t.Errorf("JSON column is not record.JSON")
	}
	if g := sc.Field(fieldIndex(sc, "geo")); g.Metadata.FindKey(extName) >= 0 {
		t.Errorf("GEOGRAPHY keeps BigQuery's extension metadata: %v", g.Metadata)
	}
	r := rows[0]
	checks := map[string]string{
		"num":     "-12.345",
		"bignum":  "1234567890123456789012345678901234567.00000000000000000000000000000000000001",
		"doc":     `{"a":[1,2]}`,
		"geo":     "POINT(2.35 48.85)",
		"ts":      "2024-02-29 12:34:56.789012", // the zone is in the type
		"dt":      "2024-02-29 12:34:56.789012",
		"d":       "2024-02-29",
		"props":   "map[plan:pro total:1.5]",
		"tags":    "[x y]",
		"amounts": "[2]",
	}
	for k, v := range checks {
		if got := strings.TrimSpace(strings.Trim(fmtAny(r[k]), " ")); got != v {
			t.Errorf("row 1 %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"num", "bignum", "doc", "geo", "ts", "dt", "d", "props"} {
		if rows[1][k] != nil {
			t.Errorf("row 2 %s = %v, want null", k, rows[1][k])
		}
	}
}

func fmtAny(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.RawMessage:
		return strings.NewReplacer(`"`, "", ",", " ").Replace(string(v))
	case nil:
		return "<nil>"
	}
	return strings.ReplaceAll(strings.TrimSpace(sprint(v)), "\n", "")
}

func TestDecimalText(t *testing.T) {
	for _, c := range []struct {
		digits string
		scale  int32
		want   string
	}{
		{"0", 9, "0"}, {"-5", 9, "-0.000000005"}, {"1500000000", 9, "1.5"}, {"-1000000000", 9, "-1"}, {"12", -2, "1200"},
	} {
		if got := decimalText(c.digits, c.scale); got != c.want {
			t.Errorf("decimalText(%s, %d) = %s, want %s", c.digits, c.scale, got, c.want)
		}
	}
}

func sprint(v any) string { return fmt.Sprint(v) }
