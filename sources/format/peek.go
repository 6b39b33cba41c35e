package format

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/pipeline"
)

// What PeekColumns reads of an NDJSON input: its first PeekLines lines, at
// most PeekBytes of them (decompressed). A source that fetches the input
// for a peek needs no more than PeekBytes of it, compressed or not.
const (
	PeekLines = 1000
	PeekBytes = 1 << 20
)

// PeekColumns names the columns Open would read from in, reading only
// what names them: a Parquet footer (through in.ReaderAt), a CSV header
// line (the first record without a header; nothing when csv.columns name
// them), or the keys of an NDJSON input's first PeekLines lines (at most
// PeekBytes). where says what was read, for messages: in.Name, or "the
// first N lines of NAME" when an NDJSON input goes on past them.
func PeekColumns(ctx context.Context, in Input, opts Options) (names []string, where string, err error) {
	err = pipeline.Safely("reading the columns of "+in.Name, func() (err error) {
		names, where, err = peek(ctx, in, opts)
		return err
	})
	return names, where, err
}

func peek(ctx context.Context, in Input, opts Options) ([]string, string, error) {
	f, comp, err := Detect(in.Name, opts)
	if err != nil {
		return nil, "", err
	}
	if f == Parquet {
		if comp == Gzip || comp == Zstd {
			return nil, "", fmt.Errorf("%s: a Parquet file cannot be %s-compressed as a whole", in.Name, comp)
		}
		if in.ReaderAt == nil {
			return nil, "", fmt.Errorf("%s: reading Parquet needs random access (Input.ReaderAt)", in.Name)
		}
		names, err := parquetColumns(in)
		return names, in.Name, err
	}
	if f == CSV && !opts.CSV.Header && len(opts.CSV.Columns) > 0 {
		// Declared names, in order: nothing to read.
		names := make([]string, len(opts.CSV.Columns))
		for i, c := range opts.CSV.Columns {
			names[i] = c.Name
		}
		return names, in.Name, nil
	}
	if in.Open == nil {
		return nil, "", fmt.Errorf("%s: reading %s needs a sequential reader (Input.Open)", in.Name, f)
	}
	rc, err := in.Open(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", in.Name, err)
	}
	defer rc.Close()
	r, err := decompress(in.Name, rc, comp)
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	lim := &peekLimit{r: r, left: PeekBytes}
	body := io.NopCloser(lim)
	// Nothing is projected: the readers name every column and build none.
	ro := pipeline.ReadOptions{Columns: pipeline.Columns{}, BatchRows: PeekLines}
	if f == CSV {
		csvOpts := opts.CSV
		if csvOpts.Delimiter == 0 && isTSV(in.Name) {
			csvOpts.Delimiter = '\t'
		}
		rr, err := newCSVReader(in.Name, body, "", csvOpts, opts.lineLimits(), ro, memory.DefaultAllocator)
		if err != nil {
			return nil, "", err
		}
		names := rr.(*csvReader).names
		if len(names) == 0 {
			return nil, "", fmt.Errorf("%s: the file is empty: no line names its columns", in.Name)
		}
		return names, in.Name, nil
	}
	n := newNDJSONReader(in.Name, body, "", opts.lineLimits(), ro, memory.DefaultAllocator).(*ndjsonReader)
	b, err := n.Next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("%s: no lines to read column names from", in.Name)
	}
	if err != nil {
		return nil, "", err
	}
	rows := b.End - b.Start
	b.Release()
	if len(n.seen) == 0 {
		return nil, "", fmt.Errorf("%s: no JSON object in its first %d lines", in.Name, rows)
	}
	where := in.Name
	if !n.done || lim.cut {
		where = fmt.Sprintf("the first %d lines of %s", rows, in.Name)
	}
	return append([]string(nil), n.seen...), where, nil
}

// parquetColumns reads a Parquet footer and names the top-level columns
// as the reader does.
func parquetColumns(in Input) (_ []string, err error) {
	defer recoverInto(&err, in.Name)
	pf, err := file.NewParquetReader(io.NewSectionReader(in.ReaderAt, 0, in.Size))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", in.Name, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Name, err)
	}
	return manifestNames(fr.Manifest), nil
}

func isTSV(name string) bool {
	return strings.HasSuffix(stripCompression(strings.ToLower(name)), ".tsv")
}

func manifestNames(m *pqarrow.SchemaManifest) []string {
	names := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		names[i] = f.Field.Name
	}
	return names
}

// peekLimit ends a peek's input after PeekBytes. A compressed input cut
// short (a source fetched only its first bytes) ends there too, without
// an error: the line it cuts is rejected by the reader, not fatal.
type peekLimit struct {
	r    io.Reader
	left int64
	cut  bool
}

func (l *peekLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.cut = true
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		l.cut = true
		err = io.EOF
	}
	return n, err
}
