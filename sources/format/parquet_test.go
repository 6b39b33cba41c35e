package format

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
)

func ordersParquet(t testing.TB, rows, rowGroup int) []byte {
	var buf bytes.Buffer
	if err := sampledata.WriteOrdersParquetRowGroups(&buf, rows, 7, rowGroup); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParquetResume(t *testing.T) {
	data := ordersParquet(t, 2500, 1000)
	n, err := ParquetRows(bytes.NewReader(data), int64(len(data)))
	if err != nil || n != 2500 {
		t.Fatalf("ParquetRows = %d, %v", n, err)
	}
	for _, off := range []int64{0, 1, 299, 999, 1000, 1001, 1999, 2000, 2499, 2500} {
		t.Run(fmt.Sprint(off), func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			res, err := readAll(t, memInput("orders.parquet", data), DefaultOptions(),
				pipeline.ReadOptions{Offset: off, Columns: pipeline.AllColumns, BatchRows: 300}, mem)
			if err != nil {
				t.Fatal(err)
			}
			if res.end != 2500 || int64(len(res.rows)) != 2500-off || len(res.rejects) != 0 {
				t.Fatalf("read [%d,%d) with %d rows, %d rejects", res.start, res.end, len(res.rows), len(res.rejects))
			}
			for i, r := range res.rows {
				if want := fmt.Sprintf("ord_%d", 100000+off+int64(i)); r["order_id"] != want {
					t.Fatalf("row %d: order_id %q, want %q", off+int64(i), r["order_id"], want)
				}
				if len(r) != 12 {
					t.Fatalf("row has %d columns", len(r))
				}
			}
		})
	}
	_, err = readAll(t, memInput("orders.parquet", data), DefaultOptions(), pipeline.ReadOptions{Offset: 2501, Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
	if err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("offset past the end: %v", err)
	}
}

// Resuming in the last row group must not read the earlier ones.
func TestParquetSkipsRowGroups(t *testing.T) {
	data := ordersParquet(t, 4000, 1000)
	read := func(off int64) int64 {
		ra := &countingReaderAt{r: bytes.NewReader(data)}
		in := memInput("o.parquet", data)
		in.ReaderAt = ra
		if _, err := readAll(t, in, DefaultOptions(), pipeline.ReadOptions{Offset: off, Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t)); err != nil {
			t.Fatal(err)
		}
		return ra.n.Load()
	}
	all, last := read(0), read(3500)
	if last*2 > all {
		t.Fatalf("resuming at row 3500 read %d bytes, a full read %d", last, all)
	}
}

func TestParquetProjection(t *testing.T) {
	data := ordersParquet(t, 500, 200)
	full := &countingReaderAt{r: bytes.NewReader(data)}
	in := memInput("o.parquet", data)
	in.ReaderAt = full
	if _, err := readAll(t, in, DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t)); err != nil {
		t.Fatal(err)
	}
	proj := &countingReaderAt{r: bytes.NewReader(data)}
	in.ReaderAt = proj
	res, err := readAll(t, in, DefaultOptions(), pipeline.ReadOptions{Offset: 150, BatchRows: 64,
		Columns: pipeline.Columns{Names: []string{"amount", "order_id", "no_such_column"}}}, arrowtest.CheckedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 350 {
		t.Fatalf("%d rows", len(res.rows))
	}
	for _, s := range res.schemas {
		if s.NumFields() != 2 || s.Field(0).Name != "order_id" || s.Field(1).Name != "amount" {
			t.Fatalf("schema %s", s)
		}
	}
	if proj.n.Load()*2 > full.n.Load() {
		t.Fatalf("projection read %d bytes, all columns %d", proj.n.Load(), full.n.Load())
	}
	// No requested column exists: batches still account for the rows.
	res, err = readAll(t, memInput("o.parquet", data), DefaultOptions(), pipeline.ReadOptions{Offset: 10,
		Columns: pipeline.Columns{Names: []string{"nope"}}, BatchRows: 100}, arrowtest.CheckedMem(t))
	if err != nil || res.end != 500 || len(res.rows) != 490 || len(res.rows[0]) != 0 {
		t.Fatalf("no columns: %v, end %d, %d rows", err, res.end, len(res.rows))
	}
}

func TestParquetErrors(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":     nil,
		"not":       []byte("this is not parquet at all, just some text"),
		"truncated": ordersParquet(t, 100, 50)[:500],
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAll(t, memInput("bad.parquet", data), DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
			if err == nil || !strings.Contains(err.Error(), "bad.parquet") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	_, err := readAll(t, memInput("x.parquet.gz", []byte("x")), DefaultOptions(), pipeline.ReadOptions{}, arrowtest.CheckedMem(t))
	if err == nil || !strings.Contains(err.Error(), "cannot be gzip-compressed") {
		t.Fatalf("err = %v", err)
	}
}

// A corrupt footer is an error from ParquetRows, never a panic: arrow's
// metadata decoder dereferences nil on some, and sources count rows on a
// plan-time goroutine, where a panic would end the process.
func TestParquetRowsSurvivesCorruptFooters(t *testing.T) {
	// A small file of two columns: its footer is short, so random bytes
	// hit the schema (the orders file's statistics mostly absorb them).
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	for i := 0; i < 100; i++ {
		rb.Field(0).(*array.StringBuilder).Append(fmt.Sprint(i))
		rb.Field(1).(*array.Int64Builder).Append(int64(i))
	}
	rec := rb.NewRecord()
	defer rec.Release()
	good := arrowtest.ParquetBytes(t, rec, nil, pqarrow.DefaultWriterProps())
	if n, err := ParquetRows(bytes.NewReader(good), int64(len(good))); err != nil || n != 100 {
		t.Fatalf("good file: %d rows, %v", n, err)
	}
	rng := rand.New(rand.NewSource(1))
	failed := 0
	for i := 0; i < 3000; i++ {
		bad := bytes.Clone(good)
		for k := 0; k < 1+rng.Intn(4); k++ {
			bad[len(bad)-9-rng.Intn(300)] = byte(rng.Intn(256))
		}
		if _, err := ParquetRows(bytes.NewReader(bad), int64(len(bad))); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no corrupted footer was refused")
	}
}

// Columns that repeat a few values come back as dictionaries, holding the
// same values as a plain read; others stay strings. Batches that do not
// line up with row groups and resume offsets inside them still work.
func TestParquetReadsRepetitiveColumnsAsDictionaries(t *testing.T) {
	data := ordersParquet(t, 2500, 1000)
	// the reference: arrow's own read, without dictionaries
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	want := func(row int64, name string) string {
		col := tbl.Column(tbl.Schema().FieldIndices(name)[0]).Data()
		for _, c := range col.Chunks() {
			if row < int64(c.Len()) {
				if c.IsNull(int(row)) {
					return "(null)"
				}
				return c.ValueStr(int(row))
			}
			row -= int64(c.Len())
		}
		t.Fatalf("row %d past the table", row)
		return ""
	}
	for _, off := range []int64{0, 999, 1001} {
		mem := arrowtest.CheckedMem(t)
		res, err := readAll(t, memInput("orders.parquet", data), DefaultOptions(),
			pipeline.ReadOptions{Offset: off, Columns: pipeline.AllColumns, BatchRows: 300}, mem)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		for _, s := range res.schemas {
			for _, f := range s.Fields() {
				_, isDict := f.Type.(*arrow.DictionaryType)
				repetitive := map[string]bool{"event_name": true, "currency": true, "plan": true, "country": true, "user_agent": true}[f.Name]
				if isDict != repetitive {
					t.Fatalf("column %s is %s", f.Name, f.Type)
				}
			}
		}
		if int64(len(res.rows)) != 2500-off {
			t.Fatalf("offset %d: %d rows", off, len(res.rows))
		}
		for i, r := range res.rows {
			for name, got := range r {
				if w := want(off+int64(i), name); got != w {
					t.Fatalf("row %d %s = %q, want %q", off+int64(i), name, got, w)
				}
			}
		}
	}
}

// A column whose dictionary overflowed into plain pages is read as
// strings: arrow would hash every plain value into a dictionary.
func TestParquetPlainPagesStayStrings(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "kind", Type: arrow.BinaryTypes.String}}, nil)
	write := func(opts ...parquet.WriterProperty) []byte {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		for i := 0; i < 2000; i++ {
			b.Append([]string{"Order Completed", "Order Refunded", "Checkout Started", "Product Viewed"}[i%4])
		}
		arr := b.NewArray()
		defer arr.Release()
		rec := array.NewRecord(schema, []arrow.Array{arr}, 2000)
		defer rec.Release()
		return arrowtest.ParquetBytes(t, rec, parquet.NewWriterProperties(opts...), pqarrow.DefaultWriterProps())
	}
	for _, tc := range []struct {
		name string
		data []byte
		dict bool
	}{
		{"dictionary pages only", write(), true},
		{"dictionary overflowed", write(parquet.WithDictionaryPageSizeLimit(20), parquet.WithDataPageSize(512)), false},
	} {
		res, err := readAll(t, memInput("k.parquet", tc.data), DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 1000}, arrowtest.CheckedMem(t))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, isDict := res.schemas[0].Field(0).Type.(*arrow.DictionaryType)
		if isDict != tc.dict || len(res.rows) != 2000 || res.rows[1999]["kind"] != "Product Viewed" {
			t.Fatalf("%s: read as %s, %d rows", tc.name, res.schemas[0].Field(0).Type, len(res.rows))
		}
	}
}

