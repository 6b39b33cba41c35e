package transforms

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

const benchRows = 1 << 20

// benchRecord is a 1M-row archive-like record.
func benchRecord(mem memory.Allocator) arrow.Record {
	ub, eb, tb, mb := array.NewStringBuilder(mem), array.NewStringBuilder(mem), array.NewStringBuilder(mem), array.NewStringBuilder(mem)
	ab := array.NewFloat64Builder(mem)
	pb, cb := record.NewJSONBuilder(mem), record.NewJSONBuilder(mem)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < benchRows; i++ {
		ub.Append(fmt.Sprintf("cus_%d", i%50000))
		eb.Append([]string{"Order Completed", "Signed Up", "Page Viewed"}[i%3])
		tb.Append(t0.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000Z"))
		mb.Append(fmt.Sprintf("msg-%d", i))
		ab.Append(float64(i%1000) / 10)
		record.AppendJSON(pb, []byte(fmt.Sprintf(`{"order_id":"ord_%d","total":%d.5,"currency":"EUR","internal_x":1}`, i, i%1000)))
		record.AppendJSON(cb, []byte(`{"ip":"1.2.3.4","library":{"name":"analytics.js","version":"4.1.0"}}`))
	}
	var cols []arrow.Array
	for _, bl := range []array.Builder{ub, eb, tb, mb, ab, pb, cb} {
		cols = append(cols, bl.NewArray())
		bl.Release()
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "userId", Type: str}, {Name: "event", Type: str},
		{Name: "timestamp", Type: str}, {Name: "messageId", Type: str}, {Name: "amount", Type: f64},
		record.JSONField("properties", true), record.JSONField("context", true)}, nil)
	rec := array.NewRecord(schema, cols, benchRows)
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func benchTransform(b *testing.B, name, conf string, prep ...pipeline.Transform) {
	mem := memory.NewGoAllocator()
	rec := benchRecord(mem)
	defer rec.Release()
	// bring the input to the shape this transform sees in a pipeline
	if len(prep) > 0 {
		pb := pipeline.NewBatch("s", 0, rec)
		rec.Retain()
		for _, p := range prep {
			if err := p.Apply(context.Background(), pb); err != nil {
				b.Fatal(err)
			}
		}
		rec.Release()
		rec = pb.Record
		rec.Retain()
		pb.Release()
	}
	tr := mustTransform(b, mem, name, conf)
	if ts, ok := tr.(*Timestamp); ok {
		ts.now = func() time.Time { return fixedNow }
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec.Retain()
		bt := pipeline.NewBatch("s", 0, rec)
		if err := tr.Apply(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
		if bt.NumRows()+int64(len(bt.Rejects))+bt.Filtered != benchRows {
			b.Fatal("rows lost")
		}
		bt.Release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchRows, "ns/row")
	b.ReportMetric(float64(b.N)*benchRows/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkMap(b *testing.B) {
	benchTransform(b, "map", "type: track\nevent: event\nuserId: userId\ntimestamp: timestamp\nmessageId: messageId\nproperties: {total: amount, source: {const: backfill}}\ncontext: context")
}

func BenchmarkTimestampRFC3339(b *testing.B) { benchTransform(b, "timestamp", "{}") }

func BenchmarkTimestampMillisUTC(b *testing.B) {
	benchTransform(b, "timestamp", "{}", mustTransform(b, memory.DefaultAllocator, "timestamp", "not_after: none"))
}

func BenchmarkStripColumns(b *testing.B) {
	benchTransform(b, "strip", "fields: [messageId, amount]")
}

func BenchmarkStripJSON(b *testing.B) {
	benchTransform(b, "strip", "fields: [context.library, \"properties.internal_*\"]")
}

// BenchmarkStripJSONAbsent strips keys no row has: the common case of
// stripping rare fields (debug or internal properties).
func BenchmarkStripJSONAbsent(b *testing.B) {
	benchTransform(b, "strip", "fields: [context.secret, \"properties.debug_*\"]")
}

func BenchmarkIntegrationsReplace(b *testing.B) {
	benchTransform(b, "integrations", "destinations: {All: false, Amplitude: true, Warehouses: {all: false}}")
}

func BenchmarkIntegrationsMerge(b *testing.B) {
	benchTransform(b, "integrations", "from_column: context\ndestinations: {All: false}")
}

func BenchmarkMessageID(b *testing.B) { benchTransform(b, "message_id", "salt: replay-1") }

// BenchmarkExpand spreads a 4-key JSON object (properties) into columns.
func BenchmarkExpand(b *testing.B) { benchTransform(b, "expand", "column: properties") }

func BenchmarkFilterExpr(b *testing.B) {
	benchTransform(b, "filter", `expr: event == "Order Completed" && amount > 10`)
}

func BenchmarkFilterAfter(b *testing.B) {
	benchTransform(b, "filter", "after: 2024-01-05", mustTransform(b, memory.DefaultAllocator, "timestamp", "not_after: none"))
}

// BenchmarkFilterAmountCurrency is the shape of most filters: comparisons of
// flat columns with literals, which run vectorized.
func BenchmarkFilterAmountCurrency(b *testing.B) {
	benchTransform(b, "filter", `expr: amount > 50 && currency == "EUR"`, mustTransform(b, memory.DefaultAllocator, "set", "fields: {currency: EUR}"))
}

// BenchmarkFilterExprFallback runs expr's VM on every row (a function call).
func BenchmarkFilterExprFallback(b *testing.B) {
	benchTransform(b, "filter", `expr: len(event) > 10`)
}

// BenchmarkFilterJSONPath runs expr on every row with a decoded JSON column.
func BenchmarkFilterJSONPath(b *testing.B) {
	benchTransform(b, "filter", `expr: properties.total > 50`)
}
