package file

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"

	"github.com/apache/arrow/go/v15/arrow"
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
	s, err := New(Options{Path: path, SyncInterval: time.Second}, &pipeline.Env{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
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

// segmentLike is n rows of the shared Segment-like track record.
func segmentLike(mem memory.Allocator, n int) arrow.Record { return sampledata.TrackEvents(mem, 0, n) }