// Row groups under half a batch are read as before, batches spanning
// them, without dictionaries: a batch per small row group would cost more.
func TestParquetSmallRowGroupsStayStrings(t *testing.T) {
	data := ordersParquet(t, 2000, 100)
	res, err := readAll(t, memInput("o.parquet", data), DefaultOptions(),
		pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 1000}, arrowtest.CheckedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.batches != 2 || len(res.rows) != 2000 {
		t.Fatalf("%d batches, %d rows", res.batches, len(res.rows))
	}
	for _, f := range res.schemas[0].Fields() {
		if f.Type.ID() == arrow.DICTIONARY {
			t.Fatalf("column %s read as %s", f.Name, f.Type)
		}
	}
}

// A file whose stored Arrow schema has a dictionary column is read with
// batches that do not line up with its row groups (pqarrow fails to join
// two row groups' dictionaries in one batch).
func TestParquetStoredDictionaryColumn(t *testing.T) {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	schema := arrow.NewSchema([]arrow.Field{{Name: "kind", Type: dt}}, nil)
	mem := memory.DefaultAllocator
	b := array.NewDictionaryBuilder(mem, dt).(*array.BinaryDictionaryBuilder)
	defer b.Release()
	for i := 0; i < 2500; i++ {
		if err := b.AppendString(fmt.Sprintf("k%d", i/700)); err != nil { // row groups hold different values
			t.Fatal(err)
		}
	}
	arr := b.NewArray()
	defer arr.Release()
	rec := array.NewRecord(schema, []arrow.Array{arr}, 2500)
	defer rec.Release()
	data := arrowtest.ParquetBytes(t, rec, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(1000)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	res, err := readAll(t, memInput("k.parquet", data), DefaultOptions(),
		pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 300}, arrowtest.CheckedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 2500 {
		t.Fatalf("%d rows", len(res.rows))
	}
	for i, r := range res.rows {
		if want := fmt.Sprintf("k%d", i/700); r["kind"] != want {
			t.Fatalf("row %d: %q, want %q", i, r["kind"], want)
		}
	}
}

// Corrupt data pages (3 bytes flipped, fixed seed) end in an error naming
// the file, never a panic: decoded on the caller's goroutine, where it is
// recovered, and with dictionary indices checked before anything reads
// them. Some flips land where nothing checks them and read as other values.
func TestParquetCorruptPages(t *testing.T) {
	data := ordersParquet(t, 3000, 1000)
	r := rand.New(rand.NewSource(1))
	failed := 0
	for i := 0; i < 200; i++ {
		bad := append([]byte(nil), data...)
		for k := 0; k < 3; k++ {
			bad[4+r.Intn(len(bad)-4-2000)] ^= byte(1 + r.Intn(255)) // pages, not the footer
		}
		_, err := readAll(t, memInput("c.parquet", bad), DefaultOptions(),
			pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 700}, arrowtest.CheckedMem(t))
		if err != nil {
			failed++
			if !strings.HasPrefix(err.Error(), "c.parquet: ") {
				t.Fatalf("error without the file's name: %v", err)
			}
		}
	}
	if failed < 100 {
		t.Fatalf("only %d of 200 corrupt files failed to read", failed)
	}
}

