package message

import (
	"syscall"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/backfillhq/backfill/pipeline"
)

// segmentLike is n rows of the shared Segment-like track record.
func segmentLike(mem memory.Allocator, n int) arrow.Record { return sampledata.TrackEvents(mem, 0, n) }

// BenchmarkEncode encodes 8192-row batches of the Segment-like record; one
// op is one event.
func BenchmarkEncode(b *testing.B) {
	for _, mode := range []string{"derived-id", "key-columns-id", "dictionaries", "sentAt-placeholder"} {
		opts := Options{Pipeline: "bench", Version: "1.0.0"}
		switch mode {
		case "key-columns-id":
			opts.IDColumns = []string{"properties.orderId"}
		case "sentAt-placeholder":
			opts.SentAt = true // as the segment sink encodes
		}
		b.Run(mode, func(b *testing.B) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(b, 0)
			const rows = 8192
			rec := segmentLike(mem, rows)
			if mode == "dictionaries" {
				// the repetitive columns, as the Parquet source reads them
				rec = arrowtest.DictionaryColumns(b, mem, rec, arrow.PrimitiveTypes.Int32, "type", "event", "properties.currency", "properties.coupon")
			}
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
