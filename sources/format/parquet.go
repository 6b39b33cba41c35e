package format

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/pipeline"
)

// ParquetRows returns the number of rows of a Parquet file from its
// footer, without reading any data page (for Split.Rows).
func ParquetRows(ra io.ReaderAt, size int64) (_ int64, err error) {
	// Some corrupt footers make arrow's metadata decoder panic; the
	// caller may be a goroutine of a source's plan, where a panic would
	// end the process.
	defer recoverInto(&err, "footer")
	pf, err := file.NewParquetReader(io.NewSectionReader(ra, 0, size))
	if err != nil {
		return 0, err
	}
	defer pf.Close()
	return pf.NumRows(), nil
}

type parquetReader struct {
	name  string
	split string
	pf    *file.Reader
	rr    pqarrow.RecordReader // nil when no column is read
	next  int64                // row offset of the next batch
	skip  int64                // rows still to drop before ro.Offset
	total int64
	batch int64
}

func openParquet(ctx context.Context, in Input, split string, ro pipeline.ReadOptions, mem memory.Allocator) (_ pipeline.RecordReader, err error) {
	defer recoverInto(&err, in.Name)
	props := parquet.NewReaderProperties(mem)
	// Stream pages instead of loading whole column chunks: memory stays
	// bounded by page size, not row group size.
	props.BufferedStreamEnabled = true
	props.BufferSize = 1 << 20
	pf, err := file.NewParquetReader(io.NewSectionReader(in.ReaderAt, 0, in.Size), file.WithReadProps(props))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", in.Name, err)
	}
	p := &parquetReader{name: in.Name, split: split, pf: pf, total: pf.NumRows(), next: ro.Offset, batch: int64(ro.BatchRows)}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if ro.Offset > p.total {
		return nil, fmt.Errorf("%s: resume offset %d is past the end of the file (%d rows): the file changed since the checkpoint", in.Name, ro.Offset, p.total)
	}
	// Whole row groups before the offset are never read: only their
	// footer row counts are used.
	var rowGroups []int
	var start int64
	md := pf.MetaData()
	for i := 0; i < pf.NumRowGroups(); i++ {
		n := md.RowGroup(i).NumRows()
		if start+n > ro.Offset && n > 0 {
			if rowGroups == nil {
				p.skip = ro.Offset - start
			}
			rowGroups = append(rowGroups, i)
		}
		start += n
	}
	if len(rowGroups) == 0 {
		return p, nil
	}
	// Parallel decodes a row group's columns side by side: a single large
	// file no longer reads at one core's pace. Every Input.ReaderAt must
	// allow concurrent ReadAt calls, as io.ReaderAt documents (os.File and
	// the S3 range reader do).
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: p.batch, Parallel: true}, mem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Name, err)
	}
	var cols []int // nil: all
	if !ro.Columns.All {
		want := make(map[string]bool, len(ro.Columns.Names))
		for _, c := range ro.Columns.Names {
			want[c] = true
		}
		cols = []int{}
		for _, f := range fr.Manifest.Fields {
			if want[f.Field.Name] {
				cols = appendLeaves(cols, f)
			}
		}
		if len(cols) == 0 {
			// No requested column exists: batches carry row counts only.
			p.skip = 0
			return p, nil
		}
	}
	p.rr, err = fr.GetRecordReader(ctx, cols, rowGroups)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Name, err)
	}
	return p, nil
}

func appendLeaves(dst []int, f pqarrow.SchemaField) []int {
	if f.IsLeaf() {
		return append(dst, f.ColIndex)
	}
	for _, c := range f.Children {
		dst = appendLeaves(dst, c)
	}
	return dst
}

// recoverInto turns a panic from the Parquet decoder (corrupt input) into
// an error naming the file.
func recoverInto(err *error, name string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: corrupt Parquet data: %v", name, r)
	}
}

func (p *parquetReader) Next(ctx context.Context) (_ *pipeline.Batch, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.next >= p.total {
		return nil, io.EOF
	}
	if p.rr == nil {
		n := min(p.batch, p.total-p.next)
		rec := array.NewRecord(arrow.NewSchema(nil, nil), nil, n)
		b := pipeline.NewBatch(p.split, p.next, rec)
		p.next += n
		return b, nil
	}
	defer recoverInto(&err, p.name)
	for p.rr.Next() {
		rec := p.rr.Record()
		n := rec.NumRows()
		if p.skip >= n {
			p.skip -= n
			continue
		}
		if p.skip > 0 {
			rec = rec.NewSlice(p.skip, n)
			p.skip = 0
		} else {
			rec.Retain()
		}
		b := pipeline.NewBatch(p.split, p.next, rec)
		p.next = b.End
		return b, nil
	}
	if err := p.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: reading row %d: %w", p.name, p.next, err)
	}
	if p.next != p.total {
		return nil, fmt.Errorf("%s: data ended at row %d but the footer says %d rows", p.name, p.next, p.total)
	}
	return nil, io.EOF
}

func (p *parquetReader) Close() error {
	if p.rr != nil {
		p.rr.Release()
		p.rr = nil
	}
	if p.pf != nil {
		err := p.pf.Close()
		p.pf = nil
		return err
	}
	return nil
}
