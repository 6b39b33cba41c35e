package bench

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/bench/internal/events"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/message"
)

// BenchmarkGzip compresses one ~500 KB request body of the benchmark's
// events at the levels the sink offers: speed (MB/s) and ratio.
func BenchmarkGzip(b *testing.B) {
	rec := events.Build(memory.NewGoAllocator(), 0, 1500)
	batch := pipeline.NewBatch("s", 0, rec)
	defer batch.Release()
	body := []byte(`{"batch":[`)
	n := 0
	message.NewEncoder(message.Options{Pipeline: "bench"}).Encode(batch, func(_ int, m []byte) error {
		if len(body)+len(m) < 499_900 {
			if n > 0 {
				body = append(body, ',')
			}
			body = append(body, m...)
			n++
		}
		return nil
	})
	body = append(body, `],"sentAt":"2024-01-01T00:00:00.000Z"}`...)
	for _, level := range []int{gzip.StatelessCompression, gzip.HuffmanOnly, 1, 2, 3, 5} {
		b.Run(fmt.Sprintf("level=%d", level), func(b *testing.B) {
			var out bytes.Buffer
			w, _ := gzip.NewWriterLevel(&out, level)
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				out.Reset()
				w.Reset(&out)
				w.Write(body)
				w.Close()
			}
			b.ReportMetric(float64(len(body))/float64(out.Len()), "ratio")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}
