// Package format reads the file formats sources share (Parquet, CSV,
// NDJSON, optionally gzip- or zstd-compressed) into pipeline batches. The
// file source and the s3 source both call Open; each format exists once.
package format

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/backfillhq/backfill/internal/lines"
	"github.com/backfillhq/backfill/pipeline"
)

// Formats and compressions Options accept.
const (
	Parquet = "parquet"
	CSV     = "csv"
	NDJSON  = "ndjson"

	Gzip = "gzip"
	Zstd = "zstd"
	None = "none"
)

// DefaultBatchRows is used when ReadOptions.BatchRows is not positive.
const DefaultBatchRows = 8192

// maxBatchCells bounds the values (rows times columns) of a CSV or NDJSON
// batch: a record holds a value of each column for every row, so a wide
// file (a header of thousands of columns) or lines with keys of their
// own (ids, dates as keys) get fewer rows a batch, instead of arrays of
// gigabytes from a file of kilobytes. Ordinary files, of tens or hundreds
// of columns, keep their full batches.
const maxBatchCells = 1 << 20

// Options say how to decode an input.
type Options struct {
	// Format is "parquet", "csv" or "ndjson"; "" detects it from the name's
	// extension after stripping .gz/.zst: .parquet/.pq, .csv/.tsv/.txt,
	// .json/.jsonl/.ndjson.
	Format string
	// Compression is "gzip", "zstd" or "none"; "" detects it from the
	// extension, else from the first bytes (magic numbers).
	Compression string
	CSV         CSVOptions
	// MaxLineBytes is the longest NDJSON line or CSV record read, in
	// bytes; 0 means DefaultMaxLineBytes. A longer one is a reject (its
	// file, line, size and first lines.HeadBytes bytes), read past without
	// being held in memory, and the input goes on.
	MaxLineBytes int

	// lineBuffer is the line reader's buffer size; 0 means readBuffer.
	// Tests shrink it to cross buffer boundaries with small inputs.
	lineBuffer int
}

// DefaultMaxLineBytes is the longest line or record read when Options say
// nothing: 1 MB. Segment takes messages of at most 32 KB, so a longer
// line could only be sent by dropping nearly all of it; 32 times that
// leaves room for the fields a pipeline drops (and JSON's escapes), while
// a file that is not newline-delimited (one huge JSON array, a binary
// file misnamed .csv) costs a reject, not all the memory. It is what
// validate reads of an NDJSON input (PeekBytes) too.
const DefaultMaxLineBytes = 1 << 20

// MaxMaxLineBytes caps max_line_bytes: a reader holds a batch of lines.
const MaxMaxLineBytes = 1 << 30

// lineLimits are what the line-based readers take of Options.
type lineLimits struct {
	max, buf int
}

func (o Options) lineLimits() lineLimits {
	l := lineLimits{max: o.MaxLineBytes, buf: o.lineBuffer}
	if l.max <= 0 {
		l.max = DefaultMaxLineBytes
	}
	if l.buf <= 0 {
		l.buf = readBuffer
	}
	return l
}

func (l lineLimits) reader(name string, r io.Reader) *lines.Reader {
	lr := lines.NewReader(name, r, l.buf)
	lr.SetMax(l.max)
	return lr
}

// CSVOptions describe delimited text.
type CSVOptions struct {
	// Header says the first line names the columns. Without it, columns
	// are named by Columns in order, else column_1, column_2, ...
	Header bool
	// Delimiter separates fields: ',', '|', '\t'. Zero means ',' ('\t'
	// for .tsv names and PostgresText).
	Delimiter rune
	// Quote encloses fields holding delimiters, quotes or newlines; a
	// doubled quote inside is one quote. Zero means '"'.
	Quote rune
	// Null is the text of a NULL field: `\N` for Postgres COPY, "" for
	// Redshift UNLOAD. An empty unquoted field in a typed (non-string)
	// column is NULL whatever Null is.
	Null string
	// Columns declares column types by name (string, int64, float64, bool,
	// timestamp, json). Undeclared columns are strings. Without a header,
	// the declared names in order name the columns.
	Columns []Column
	// PostgresText is the COPY text format: tab-separated, `\N` nulls,
	// backslash escapes (\t \n \\ ...), no quoting.
	PostgresText bool
}

