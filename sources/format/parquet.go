package format

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/metadata"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/apache/arrow/go/v15/parquet/schema"

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
	fr    *pqarrow.FileReader
	cols  []int                // leaf columns read; nil: all
	rgs   []int                // row groups still to read after rr's
	rr    pqarrow.RecordReader // over rgs' predecessors: one row group, or all when rgs is empty
	next  int64                // row offset of the next batch
	skip  int64                // rows still to drop before ro.Offset
	total int64
	batch int64

	// Every top-level column of the file, recorded on each record's schema
	// (pipeline.DataColumns); the schema made for the last input schema.
	names         []string
	inSch, outSch *arrow.Schema
}

func openParquet(ctx context.Context, in Input, split string, ro pipeline.ReadOptions, mem memory.Allocator) (rr pipeline.RecordReader, err error) {
	defer recoverInto(&err, in.Name)
	// Pages are read into buffers of their own allocator, not mem: they
	// never leave the reader, and arrow v15 leaks one on some corrupt
	// pages (a v2 data page whose size is not its header's is retained,
	// then abandoned with the error). The garbage collector takes it back
	// either way; mem sees only the arrays it is handed, all released by
	// their batches.
	props := parquet.NewReaderProperties(memory.NewGoAllocator())
	// Stream pages instead of loading whole column chunks: memory stays
	// bounded by page size, not row group size.
	props.BufferedStreamEnabled = true
	// Each column chunk reads through its own buffer. Arrow grows it for a
	// page header that does not fit and reads larger page bodies around
	// it, so a small one suits local files: a megabyte per chunk was a
	// fifth of all allocation (BenchmarkParquet1M: 899 MB against 710 MB
	// a million rows; peak RSS 140 MB against 104 MB in bench/). Remote
	// readers ask for larger reads (Input.ChunkBuffer).
	props.BufferSize = 64 << 10
	if in.ChunkBuffer > 0 {
		props.BufferSize = in.ChunkBuffer
	}
	pf, err := file.NewParquetReader(io.NewSectionReader(in.ReaderAt, 0, in.Size), file.WithReadProps(props))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", in.Name, err)
	}
	p := &parquetReader{name: in.Name, split: split, pf: pf, total: pf.NumRows(), next: ro.Offset, batch: int64(ro.BatchRows)}
	defer func() {
		if rr == nil { // an error, or a panic unwinding to recoverInto
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
	// Columns are decoded on the caller's goroutine, not in parallel:
	// arrow's decoder panics on some corrupt pages, and a panic on one of
	// pqarrow's goroutines ends the process where recoverInto cannot turn
	// it into an error. The runner reads a batch ahead while the sink
	// encodes, which keeps the cores busy without it.
	arrowProps := pqarrow.ArrowReadProperties{BatchSize: p.batch}
	// Dictionaries need a row group at a time (below), which makes small
	// batches of small row groups: not worth it under half a batch.
	rgRows := p.total - ro.Offset + p.skip // the rows of rowGroups
	if readDictionaries && rgRows/int64(len(rowGroups)) >= p.batch/2 {
		for _, c := range dictionaryColumns(pf, rowGroups) {
			arrowProps.SetReadDict(c, true)
		}
	}
	fr, err := pqarrow.NewFileReader(pf, arrowProps, mem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Name, err)
	}
	p.names = manifestNames(fr.Manifest)
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
	if nested := nestedLeaves(fr.Manifest.Fields, cols, false); len(nested) > 0 {
		if err := checkColumns(pf, rowGroups, nested); err != nil {
			return nil, fmt.Errorf("%s: not a readable Parquet file: %w", in.Name, err)
		}
	}
	// With a dictionary column (chosen above, or stored so in the file's
	// Arrow schema), one row group at a time: a batch never spans two, so
	// it has one dictionary (pqarrow cannot join two).
	first := rowGroups
	if readsDictionaries(fr.Manifest.Fields, cols) {
		first, p.rgs = rowGroups[:1], rowGroups[1:]
	}
	if rs, ok := in.ReaderAt.(StreamCounter); ok {
		n := len(cols)
		if cols == nil {
			n = pf.MetaData().Schema.NumColumns()
		}
		rs.ReadStreams(n)
	}
	p.fr, p.cols = fr, cols
	p.rr, err = fr.GetRecordReader(ctx, cols, first)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Name, err)
	}
	return p, nil
}

