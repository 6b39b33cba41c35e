package format

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
)

func orderNames() []string {
	var names []string
	for _, f := range sampledata.OrdersSchema.Fields() {
		names = append(names, f.Name)
	}
	return names
}

// A Parquet file's columns come from its footer: a small part of the file
// is read.
func TestPeekParquetReadsTheFooter(t *testing.T) {
	data := ordersParquet(t, 20000, 5000)
	ra := &countingReaderAt{r: bytes.NewReader(data)}
	in := Input{Name: "orders.parquet", Size: int64(len(data)), ReaderAt: ra}
	names, where, err := PeekColumns(context.Background(), in, DefaultOptions())
	if err != nil || where != "orders.parquet" || !reflect.DeepEqual(names, orderNames()) {
		t.Fatalf("names %v, where %q, err %v", names, where, err)
	}
	if n := ra.n.Load(); n*10 > int64(len(data)) {
		t.Fatalf("read %d of %d bytes: more than the footer", n, len(data))
	}
}

// CSV: the header, or column_1.. from the first record, or the declared
// names without reading.
func TestPeekCSV(t *testing.T) {
	ctx := context.Background()
	text := []byte("\ufeffid,email,\n1,a@b.c,x\n")
	names, where, err := PeekColumns(ctx, memInput("u.csv", text), DefaultOptions())
	if err != nil || where != "u.csv" || !reflect.DeepEqual(names, []string{"id", "email", "column_3"}) {
		t.Fatalf("header: %v %q %v", names, where, err)
	}
	tsv := []byte("id\temail\n1\ta@b.c\n")
	if names, _, err := PeekColumns(ctx, memInput("u.tsv.gz", compressBytes(t, tsv, Gzip)), DefaultOptions()); err != nil || !reflect.DeepEqual(names, []string{"id", "email"}) {
		t.Fatalf("tsv: %v %v", names, err)
	}
	noHeader := DefaultOptions()
	noHeader.CSV.Header = false
	if names, _, err := PeekColumns(ctx, memInput("u.csv", text[3:]), noHeader); err != nil || !reflect.DeepEqual(names, []string{"column_1", "column_2", "column_3"}) {
		t.Fatalf("no header: %v %v", names, err)
	}
	noHeader.CSV.Columns = []Column{{Name: "id", Type: "int64"}, {Name: "email", Type: "string"}}
	in := Input{Name: "u.csv"} // nothing to read: declared names
	if names, _, err := PeekColumns(ctx, in, noHeader); err != nil || !reflect.DeepEqual(names, []string{"id", "email"}) {
		t.Fatalf("declared: %v %v", names, err)
	}
	if _, _, err := PeekColumns(ctx, memInput("e.csv", nil), DefaultOptions()); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
}

// NDJSON: the top-level keys of the first lines, in first-seen order;
// where says when the file goes on past them.
func TestPeekNDJSON(t *testing.T) {
	ctx := context.Background()
	text := `{"id":1,"properties":{"total":2}}` + "\n\nnot json\n" + `{"id":2,"email\u0041":"x"}` + "\n"
	names, where, err := PeekColumns(ctx, memInput("e.ndjson", []byte(text)), DefaultOptions())
	if err != nil || where != "e.ndjson" || !reflect.DeepEqual(names, []string{"id", "properties", "emailA"}) {
		t.Fatalf("%v %q %v", names, where, err)
	}
	var long strings.Builder
	for i := 0; i < PeekLines+10; i++ {
		fmt.Fprintf(&long, `{"id":%d}`+"\n", i)
	}
	long.WriteString(`{"id":0,"late":true}` + "\n")
	names, where, err = PeekColumns(ctx, memInput("e.ndjson.gz", compressBytes(t, []byte(long.String()), Gzip)), DefaultOptions())
	if err != nil || where != fmt.Sprintf("the first %d lines of e.ndjson.gz", PeekLines) || !reflect.DeepEqual(names, []string{"id"}) {
		t.Fatalf("%v %q %v", names, where, err)
	}
	if _, _, err := PeekColumns(ctx, memInput("e.ndjson", []byte("[1]\n")), DefaultOptions()); err == nil {
		t.Fatal("no object: want an error")
	}
}

// A source may hand over only the first PeekBytes of a compressed object:
// the cut is the end of the input, not an error.
func TestPeekNDJSONCutShort(t *testing.T) {
	var text bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	pad := make([]byte, 1000)
	for i := 0; i < 600; i++ {
		for j := range pad {
			pad[j] = byte(r.Uint32())
		}
		fmt.Fprintf(&text, `{"id":%d,"pad":"%x"}`+"\n", i, pad)
	}
	gz := compressBytes(t, text.Bytes(), Gzip)
	cut := gz[:len(gz)/3] // fewer than PeekLines lines, under PeekBytes: the gzip stream ends mid-way
	names, where, err := PeekColumns(context.Background(), memInput("e.ndjson.gz", cut), DefaultOptions())
	if err != nil || !strings.HasPrefix(where, "the first ") || !reflect.DeepEqual(names, []string{"id", "pad"}) {
		t.Fatalf("%v %q %v", names, where, err)
	}
}

// Each reader records every column of its input on the records' schema,
// the ones not projected too.
func TestReadersRecordTheDataColumns(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	ro := pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"email", "nope"}}}
	for _, tt := range []struct {
		in   Input
		want []string
	}{
		{memInput("u.csv", []byte("id,email,plan\n1,a@b.c,pro\n")), []string{"id", "email", "plan"}},
		{memInput("u.ndjson", []byte(`{"id":1,"email":"a@b.c","ctx":{"ip":"x"}}`+"\n")), []string{"id", "email", "ctx"}},
		{memInput("u.parquet", ordersParquet(t, 10, 10)), orderNames()},
	} {
		res, err := readAll(t, tt.in, DefaultOptions(), ro, mem)
		if err != nil || len(res.schemas) == 0 {
			t.Fatalf("%s: %v", tt.in.Name, err)
		}
		s := res.schemas[0]
		if got := pipeline.DataColumns(s); !reflect.DeepEqual(got, tt.want) || s.NumFields() != 1 || s.Field(0).Name != "email" {
			t.Errorf("%s: data columns %v, schema %v", tt.in.Name, got, s)
		}
	}
	// No projected column in the file: the empty records still tell.
	ro.Columns.Names = []string{"nope"}
	res, err := readAll(t, memInput("u.parquet", ordersParquet(t, 10, 10)), DefaultOptions(), ro, mem)
	if err != nil || len(res.schemas) == 0 || !reflect.DeepEqual(pipeline.DataColumns(res.schemas[0]), orderNames()) {
		t.Fatalf("%v %v", err, res.schemas)
	}
}

var _ io.ReaderAt = (*countingReaderAt)(nil)
