package format

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r *bytes.Reader
	n atomic.Int64 // Parquet columns are read in parallel
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func memInput(name string, data []byte) Input {
	return Input{
		Name: name, Size: int64(len(data)),
		Open:     func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		ReaderAt: bytes.NewReader(data),
	}
}

func compressBytes(t testing.TB, data []byte, comp string) []byte {
	var buf bytes.Buffer
	switch comp {
	case Gzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		zw.Close()
	default:
		return data
	}
	return buf.Bytes()
}

var compExt = map[string]string{None: "", Gzip: ".gz", Zstd: ".zst"}

// result is everything a reader returned, checked for contiguity.
type result struct {
	start, end int64
	rows       []map[string]string // record rows, by column name (ValueStr; "(null)" for null)
	offsets    []int64             // split offset of each record row
	rejects    []pipeline.Reject
	schemas    []*arrow.Schema
	batches    int
}

func readAll(t testing.TB, in Input, opts Options, ro pipeline.ReadOptions, mem memory.Allocator) (*result, error) {
	t.Helper()
	rr, err := Open(context.Background(), in, "split-1", opts, ro, mem)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	res := &result{start: ro.Offset, end: ro.Offset}
	for {
		b, err := rr.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.batches++
		if b.Split != "split-1" {
			t.Fatalf("batch split %q", b.Split)
		}
		if b.Start != res.end {
			t.Fatalf("batch starts at %d, previous ended at %d", b.Start, res.end)
		}
		if b.End <= b.Start {
			t.Fatalf("empty batch [%d,%d)", b.Start, b.End)
		}
		if got := b.NumRows() + int64(len(b.Rejects)) + b.Filtered; got != b.End-b.Start {
			t.Fatalf("batch [%d,%d) accounts for %d rows", b.Start, b.End, got)
		}
		res.end = b.End
		res.rejects = append(res.rejects, b.Rejects...)
		for _, r := range b.Rejects {
			if r.Row < b.Start || r.Row >= b.End || r.Stage != "source" || r.Reason == "" {
				t.Fatalf("bad reject %+v in [%d,%d)", r, b.Start, b.End)
			}
		}
		if b.Record != nil {
			res.schemas = append(res.schemas, b.Record.Schema())
			for i := 0; i < int(b.Record.NumRows()); i++ {
				row := map[string]string{}
				for c, col := range b.Record.Columns() {
					if col.IsNull(i) {
						row[b.Record.ColumnName(c)] = "(null)"
					} else if j, ok := col.(*record.JSONArray); ok {
						// JSONArray has no ValueStr (the extension base panics).
						row[b.Record.ColumnName(c)] = j.Value(i)
					} else {
						row[b.Record.ColumnName(c)] = col.ValueStr(i)
					}
				}
				res.rows = append(res.rows, row)
				res.offsets = append(res.offsets, b.Row(i))
			}
		}
		b.Release()
	}
}

func newGzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

func newZstdWriter(t testing.TB, w io.Writer) *zstd.Encoder {
	zw, err := zstd.NewWriter(w)
	if err != nil {
		t.Fatal(err)
	}
	return zw
}
