package format

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

func TestNDJSON(t *testing.T) {
	long := strings.Repeat("y", 300<<10)
	tests := []struct {
		name    string
		data    string
		want    []string
		rejects []string
	}{
		{name: "segment archive",
			data: `{"type":"track","event":"Order Completed","properties":{"total":9.5,"items":[1,2]},"context":{"ip":"1.2.3.4"},"timestamp":"2024-01-01T00:00:00Z"}` + "\n" +
				`{"type":"identify","traits":{"plan":"pro"},"timestamp":"2024-01-02T00:00:00Z"}` + "\n",
			want: []string{
				`type=track;event=Order Completed;properties={"total":9.5,"items":[1,2]};context={"ip":"1.2.3.4"};timestamp=2024-01-01T00:00:00Z;traits=(null)`,
				`type=identify;event=(null);properties=(null);context=(null);timestamp=2024-01-02T00:00:00Z;traits={"plan":"pro"}`,
			}},
		{name: "types",
			data: `{"i":1,"f":1,"b":true,"m":"x","n":null,"s":"a\"b\u00e9"}` + "\n" + `{"i":-2,"f":2.5,"b":false,"m":3,"n":null,"s":"c"}` + "\n",
			want: []string{`i=1;f=1;b=true;m="x";n=(null);s=a"bé`, `i=-2;f=2.5;b=false;m=3;n=(null);s=c`}},
		{name: "blank lines, bad lines",
			data: "\n{\"a\":1}\n  \n[1,2]\n{\"a\":2} x\n{\"a\":\n{\"a\":3,}\n{\"a\":1e999}\n{\"a\":4}\r\n{\"a\":\"\xff\"}\n{\"a\xff\":5}\n",
			want: []string{"a=1", "a=4"},
			rejects: []string{"x.ndjson line 4: not a JSON object", "x.ndjson line 5: byte 9: text after the JSON object",
				"line 6: byte 6: unexpected end of JSON, expected a JSON value", "line 7: byte 8: expected a key string", "line 8: number 1e999 is out of range",
				"line 10: byte 7: invalid UTF-8", "line 11: byte 2: invalid UTF-8 in a key"}},
		{name: "duplicate and escaped keys",
			data: `{"a":1,"a":2,"k\u0065y":"v"}` + "\n",
			want: []string{"a=2;key=v"}},
		{name: "big ints become floats",
			data: `{"a":1}` + "\n" + `{"a":99999999999999999999}` + "\n",
			want: []string{"a=1", "a=1e+20"}},
		{name: "long line", data: `{"a":"` + long + `"}` + "\n", want: []string{"a=" + long}},
		{name: "empty", data: ""},
		{name: "no final newline", data: `{"a":"x"}`, want: []string{"a=x"}},
	}
	for _, tc := range tests {
		for _, comp := range []string{None, Gzip, Zstd} {
			t.Run(tc.name+"/"+comp, func(t *testing.T) {
				data := compressBytes(t, []byte(tc.data), comp)
				res, err := readAll(t, memInput("x.ndjson"+compExt[comp], data), DefaultOptions(),
					pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 100}, arrowtest.CheckedMem(t))
				if err != nil {
					t.Fatal(err)
				}
				var rejects []string
				for _, r := range tc.rejects {
					rejects = append(rejects, strings.ReplaceAll(r, "x.ndjson", "x.ndjson"+compExt[comp]))
				}
				checkRows(t, res, tc.want, rejects)
			})
		}
	}
}

func TestNDJSONTypes(t *testing.T) {
	data := `{"s":"x","i":1,"f":1.5,"b":true,"o":{"a":1},"mix":1,"null":null}` + "\n" + `{"mix":"y","f":2}` + "\n"
	res, err := readAll(t, memInput("t.jsonl", []byte(data)), DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]arrow.DataType{"s": arrow.BinaryTypes.String, "i": arrow.PrimitiveTypes.Int64, "f": arrow.PrimitiveTypes.Float64,
		"b": arrow.FixedWidthTypes.Boolean, "o": record.JSON, "mix": record.JSON, "null": record.JSON}
	for _, f := range res.schemas[0].Fields() {
		if !arrow.TypeEqual(f.Type, want[f.Name]) {
			t.Errorf("%s: %s, want %s", f.Name, f.Type, want[f.Name])
		}
	}
}

// The schema is per batch: a key that appears only in a later batch still
// comes out.
func TestNDJSONSchemaPerBatch(t *testing.T) {
	data := "{\"a\":1}\n{\"a\":2}\n{\"a\":3,\"late\":\"x\"}\n"
	res, err := readAll(t, memInput("t.json", []byte(data)), DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 2}, arrowtest.CheckedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.batches != 2 || res.rows[2]["late"] != "x" || res.schemas[0].NumFields() != 1 {
		t.Fatalf("%d batches, rows %v", res.batches, res.rows)
	}
}

func TestNDJSONResumeAndProjection(t *testing.T) {
	var buf bytes.Buffer
	if err := sampledata.WriteArchiveNDJSON(&buf, 500, 1); err != nil {
		t.Fatal(err)
	}
	// A bad line and blank lines in the middle: they count (or not) the same when skipped.
	lines := strings.SplitAfter(buf.String(), "\n")
	data := strings.Join(lines[:100], "") + "\n\nnot json\n" + strings.Join(lines[100:], "")
	for _, off := range []int64{0, 99, 100, 101, 250, 501} {
		res, err := readAll(t, memInput("a.ndjson.gz", compressBytes(t, []byte(data), Gzip)), DefaultOptions(),
			pipeline.ReadOptions{Offset: off, BatchRows: 64, Columns: pipeline.Columns{Names: []string{"messageId", "properties.total", "nope"}}}, arrowtest.CheckedMem(t))
		if err != nil {
			t.Fatal(err)
		}
		if res.end != 501 {
			t.Fatalf("offset %d: end %d", off, res.end)
		}
		for i, r := range res.rows {
			row := res.offsets[i]
			if row > 100 {
				row-- // the bad line is row 100
			}
			if r["messageId"] != fmt.Sprintf("msg-%d", row) || len(r) != 2 {
				t.Fatalf("offset %d: row %d is %v", off, res.offsets[i], r)
			}
		}
		if wantRejects := off <= 100; wantRejects != (len(res.rejects) == 1) {
			t.Fatalf("offset %d: rejects %v", off, res.rejects)
		}
	}
	_, err := readAll(t, memInput("a.ndjson", []byte(data)), DefaultOptions(), pipeline.ReadOptions{Offset: 502}, arrowtest.CheckedMem(t))
	if err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("err = %v", err)
	}
}
