package s3

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/internal/s3test"
	"github.com/backfillhq/backfill/pipeline"
)

// A wide file with small pages (80 string columns, 8 KB pages, one row
// group): with 64 KB column buffers every refill is a 64 KB sequential
// ReadAt, read ahead into blocks that the 16 MB cap evicts before they are
// used: 521 GETs, ~318 MB for a 56 MB object. With 1 MB reads (Input.ChunkBuffer):
// 25 GETs, ~66 MB.
func TestWideSmallPagesAreNotOverfetched(t *testing.T) {
	srv := s3test.Start(t)
	for _, c := range []struct {
		cols, rows, page int
		limit            float64
	}{{80, 60_000, 8 << 10, 1.5}, {20, 240_000, 1 << 20, 1.5}} {
		t.Run(fmt.Sprintf("%d columns, %d KB pages", c.cols, c.page>>10), func(t *testing.T) {
			checkFetched(t, srv, c.cols, c.rows, c.page, c.limit)
		})
	}
}

func checkFetched(t *testing.T, srv *s3test.Server, cols, rows, page int, limit float64) {
	const pad = 8
	bucket := fmt.Sprintf("wide%d", cols)
	srv.CreateBucket(t, bucket)
	fields := make([]arrow.Field, cols)
	for i := range fields {
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: arrow.BinaryTypes.String}
	}
	schema := arrow.NewSchema(fields, nil)
	bld := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer bld.Release()
	b := make([]byte, pad)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			for j := range b {
				b[j] = 'a' + byte((r*31+c*17+j*7)%26)
			}
			bld.Field(c).(*array.StringBuilder).BinaryBuilder.Append(b)
		}
	}
	rec := bld.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed), parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(int64(rows)), parquet.WithDataPageSize(int64(page)))
	w, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data := buf.Bytes()

	srv.Put(t, bucket, "wide.parquet", data)
	src, splits := splitsOf(t, memory.DefaultAllocator, minioConf(srv, "")+"bucket: "+bucket)
	rr, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192})
	if err != nil {
		t.Fatal(err)
	}
	ra := rr.(*reader).ra
	if n := drain(t, rr); n != int64(rows) {
		t.Fatalf("%d rows", n)
	}
	t.Logf("object %d KB: %d GETs, %d KB fetched", len(data)>>10, ra.gets.Load(), ra.bytes.Load()>>10)
	if got := ra.bytes.Load(); float64(got) > float64(len(data))*limit {
		t.Errorf("fetched %d bytes for a %d-byte object (%.1fx) in %d GETs", got, len(data), float64(got)/float64(len(data)), ra.gets.Load())
	}
}
