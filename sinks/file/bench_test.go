package file

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/backfillhq/backfill/pipeline"
)

// BenchmarkFileSink writes 8192-row batches of a 12-column Segment-like
// record from two goroutines; one op is one event.
func BenchmarkFileSink(b *testing.B) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(b, 0)
	const rows = 8192
	rec := segmentLike(mem, rows)
	defer rec.Release()
	path := filepath.Join(b.TempDir(), "bench.ndjson")
	s, err := New(Options{Path: path, SyncInterval: time.Second}, &pipeline.Env{Name: "bench", DeadLetters: &deadLetters{}})
	if err != nil {
		b.Fatal(err)
	}
	batches := (b.N + rows - 1) / rows
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	done := make(chan error, 2)
	for w := 0; w < 2; w++ {
		go func(w int) {
			for i := w; i < batches; i += 2 {
				rec.Retain() // each batch owns a reference, released by the sink
				if err := s.Write(context.Background(), pipeline.NewBatch(fmt.Sprintf("split-%d", i), 0, rec)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(w)
	}
	for w := 0; w < 2; w++ {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	events := float64(batches * rows)
	b.ReportMetric(events/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/events, "cpu-ns/event")
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// segmentLike is the message package benchmark's record.
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
