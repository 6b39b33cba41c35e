package message

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/backfillhq/backfill/pipeline"
)

// segmentLike builds n rows of a 12-column, Segment-like track record
// (about 335 bytes of JSON per event with the derived messageId and
// context.library).
func segmentLike(mem memory.Allocator, n int) arrow.Record {
	ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	s := arrow.NewSchema([]arrow.Field{
		{Name: "type", Type: arrow.BinaryTypes.String},
		{Name: "event", Type: arrow.BinaryTypes.String},
		{Name: "userId", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "anonymousId", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "timestamp", Type: ts},
		{Name: "properties.order_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "properties.total", Type: arrow.PrimitiveTypes.Float64},
		{Name: "properties.currency", Type: arrow.BinaryTypes.String},
		{Name: "properties.plan", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "properties.coupon", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "context.ip", Type: arrow.BinaryTypes.String},
		{Name: "context.locale", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	plans := []string{"free", "pro", "enterprise"}
	for i := 0; i < n; i++ {
		b.Field(0).(*array.StringBuilder).Append("track")
		b.Field(1).(*array.StringBuilder).Append("Order Completed")
		b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("user-%08d", i%50000))
		b.Field(3).(*array.StringBuilder).Append(fmt.Sprintf("anon-%012d", i))
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(1709294400000000 + int64(i)*1733))
		b.Field(5).(*array.Int64Builder).Append(int64(1000000 + i))
		b.Field(6).(*array.Float64Builder).Append(float64(i%10000) / 100)
		b.Field(7).(*array.StringBuilder).Append("USD")
		b.Field(8).(*array.StringBuilder).Append(plans[i%3])
		if i%4 == 0 {
			b.Field(9).(*array.StringBuilder).Append("SPRING24")
		} else {
			b.Field(9).(*array.StringBuilder).AppendNull()
		}
		b.Field(10).(*array.StringBuilder).Append(fmt.Sprintf("10.%d.%d.%d", i%256, i/256%256, i/65536%256))
		b.Field(11).(*array.StringBuilder).Append("en-US")
	}
	return b.NewRecord()
}

// BenchmarkEncode encodes 8192-row batches of the Segment-like record; one
// op is one event.
func BenchmarkEncode(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		name := "derived-id"
		opts := Options{Pipeline: "bench", Version: "1.0.0"}
		if keyed {
			name = "key-columns-id"
			opts.IDColumns = []string{"properties.order_id"}
		}
		b.Run(name, func(b *testing.B) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(b, 0)
			const rows = 8192
			rec := segmentLike(mem, rows)
			defer rec.Release()
			batch := pipeline.NewBatch("split-0", 0, rec)
			e := NewEncoder(opts)
			var bytes int64
			emit := func(_ int, msg []byte) error { bytes += int64(len(msg)); return nil }
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for done := 0; done < b.N; done += rows {
				if _, err := e.Encode(batch, emit); err != nil {
					b.Fatal(err)
				}
			}
			events := float64((b.N + rows - 1) / rows * rows)
			b.ReportMetric(float64(cpuTime()-cpu0)/events, "cpu-ns/event")
			b.ReportMetric(float64(bytes)/events, "bytes/event")
		})
	}
}

// cpuTime is the process's user+system CPU time in ns: on a shared,
// loaded machine it is a fairer cost per event than wall time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