// Projecting a list or struct column reads that column: pqarrow v15 says
// nested fields are leaves of column 0, and the projection used to read
// the file's first column in their place (found with FuzzParquet).
func TestParquetProjectsNestedColumns(t *testing.T) {
	for i, data := range fuzzParquetSeeds(t)[1:] {
		for _, col := range []string{"ctx", "tags"} {
			res, err := readAll(t, memInput("n.parquet", data), DefaultOptions(),
				pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{col}}}, arrowtest.CheckedMem(t))
			if err != nil {
				t.Fatal(i, err)
			}
			want := map[string]string{"ctx": `{"ip":"1.2.3.4"}`, "tags": `["x","y"]`}[col]
			if len(res.rows) != 5 || len(res.rows[0]) != 1 || res.rows[0][col] != want {
				t.Fatalf("file %d, column %s: rows %v", i, col, res.rows)
			}
		}
	}
}

// corpusBytes reads the []byte argument of a `go test fuzz v1` file.
func corpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Split(string(b), "\n")[1]
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// A corrupt page of a struct's column is an error. pqarrow decodes a
// struct's children on goroutines of its own, where the decoder's panic
// (here a dictionary page without its header) ended the process; the
// reader now decodes those columns once on its own goroutine first.
// FuzzParquet found it; the file is in its corpus.
func TestParquetCorruptStructPageIsAnError(t *testing.T) {
	data := corpusBytes(t, "testdata/fuzz/FuzzParquet/7bf679c42af9c2e7")
	for _, cols := range []pipeline.Columns{pipeline.AllColumns, {Names: []string{"ctx"}}} {
		_, err := readAll(t, memInput("s.parquet", data), DefaultOptions(), pipeline.ReadOptions{Columns: cols, BatchRows: 2}, arrowtest.CheckedMem(t))
		if err == nil || !strings.Contains(err.Error(), "s.parquet: ") || !strings.Contains(err.Error(), "corrupt Parquet data") {
			t.Fatalf("err = %v", err)
		}
	}
}
