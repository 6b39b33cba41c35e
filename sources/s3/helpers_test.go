package s3

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"go.uber.org/goleak"
)

// The source reads footers and objects from goroutines over HTTP: every
// test must leave none running. Without a minio binary the S3 tests skip,
// and Report says so in one line.
func TestMain(m *testing.M) { goleak.VerifyTestMain(s3test.Report(m)) }

// loadConf parses an s3 source config the way a pipeline file is parsed.
func loadConf(t testing.TB, body string) (*config.Conf, error) {
	t.Helper()
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	reg.Register(config.SinkPlugin("discard", config.NewSpec("unused"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) {
		return nil, errors.New("not built in these tests")
	}))
	var b strings.Builder
	b.WriteString("name: t\nsink: discard\nsource:\n  s3:\n")
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		b.WriteString("    " + line + "\n")
	}
	cfg, err := config.Load("p.yaml", []byte(b.String()), config.LoadOptions{Registry: reg, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, err
	}
	return cfg.Source.Conf, nil
}

// minioConf is the connection part of a config for srv (or a proxy).
func minioConf(srv *s3test.Server, endpoint string) string {
	if endpoint == "" {
		endpoint = srv.Endpoint
	}
	return fmt.Sprintf("endpoint: %s\npath_style: true\nregion: %s\naccess_key_id: %s\nsecret_access_key: %s\n",
		endpoint, s3test.Region, srv.AccessKey, srv.SecretKey)
}

func newSource(t testing.TB, mem memory.Allocator, body string) *Source {
	t.Helper()
	c, err := loadConf(t, body)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	src, err := New(c, &pipeline.Env{Name: "t", Alloc: mem})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return src.(*Source)
}

// splitsOf makes a source from body and lists its splits.
func splitsOf(t testing.TB, mem memory.Allocator, body string) (*Source, []pipeline.Split) {
	t.Helper()
	src := newSource(t, mem, body)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatalf("Splits: %v", err)
	}
	return src, splits
}

// readResult is what a whole split read gave.
type readResult struct {
	rows    int64
	first   int64 // Start of the first batch
	cols    map[string][]string
	schemas []*arrow.Schema
}

// readSplit reads a split to the end, checking batch contiguity, and keeps
// the listed columns' values as text.
func readSplit(t testing.TB, src *Source, sp pipeline.Split, ro pipeline.ReadOptions, keep ...string) readResult {
	t.Helper()
	ctx := context.Background()
	rr, err := src.Open(ctx, sp, ro)
	if err != nil {
		t.Fatalf("open %s: %v", sp.ID, err)
	}
	defer rr.Close()
	res := readResult{cols: map[string][]string{}, first: -1}
	next := ro.Offset
	for {
		b, err := rr.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next %s: %v", sp.ID, err)
		}
		if b.Start != next {
			t.Fatalf("%s: batch starts at %d, want %d", sp.ID, b.Start, next)
		}
		if len(b.Rejects) > 0 {
			t.Fatalf("%s: unexpected rejects %+v", sp.ID, b.Rejects[0])
		}
		if res.first < 0 {
			res.first = b.Start
		}
		next = b.End
		res.rows += b.End - b.Start
		if b.Record != nil {
			res.schemas = append(res.schemas, b.Record.Schema())
			for _, name := range keep {
				idx := b.Record.Schema().FieldIndices(name)
				if len(idx) == 0 {
					t.Fatalf("%s: no column %q in %s", sp.ID, name, b.Record.Schema())
				}
				col := b.Record.Column(idx[0])
				for i := 0; i < col.Len(); i++ {
					res.cols[name] = append(res.cols[name], col.ValueStr(i))
				}
			}
		}
		b.Release()
	}
	return res
}

// genParquet writes rows [0, n) of a test schema (id int64, event string,
// amount float64, pad string of padLen bytes) in row groups of rg rows,
// streaming to w: nothing but one record of rg rows is held in memory.
func genParquet(t testing.TB, w io.Writer, n, rg int64, padLen int) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "event", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
		{Name: "pad", Type: arrow.BinaryTypes.String},
	}, nil)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed),
		parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(rg))
	fw, err := pqarrow.NewFileWriter(schema, w, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	pad := make([]byte, padLen)
	for start := int64(0); start < n; start += rg {
		end := min(start+rg, n)
		for i := start; i < end; i++ {
			bld.Field(0).(*array.Int64Builder).Append(i)
			bld.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("event-%d", i%7))
			bld.Field(2).(*array.Float64Builder).Append(float64(i) / 100)
			// Varying bytes so the pad cannot be encoded away.
			for j := range pad {
				pad[j] = 'a' + byte((i*31+int64(j)*7)%26)
			}
			bld.Field(3).(*array.StringBuilder).BinaryBuilder.Append(pad)
		}
		rec := bld.NewRecord()
		err := fw.Write(rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
}

func parquetBytes(t testing.TB, n, rg int64, padLen int) []byte {
	var buf bytes.Buffer
	genParquet(t, &buf, n, rg, padLen)
	return buf.Bytes()
}

// parquetFile writes a generated Parquet file to dir and returns its path.
func parquetFile(t testing.TB, dir string, n, rg int64, padLen int) string {
	t.Helper()
	path := dir + "/big.parquet"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	genParquet(t, f, n, rg, padLen)
	// pqarrow's writer closes its sink when it is an io.Closer.
	if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Fatal(err)
	}
	return path
}

func gzipLines(t testing.TB, lines ...string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range lines {
		fmt.Fprintln(zw, l)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func splitIDs(sp []pipeline.Split) []string {
	out := make([]string, len(sp))
	for i, s := range sp {
		out[i] = s.ID
	}
	return out
}

// wideParquet is rows of cols 8-byte string columns in one row group,
// uncompressed and without dictionaries, in pages of about page bytes.
func wideParquet(t testing.TB, cols, rows, page int) []byte {
	t.Helper()
	fields := make([]arrow.Field, cols)
	for i := range fields {
		fields[i] = arrow.Field{Name: fmt.Sprintf("c%d", i), Type: arrow.BinaryTypes.String}
	}
	schema := arrow.NewSchema(fields, nil)
	bld := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer bld.Release()
	b := make([]byte, 8)
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
	return arrowtest.ParquetBytes(t, rec, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed),
		parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(int64(rows)), parquet.WithDataPageSize(int64(page))),
		pqarrow.DefaultWriterProps())
}
