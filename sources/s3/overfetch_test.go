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
	const cols, rows, pad = 80, 60_000, 8
	srv := s3test.Start(t)
	srv.CreateBucket(t, "widebkt")
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
		parquet.WithMaxRowGroupLength(rows), parquet.WithDataPageSize(8<<10))
	w, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data := buf.Bytes()

	srv.Put(t, "widebkt", "wide.parquet", data)
	src, splits := splitsOf(t, memory.DefaultAllocator, minioConf(srv, "")+"bucket: widebkt")
	rr, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192})
	if err != nil {
		t.Fatal(err)
	}
	ra := rr.(*reader).ra
	if n := drain(t, rr); n != rows {
		t.Fatalf("%d rows", n)
	}
	t.Logf("object %d KB: %d GETs, %d KB fetched", len(data)>>10, ra.gets.Load(), ra.bytes.Load()>>10)
	if got := ra.bytes.Load(); got > int64(len(data))*3/2 {
		t.Errorf("fetched %d bytes for a %d-byte object (%.1fx) in %d GETs", got, len(data), float64(got)/float64(len(data)), ra.gets.Load())
	}
}
