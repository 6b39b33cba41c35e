// Package events makes the benchmark's data set: Segment-like track events
// with 12 columns named by their message path (the record contract), about
// 370 bytes of JSON each (with messageId and context.library), written to and read from Parquet.
package events

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/internal/sampledata"
)

// Schema is the data set's 12 columns.
var Schema = sampledata.TrackSchema

// Build makes rows [start, start+n) deterministically.
func Build(mem memory.Allocator, start, n int) arrow.Record {
	return sampledata.TrackEvents(mem, start, n)
}

// Write makes a Parquet file of rows, 64Ki rows per row group.
func Write(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(1<<16))
	w, err := pqarrow.NewFileWriter(Schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	mem := memory.NewGoAllocator()
	for start := 0; start < rows; start += 1 << 16 {
		rec := Build(mem, start, min(1<<16, rows-start))
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return w.Close()
}

// Read streams a Parquet file's records of batchRows rows to fn; fn owns
// each record it gets (it must Release it).
func Read(ctx context.Context, path string, batchRows int, fn func(arrow.Record) error) error {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return err
	}
	defer pf.Close()
	mem := memory.NewGoAllocator()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(batchRows)}, mem)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.Record()
		rec.Retain()
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