// Column is one declared CSV column type.
type Column struct {
	Name string
	Type string // one of ColumnTypes
}

// ColumnTypes are the types a CSV column may be declared as.
var ColumnTypes = []string{"string", "int64", "float64", "bool", "timestamp", "json"}

// DefaultOptions are the options with nothing configured.
func DefaultOptions() Options {
	return Options{CSV: CSVOptions{Header: true}}
}

// Input is one file or object to read.
type Input struct {
	// Name is a path or an object key: it names the input in errors and
	// gives the format and compression by extension.
	Name string
	// Size is the size in bytes (needed with ReaderAt for Parquet).
	Size int64
	// Open returns the raw (still compressed) bytes from the start, read
	// sequentially. CSV and NDJSON need it.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// ReaderAt gives random access. Parquet needs it. A ReaderAt that
	// reads ahead may be a StreamCounter.
	ReaderAt io.ReaderAt
	// ChunkBuffer is how much Parquet reads at a time from each column
	// chunk through ReaderAt; 0 means 64 KB, enough for local files. A
	// remote ReaderAt, where a read may be a request, asks for more.
	ChunkBuffer int64
}

// StreamCounter is a ReaderAt that reads ahead of sequential reads: the
// Parquet reader tells it how many column chunks it reads side by side.
type StreamCounter interface {
	ReadStreams(n int)
}

// Open reads in as a stream of batches of split, starting at row ro.Offset.
//
// Rows are numbered from 0 within the input: the Parquet row index, CSV
// data records (the header excluded), NDJSON non-blank lines. Batches are
// contiguous, the first starts at ro.Offset, and Next returns io.EOF after
// the last. An offset equal to the row count gives io.EOF at once; an
// offset past the end is an error (the input changed since the
// checkpoint). Rows that cannot be decoded come back as Rejects (Stage
// "source") of the batch they fall in.
//
// ro.Columns projects: Parquet reads only those columns; CSV and NDJSON
// drop the others (an NDJSON key k is kept when "k" or "k.<anything>" is
// asked for). A requested column the input lacks is absent from the
// records.
//
// The caller closes the reader; Close also closes what in.Open returned.
// When Open fails it closes that itself. A panic while opening (a bug) is
// returned as a *pipeline.PanicError, so the caller's error path runs and
// frees what it opened.
func Open(ctx context.Context, in Input, split string, opts Options, ro pipeline.ReadOptions, mem memory.Allocator) (rr pipeline.RecordReader, err error) {
	err = pipeline.Safely("opening", func() (err error) {
		rr, err = open(ctx, in, split, opts, ro, mem)
		return err
	})
	return rr, err
}

func open(ctx context.Context, in Input, split string, opts Options, ro pipeline.ReadOptions, mem memory.Allocator) (rr pipeline.RecordReader, err error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if ro.BatchRows <= 0 {
		ro.BatchRows = DefaultBatchRows
	}
	if ro.Offset < 0 {
		return nil, fmt.Errorf("%s: negative offset %d", in.Name, ro.Offset)
	}
	f, comp, err := Detect(in.Name, opts)
	if err != nil {
		return nil, err
	}
	if f == Parquet {
		if comp == Gzip || comp == Zstd {
			return nil, fmt.Errorf("%s: a Parquet file cannot be %s-compressed as a whole (Parquet compresses its pages itself); set compression: none or decompress it", in.Name, comp)
		}
		if in.ReaderAt == nil {
			return nil, fmt.Errorf("%s: reading Parquet needs random access (Input.ReaderAt)", in.Name)
		}
		return openParquet(ctx, in, split, ro, mem)
	}
	if in.Open == nil {
		return nil, fmt.Errorf("%s: reading %s needs a sequential reader (Input.Open)", in.Name, f)
	}
	rc, err := in.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Name, err)
	}
	// Closed here unless a reader took it: after an error, and while a
	// panic unwinds.
	var owned io.Closer = rc
	defer func() {
		if rr == nil {
			owned.Close()
		}
	}()
	r, err := decompress(in.Name, rc, comp)
	if err != nil {
		return nil, err
	}
	owned = r
	switch f {
	case CSV:
		csvOpts := opts.CSV
		if csvOpts.Delimiter == 0 && strings.HasSuffix(stripCompression(strings.ToLower(in.Name)), ".tsv") {
			csvOpts.Delimiter = '\t'
		}
		return newCSVReader(in.Name, r, split, csvOpts, opts.lineLimits(), ro, mem)
	default:
		return newNDJSONReader(in.Name, r, split, opts.lineLimits(), ro, mem), nil
	}
}

