package s3

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sources/format"
)

// A ~115 MB Parquet file: 1.1M rows of ~100 bytes, row groups of 100k rows.
const (
	largeRows     = 1_100_000
	largeRowGroup = 100_000
	largePad      = 90
)

// peakHeap runs fn while sampling the Go heap and returns the highest
// HeapInuse seen above the level before fn.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak {
				peak = ms.HeapInuse - base
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak
}

// drain reads rr to the end and returns the row count.
func drain(tb testing.TB, rr pipeline.RecordReader) int64 {
	var rows int64
	for {
		b, err := rr.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		rows += b.End - b.Start
		b.Release()
	}
	if err := rr.Close(); err != nil {
		tb.Fatal(err)
	}
	return rows
}

func TestLargeParquetBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads a 115 MB object")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "big")
	path := parquetFile(t, t.TempDir(), largeRows, largeRowGroup, largePad)
	st, _ := os.Stat(path)
	srv.PutFile(t, "big", "events/big.parquet", path)

	mem := arrowtest.CheckedMem(t)
	src := newSource(t, mem, minioConf(srv, "")+"bucket: big\nprefix: events/")
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	start := time.Now()
	// HeapInuse counts garbage not yet collected (up to GOGC% over the live
	// heap); a low GOGC while reading makes it track what the read keeps.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	peak := peakHeap(func() {
		rr, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192})
		if err != nil {
			t.Fatal(err)
		}
		ra := rr.(*reader).ra
		rows = drain(t, rr)
		t.Logf("%d ranged GETs, %d MB fetched", ra.gets.Load(), ra.bytes.Load()>>20)
	})
	el := time.Since(start)
	if rows != largeRows {
		t.Fatalf("read %d rows, want %d", rows, largeRows)
	}
	t.Logf("object %d MB: %d rows in %v (%.0f rows/s), peak heap +%.1f MB",
		st.Size()>>20, rows, el.Round(time.Millisecond), float64(rows)/el.Seconds(), float64(peak)/(1<<20))
	// A fixed budget, whatever the object size: the format's per-column
	// page buffers and batch (~20 MB read from local disk), the 16 MB
	// read-ahead cap, HTTP buffers.
	if limit := uint64(48 << 20); peak > limit {
		t.Errorf("peak heap grew by %d MB reading a %d MB object (limit %d MB)", peak>>20, st.Size()>>20, limit>>20)
	}
}

// BenchmarkParquetMinIOvsLocal reads the same ~115 MB Parquet file from
// MinIO (ranged GETs) and from local disk (os.File as the ReaderAt), both
// through format.Open.
func BenchmarkParquetMinIOvsLocal(b *testing.B) {
	srv := s3test.Start(b)
	srv.CreateBucket(b, "big")
	path := parquetFile(b, b.TempDir(), largeRows, largeRowGroup, largePad)
	st, _ := os.Stat(path)
	srv.PutFile(b, "big", "big.parquet", path)
	ro := pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192}

	run := func(b *testing.B, open func() pipeline.RecordReader) {
		b.SetBytes(st.Size())
		var peak uint64
		start := time.Now()
		for i := 0; i < b.N; i++ {
			p := peakHeap(func() {
				if n := drain(b, open()); n != largeRows {
					b.Fatalf("read %d rows", n)
				}
			})
			peak = max(peak, p)
		}
		b.ReportMetric(float64(largeRows)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	}
	b.Run("minio", func(b *testing.B) {
		src := newSource(b, memory.DefaultAllocator, minioConf(srv, "")+"bucket: big")
		splits, err := src.Splits(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		run(b, func() pipeline.RecordReader {
			rr, err := src.Open(context.Background(), splits[0], ro)
			if err != nil {
				b.Fatal(err)
			}
			return rr
		})
	})
	b.Run("local", func(b *testing.B) {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		run(b, func() pipeline.RecordReader {
			rr, err := format.Open(context.Background(), format.Input{Name: path, Size: st.Size(), ReaderAt: f},
				"local", format.DefaultOptions(), ro, memory.DefaultAllocator)
			if err != nil {
				b.Fatal(err)
			}
			return rr
		})
	})
}

// Wide files are fetched once. With 80 string columns in 8 KB pages, 64 KB
// column buffers made every refill a sequential read, read ahead into
// blocks the 16 MB cap evicted unread: 521 GETs, ~318 MB for a 56 MB
// object. With 20 columns in 1 MB pages, read-ahead sized by the blocks
// already held, and blocks used only when they held a whole read, still
// fetched 1.8 times the object.
func TestWideFilesAreFetchedOnce(t *testing.T) {
	srv := s3test.Start(t)
	for _, c := range []struct{ cols, rows, page int }{{80, 60_000, 8 << 10}, {20, 240_000, 1 << 20}} {
		t.Run(fmt.Sprintf("%d columns, %d KB pages", c.cols, c.page>>10), func(t *testing.T) {
			data := wideParquet(t, c.cols, c.rows, c.page)
			bucket := fmt.Sprintf("wide%d", c.cols)
			srv.CreateBucket(t, bucket)
			srv.Put(t, bucket, "wide.parquet", data)
			src, splits := splitsOf(t, memory.DefaultAllocator, minioConf(srv, "")+"bucket: "+bucket)
			rr, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192})
			if err != nil {
				t.Fatal(err)
			}
			ra := rr.(*reader).ra
			if n := drain(t, rr); n != int64(c.rows) {
				t.Fatalf("%d rows", n)
			}
			t.Logf("object %d KB: %d GETs, %d KB fetched", len(data)>>10, ra.gets.Load(), ra.bytes.Load()>>10)
			if got := ra.bytes.Load(); float64(got) > float64(len(data))*1.1 {
				t.Errorf("fetched %d bytes for a %d-byte object (%.1fx) in %d GETs", got, len(data), float64(got)/float64(len(data)), ra.gets.Load())
			}
		})
	}
}