// checkDictionaries fails when a dictionary column holds an index past its
// dictionary: arrow does not check the indices it decodes, and a corrupt
// page would otherwise reach the encoder as an out-of-range read.
func checkDictionaries(rec arrow.Record) error {
	for i, col := range rec.Columns() {
		d, ok := col.(*array.Dictionary)
		if !ok {
			continue
		}
		size := d.Dictionary().Len()
		var idx32 []int32
		if ix, ok := d.Indices().(*array.Int32); ok {
			idx32 = ix.Int32Values() // pqarrow's index type: no type switch per row
		}
		for r := 0; r < d.Len(); r++ {
			if d.IsValid(r) {
				k := 0
				if idx32 != nil {
					k = int(idx32[r])
				} else {
					k = d.GetValueIndex(r)
				}
				if k < 0 || k >= size {
					return fmt.Errorf("column %s holds dictionary index %d, past its %d values", rec.ColumnName(i), k, size)
				}
			}
		}
	}
	return nil
}

// readsDictionaries reports whether any leaf of fields among cols (nil:
// all) is read as a dictionary.
func readsDictionaries(fields []pqarrow.SchemaField, cols []int) bool {
	for _, f := range fields {
		if isLeaf(f) {
			if f.Field.Type.ID() == arrow.DICTIONARY && (cols == nil || slices.Contains(cols, f.ColIndex)) {
				return true
			}
		} else if readsDictionaries(f.Children, cols) {
			return true
		}
	}
	return false
}

// readDictionaries is off only in benchmarks, to measure what it saves.
var readDictionaries = true

