package bench

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/backfillhq/backfill/bench/internal/events"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/segment"
)

// The in-process benchmarks include the receiver's CPU (it shares the
// process); run.sh measures the client alone. b.N is in events.

func records(b *testing.B, n int) []arrow.Record {
	var out []arrow.Record
	for start := 0; start < n; start += 8192 {
		out = append(out, events.Build(memory.NewGoAllocator(), start, min(8192, n-start)))
	}
	b.Cleanup(func() {
		for _, r := range out {
			r.Release()
		}
	})
	return out
}

func BenchmarkSegmentSink(b *testing.B) {
	for _, gz := range []bool{false, true} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) {
			srv := segmenttest.NewServer(segmenttest.Options{CountOnly: true, SkipValidation: true})
			defer srv.Close()
			recs := records(b, 65536)
			opts := segment.DefaultOptions()
			opts.Endpoint, opts.WriteKey, opts.Gzip = srv.URL(), "k", gz
			s, err := segment.New(opts, &pipeline.Env{Name: "bench", Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Open(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for sent, i := 0, 0; sent < b.N; i++ {
				rec := recs[i%len(recs)]
				if n := b.N - sent; n < int(rec.NumRows()) {
					rec = rec.NewSlice(0, int64(n))
				} else {
					rec.Retain()
				}
				sent += int(rec.NumRows())
				if err := s.Write(ctx, pipeline.NewBatch("s", int64(sent), rec)); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			if got := srv.Stats().Messages; got != int64(b.N) {
				b.Fatalf("receiver got %d of %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// The process's CPU, the receiver's included: steadier than
			// time on a shared machine.
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/event")
		})
	}
}

func BenchmarkAnalyticsGo(b *testing.B) {
	for _, size := range []int{100, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			srv := segmenttest.NewServer(segmenttest.Options{CountOnly: true, SkipValidation: true})
			defer srv.Close()
			recs := records(b, 65536)
			c, err := analytics.NewWithConfig("k", analytics.Config{Endpoint: srv.URL(), BatchSize: size,
				Interval: 5 * time.Second, Logger: nopLogger{}})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				rec := recs[(sent/8192)%len(recs)]
				str := func(i int) *array.String { return rec.Column(i).(*array.String) }
				ts := rec.Column(4).(*array.Timestamp)
				for i := 0; i < int(rec.NumRows()) && sent < b.N; i++ {
					c.Enqueue(analytics.Track{Event: str(1).Value(i), UserId: str(2).Value(i), AnonymousId: str(3).Value(i),
						Timestamp: time.UnixMilli(int64(ts.Value(i))).UTC(),
						Properties: analytics.NewProperties().Set("orderId", str(5).Value(i)).
							Set("revenue", rec.Column(6).(*array.Float64).Value(i)).Set("currency", str(7).Value(i)).
							Set("quantity", rec.Column(8).(*array.Int64).Value(i)).Set("coupon", str(9).Value(i)),
						Context: &analytics.Context{IP: net.ParseIP(str(10).Value(i)), Page: analytics.PageInfo{Path: str(11).Value(i)}}})
					sent++
				}
			}
			c.Close()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

type nopLogger struct{}

func (nopLogger) Logf(string, ...interface{})   {}
func (nopLogger) Errorf(string, ...interface{}) {}

// cpuTime is the process's user+system CPU time in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
