package format

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
	"go.uber.org/goleak"
)

const benchRows = 1_000_000

var (
	benchDir  string
	benchOnce sync.Map // file name -> *sync.Once
)

// TestMain removes the benchmarks' files, and checks with goleak that no
// goroutine is left running: pqarrow reads columns from goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if benchDir != "" {
			os.RemoveAll(benchDir)
		}
		os.Exit(code)
	}))
}

// benchFile writes a 1M-row file once per process.
func benchFile(b *testing.B, name string, write func(io.Writer) error) string {
	o, _ := benchOnce.LoadOrStore(name, new(sync.Once))
	o.(*sync.Once).Do(func() {
		if benchDir == "" {
			d, err := os.MkdirTemp("", "backfill-format-bench")
			if err != nil {
				b.Fatal(err)
			}
			benchDir = d
		}
		f, err := os.Create(filepath.Join(benchDir, name))
		if err != nil {
			b.Fatal(err)
		}
		if err := write(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	})
	return filepath.Join(benchDir, name)
}

func benchRead(b *testing.B, p string, opts Options, cols pipeline.Columns) {
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	mem := memory.NewGoAllocator()
	for i := 0; i < b.N; i++ {
		fh, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		in := Input{Name: p, Size: st.Size(), ReaderAt: fh,
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(fh), nil }}
		rr, err := Open(context.Background(), in, "s", opts, pipeline.ReadOptions{Columns: cols}, mem)
		if err != nil {
			b.Fatal(err)
		}
		var rows int64
		for {
			bt, err := rr.Next(context.Background())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows += bt.NumRows()
			if len(bt.Rejects) > 0 {
				b.Fatal(bt.Rejects[0].Reason)
			}
			bt.Release()
		}
		rr.Close()
		fh.Close()
		if rows != benchRows {
			b.Fatalf("%d rows", rows)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(benchRows*b.N), "ns/row")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(benchRows*b.N), "cpu-ns/row")
}

// cpuTime is the process's user+system CPU time in ns: on a shared,
// loaded machine a fairer cost than wall time (reading decodes columns
// on several goroutines).
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkParquet1M(b *testing.B) {
	p := benchFile(b, "orders.parquet", func(w io.Writer) error { return sampledata.WriteOrdersParquet(w, benchRows, 1) })
	// Off, repetitive columns (event_name, currency, plan, country,
	// user_agent) are read as strings instead of dictionaries.
	for _, dict := range []bool{true, false} {
		b.Run(fmt.Sprintf("dictionaries=%v", dict), func(b *testing.B) {
			defer func(old bool) { readDictionaries = old }(readDictionaries)
			readDictionaries = dict
			benchRead(b, p, DefaultOptions(), pipeline.AllColumns)
		})
	}
}

func BenchmarkParquet1MProjected3(b *testing.B) {
	p := benchFile(b, "orders.parquet", func(w io.Writer) error { return sampledata.WriteOrdersParquet(w, benchRows, 1) })
	benchRead(b, p, DefaultOptions(), pipeline.Columns{Names: []string{"order_id", "created_at", "amount"}})
}

func BenchmarkCSV1M(b *testing.B) {
	p := benchFile(b, "signups.csv", func(w io.Writer) error { return sampledata.WriteSignupsCSV(w, benchRows, 1) })
	opts := DefaultOptions()
	opts.CSV.Columns = []Column{{"signed_up_at", "timestamp"}}
	benchRead(b, p, opts, pipeline.AllColumns)
}

func BenchmarkNDJSON1M(b *testing.B) {
	p := benchFile(b, "archive.ndjson", func(w io.Writer) error { return sampledata.WriteArchiveNDJSON(w, benchRows, 1) })
	benchRead(b, p, DefaultOptions(), pipeline.AllColumns)
}

func BenchmarkNDJSONGzip1M(b *testing.B) {
	p := benchFile(b, "archive.ndjson.gz", func(w io.Writer) error {
		zw := newGzipWriter(w)
		if err := sampledata.WriteArchiveNDJSON(zw, benchRows, 1); err != nil {
			return err
		}
		return zw.Close()
	})
	benchRead(b, p, DefaultOptions(), pipeline.AllColumns)
}