// dictionaryColumns lists the top-level string columns to read as Arrow
// dictionaries: those whose column chunks (in rowGroups) hold only
// dictionary-encoded data pages, with a dictionary page of at most a byte
// per row. Such a column (an event name, a currency, a plan) is then
// decoded as one index per row instead of a copy of its string, and the
// sink escapes each distinct value once per batch. A column of many
// distinct values is left as strings: Arrow hashes every dictionary entry
// it reads, which costs more than the copies it saves.
func dictionaryColumns(pf *file.Reader, rowGroups []int) []int {
	const dictionaryPage = 2 // format.PageType_DICTIONARY_PAGE
	md := pf.MetaData()
	groups := make([]*metadata.RowGroupMetaData, len(rowGroups))
	for i, rg := range rowGroups {
		groups[i] = md.RowGroup(rg)
	}
	var out []int
columns:
	for c := 0; c < md.Schema.NumColumns(); c++ {
		col := md.Schema.Column(c)
		if col.PhysicalType() != parquet.Types.ByteArray || len(col.ColumnPath()) != 1 || col.MaxRepetitionLevel() > 0 {
			continue
		}
		if _, ok := col.LogicalType().(schema.StringLogicalType); !ok && col.ConvertedType() != schema.ConvertedTypes.UTF8 {
			continue
		}
		for _, rg := range groups {
			cc, err := rg.ColumnChunk(c)
			if err != nil || !cc.HasDictionaryPage() || cc.DictionaryPageOffset() <= 0 ||
				cc.DataPageOffset()-cc.DictionaryPageOffset() > cc.NumValues() {
				continue columns
			}
			stats := cc.EncodingStats()
			if len(stats) == 0 {
				continue columns // no page list: a plain page may follow
			}
			for _, st := range stats {
				if st.PageType != dictionaryPage && st.Encoding != parquet.Encodings.RLEDict && st.Encoding != parquet.Encodings.PlainDict {
					continue columns
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// isLeaf is SchemaField.IsLeaf, which pqarrow v15 gets wrong for nested
// fields: it gives them ColIndex 0, not -1, so a list or struct passed for
// a leaf and projecting one read the file's first column instead.
func isLeaf(f pqarrow.SchemaField) bool { return len(f.Children) == 0 }

func appendLeaves(dst []int, f pqarrow.SchemaField) []int {
	if isLeaf(f) {
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
	if p.fr == nil {
		n := min(p.batch, p.total-p.next)
		rec := p.withNames(array.NewRecord(arrow.NewSchema(nil, nil), nil, n))
		b := pipeline.NewBatch(p.split, p.next, rec)
		p.next += n
		return b, nil
	}
	defer recoverInto(&err, p.name)
	for {
		if !p.rr.Next() {
			if err := p.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: reading row %d: %w", p.name, p.next, err)
			}
			if len(p.rgs) == 0 {
				break
			}
			rr, err := p.fr.GetRecordReader(ctx, p.cols, p.rgs[:1])
			if err != nil {
				return nil, fmt.Errorf("%s: row group %d: %w", p.name, p.rgs[0], err)
			}
			p.rr.Release()
			p.rr, p.rgs = rr, p.rgs[1:]
			continue
		}
		rec := p.rr.Record()
		n := rec.NumRows()
		if p.skip >= n {
			p.skip -= n
			continue
		}
		if err := checkDictionaries(rec); err != nil {
			return nil, fmt.Errorf("%s: corrupt Parquet data in rows %d-%d: %w", p.name, p.next, p.next+n-p.skip-1, err)
		}
		if p.skip > 0 {
			rec = rec.NewSlice(p.skip, n)
			p.skip = 0
		} else {
			rec.Retain()
		}
		b := pipeline.NewBatch(p.split, p.next, p.withNames(rec))
		p.next = b.End
		return b, nil
	}
	if p.next != p.total {
		return nil, fmt.Errorf("%s: data ended at row %d but the footer says %d rows", p.name, p.next, p.total)
	}
	return nil, io.EOF
}

// withNames returns rec with the file's columns in its schema's metadata
// (pipeline.DataColumns), taking over the caller's reference. The schema
// is made once for each schema pqarrow hands out (once a file, or a row
// group): a batch costs a record header, no copy.
func (p *parquetReader) withNames(rec arrow.Record) arrow.Record {
	if p.names == nil {
		return rec
	}
	if s := rec.Schema(); s != p.inSch {
		md := pipeline.DataColumnsMetadata(s.Metadata(), p.names)
		p.inSch, p.outSch = s, arrow.NewSchema(s.Fields(), &md)
	}
	out := array.NewRecord(p.outSch, rec.Columns(), rec.NumRows())
	rec.Release()
	return out
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

// nestedLeaves lists the leaf columns (among cols; nil: all) below a
// struct: pqarrow decodes a struct's children on goroutines of its own
// (errgroup, even when not parallel), where a panic of the decoder on a
// corrupt page cannot be recovered and ends the process.
func nestedLeaves(fields []pqarrow.SchemaField, cols []int, inStruct bool) []int {
	var out []int
	for _, f := range fields {
		if isLeaf(f) {
			if inStruct && (cols == nil || slices.Contains(cols, f.ColIndex)) {
				out = append(out, f.ColIndex)
			}
			continue
		}
		out = append(out, nestedLeaves(f.Children, cols, inStruct || f.Field.Type.ID() == arrow.STRUCT)...)
	}
	return out
}

// checkColumns decodes columns cols of rowGroups on the caller's
// goroutine, so that a corrupt page pqarrow would decode on a goroutine
// of its own (nestedLeaves) fails here, where recoverInto turns the
// decoder's panic into an error. It costs a second decoding of those
// columns, in batches of a thousand values.
func checkColumns(pf *file.Reader, rowGroups, cols []int) error {
	const n = 1024
	def, rep := make([]int16, n), make([]int16, n)
	for _, rg := range rowGroups {
		for _, c := range cols {
			cr, err := pf.RowGroup(rg).Column(c)
			if err != nil {
				return fmt.Errorf("row group %d, column %d: %w", rg, c, err)
			}
			for cr.HasNext() {
				var read int64
				switch r := cr.(type) {
				case *file.BooleanColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]bool, n), def, rep)
				case *file.Int32ColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]int32, n), def, rep)
				case *file.Int64ColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]int64, n), def, rep)
				case *file.Int96ColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]parquet.Int96, n), def, rep)
				case *file.Float32ColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]float32, n), def, rep)
				case *file.Float64ColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]float64, n), def, rep)
				case *file.ByteArrayColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]parquet.ByteArray, n), def, rep)
				case *file.FixedLenByteArrayColumnChunkReader:
					read, _, err = r.ReadBatch(n, make([]parquet.FixedLenByteArray, n), def, rep)
				default:
					return fmt.Errorf("row group %d, column %d: no reader for %s", rg, c, cr.Type())
				}
				if err != nil {
					return fmt.Errorf("row group %d, column %d: %w", rg, c, err)
				}
				if read == 0 {
					break
				}
			}
			if err := cr.Err(); err != nil {
				return fmt.Errorf("row group %d, column %d: %w", rg, c, err)
			}
		}
	}
	return nil
}