// Detect returns the format and compression of an input: the configured
// ones, else those its name's extensions say. Compression comes back ""
// when neither says; Open then sniffs the magic bytes.
func Detect(name string, opts Options) (format, compression string, err error) {
	lower := strings.ToLower(name)
	compression = opts.Compression
	if compression == "" {
		switch path.Ext(lower) {
		case ".gz", ".gzip":
			compression = Gzip
		case ".zst", ".zstd":
			compression = Zstd
		}
	}
	format = opts.Format
	if format == "" {
		switch path.Ext(stripCompression(lower)) {
		case ".parquet", ".pq":
			format = Parquet
		case ".csv", ".tsv", ".txt":
			format = CSV
		case ".json", ".jsonl", ".ndjson":
			format = NDJSON
		default:
			return "", "", fmt.Errorf("%s: cannot tell the format from the name: set format: parquet, csv or ndjson", name)
		}
	}
	switch format {
	case Parquet, CSV, NDJSON:
	default:
		return "", "", fmt.Errorf("%s: unknown format %q: want parquet, csv or ndjson", name, format)
	}
	switch compression {
	case "", Gzip, Zstd, None:
	default:
		return "", "", fmt.Errorf("%s: unknown compression %q: want gzip, zstd or none", name, compression)
	}
	return format, compression, nil
}

func stripCompression(lower string) string {
	for _, ext := range []string{".gz", ".gzip", ".zst", ".zstd"} {
		if strings.HasSuffix(lower, ext) {
			return strings.TrimSuffix(lower, ext)
		}
	}
	return lower
}

// readCloser couples a decoding reader with the closers beneath it.
type readCloser struct {
	io.Reader
	closers []func() error
}

func (r *readCloser) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

const readBuffer = 256 << 10

// maxZstdWindow is the largest zstd window decoded: what `zstd -d` takes
// without --memory (windowLog 27), enough for any level, --ultra -22 and
// --long included. The decoder allocates the window a frame declares
// before it decodes a byte, so klauspost's default of 512 MB let a 10-byte
// file take 512 MB per reading worker.
const maxZstdWindow = 128 << 20

// decompress wraps rc in the decoder comp names; "" sniffs magic bytes so
// objects without an extension still decode.
func decompress(name string, rc io.ReadCloser, comp string) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(rc, readBuffer)
	if comp == "" {
		magic, _ := br.Peek(4)
		switch {
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			comp = Gzip
		case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			comp = Zstd
		default:
			comp = None
		}
	}
	switch comp {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err == io.EOF {
			// An empty .gz file holds no rows.
			return &readCloser{Reader: strings.NewReader(""), closers: []func() error{rc.Close}}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not gzip data: %w", name, err)
		}
		return &readCloser{Reader: zr, closers: []func() error{zr.Close, rc.Close}}, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("%s: not zstd data: %w", name, err)
		}
		return &readCloser{Reader: zr, closers: []func() error{func() error { zr.Close(); return nil }, rc.Close}}, nil
	}
	return &readCloser{Reader: br, closers: []func() error{rc.Close}}, nil
}
