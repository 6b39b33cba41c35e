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
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sources/format"
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

// Read streams a Parquet file's records of batchRows rows to fn, read as
// backfill's sources read it (sources/format: repetitive columns as
// dictionaries, a row group at a time); fn owns each record it gets (it
// must Release it).
func Read(ctx context.Context, path string, batchRows int, fn func(arrow.Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	in := format.Input{Name: path, Size: st.Size(), ReaderAt: f}
	rr, err := format.Open(ctx, in, path, format.DefaultOptions(),
		pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: batchRows}, memory.NewGoAllocator())
	if err != nil {
		return err
	}
	defer rr.Close()
	for {
		b, err := rr.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rec := b.Record
		rec.Retain()
		b.Release()
		if err := fn(rec); err != nil {
			return err
		}
	}
}
