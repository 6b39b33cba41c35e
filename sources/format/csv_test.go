package format

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
)

func TestCSV(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	tests := []struct {
		name    string
		file    string
		data    string
		opts    func(*CSVOptions)
		want    []string // each record row: "col=value;col=value" in schema order
		rejects []string // substrings of each reject's reason
	}{
		{name: "header and types", file: "orders.csv",
			data: "id,amount,ok,at,meta\n1,12.5,true,2024-03-01T10:00:00Z,{\"a\":1}\n2,,f,2024-03-01 10:00:00.5+02,[1]\n",
			opts: func(o *CSVOptions) {
				o.Columns = []Column{{"id", "int64"}, {"amount", "float64"}, {"ok", "bool"}, {"at", "timestamp"}, {"meta", "json"}}
			},
			want: []string{
				`id=1;amount=12.5;ok=true;at=2024-03-01 10:00:00Z;meta={"a":1}`,
				`id=2;amount=(null);ok=false;at=2024-03-01 08:00:00.5Z;meta=[1]`,
			}},
		{name: "bad values rejected", file: "orders.csv",
			data:    "id,amount\n1,10\n2,\"12,5\"\n3,x\n4,7\n5\n6,1,2\n",
			opts:    func(o *CSVOptions) { o.Columns = []Column{{"amount", "int64"}} },
			want:    []string{"id=1;amount=10", "id=4;amount=7"},
			rejects: []string{`orders.csv line 3, column "amount": expected int64, got "12,5"`, `line 4, column "amount": expected int64, got "x"`, "orders.csv line 6: expected 2 fields, got 1", "line 7: expected 2 fields, got 3"}},
		{name: "quotes and newlines", file: "q.csv",
			data: "a,b\r\n\"x, \"\"y\"\"\",\"multi\nline\"\r\n\"\",plain\n",
			want: []string{`a=x, "y";b=multi` + "\nline", "a=;b=plain"}},
		{name: "bad quote", file: "q.csv",
			data:    "a,b\n\"x\"y,1\n2,3\n",
			want:    []string{"a=2;b=3"},
			rejects: []string{`q.csv line 2: field 1: unexpected 'y' after a closing quote`}},
		{name: "unterminated quote", file: "q.csv",
			data:    "a,b\n1,2\n\"open,3\n4,5\n",
			want:    []string{"a=1;b=2"},
			rejects: []string{"q.csv line 3: quoted field not closed"}},
		{name: "pipe and nulls", file: "unload.txt",
			data: "a|b\n|x\n\\N|\n",
			opts: func(o *CSVOptions) { o.Delimiter = '|'; o.Null = `\N` },
			want: []string{"a=;b=x", "a=(null);b="}},
		{name: "redshift empty is null", file: "unload.csv",
			data: "a,b\n,\"\"\n",
			want: []string{"a=(null);b="}},
		{name: "tsv by extension", file: "x.tsv",
			data: "a\tb\n1,2\t3\n",
			want: []string{"a=1,2;b=3"}},
		{name: "postgres text", file: "users.txt",
			data: "1\tann\\tx\\\\y\t\\N\n2\tl1\\nl2\\101\t2024-01-02 03:04:05+00\n",
			opts: func(o *CSVOptions) {
				*o = CSVOptions{PostgresText: true, Null: `\N`, Columns: []Column{{"id", "int64"}, {"name", "string"}, {"at", "timestamp"}}}
			},
			want: []string{"id=1;name=ann\tx\\y;at=(null)", "id=2;name=l1\nl2A;at=2024-01-02 03:04:05Z"}},
		{name: "no header, no columns", file: "x.csv",
			data: "1,2\n3,4\n",
			opts: func(o *CSVOptions) { o.Header = false },
			want: []string{"column_1=1;column_2=2", "column_1=3;column_2=4"}},
		{name: "custom quote and blank lines", file: "x.csv",
			data: "a,b\n\n'x,y',1\n\n",
			opts: func(o *CSVOptions) { o.Quote = '\'' },
			want: []string{"a=x,y;b=1"}},
		{name: "long line", file: "x.csv",
			data: "a,b\n" + long + ",1\n",
			want: []string{"a=" + long + ";b=1"}},
		{name: "empty file", file: "x.csv", data: ""},
		{name: "header only", file: "x.csv", data: "a,b\n"},
		{name: "invalid utf8", file: "x.csv",
			data:    "a\n\xff\n",
			rejects: []string{`x.csv line 2, column "a": expected UTF-8 text`}},
	}
	for _, tc := range tests {
		for _, comp := range []string{None, Gzip, Zstd} {
			t.Run(tc.name+"/"+comp, func(t *testing.T) {
				opts := DefaultOptions()
				if tc.opts != nil {
					tc.opts(&opts.CSV)
				}
				data := compressBytes(t, []byte(tc.data), comp)
				res, err := readAll(t, memInput(tc.file+compExt[comp], data), opts,
					pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 2}, arrowtest.CheckedMem(t))
				if err != nil {
					t.Fatal(err)
				}
				var rejects []string
				for _, r := range tc.rejects {
					rejects = append(rejects, strings.ReplaceAll(r, tc.file, tc.file+compExt[comp]))
				}
				checkRows(t, res, tc.want, rejects)
			})
		}
	}
}

func checkRows(t *testing.T, res *result, want, rejects []string) {
	t.Helper()
	var got []string
	for i, r := range res.rows {
		var parts []string
		for _, f := range res.schemas[0].Fields() {
			_ = i
			parts = append(parts, f.Name+"="+r[f.Name])
		}
		got = append(got, strings.Join(parts, ";"))
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("rows:\n got %q\nwant %q", got, want)
	}
	if len(res.rejects) != len(rejects) {
		t.Fatalf("rejects %+v, want %q", res.rejects, rejects)
	}
	for i, r := range res.rejects {
		if !strings.Contains(r.Reason, rejects[i]) || r.Raw == "" {
			t.Errorf("reject %d: %q (raw %q), want %q", i, r.Reason, r.Raw, rejects[i])
		}
	}
	if int64(len(res.rows)+len(res.rejects)) != res.end-res.start {
		t.Errorf("%d rows + %d rejects != [%d,%d)", len(res.rows), len(res.rejects), res.start, res.end)
	}
}

func TestCSVResume(t *testing.T) {
	// Quoted newlines make records span lines: resuming counts records.
	var b strings.Builder
	b.WriteString("id,note\n")
	for i := 0; i < 50; i++ {
		if i%7 == 0 {
			fmt.Fprintf(&b, "%d,\"two\nlines\"\n", i)
		} else if i%11 == 0 {
			fmt.Fprintf(&b, "%d,bad,extra\n", i)
		} else {
			fmt.Fprintf(&b, "%d,n\n", i)
		}
	}
	for _, off := range []int64{0, 1, 7, 8, 11, 49, 50} {
		res, err := readAll(t, memInput("r.csv", []byte(b.String())), DefaultOptions(),
			pipeline.ReadOptions{Offset: off, Columns: pipeline.Columns{Names: []string{"id", "missing"}}, BatchRows: 4}, arrowtest.CheckedMem(t))
		if err != nil {
			t.Fatal(off, err)
		}
		if res.end != 50 {
			t.Fatalf("offset %d: ended at %d", off, res.end)
		}
		for i, r := range res.rows {
			if r["id"] != fmt.Sprint(res.offsets[i]) || len(r) != 1 {
				t.Fatalf("offset %d: row %v at offset %d", off, r, res.offsets[i])
			}
		}
		for _, r := range res.rejects {
			if r.Row%11 != 0 {
				t.Fatalf("offset %d: reject %+v", off, r)
			}
		}
	}
	_, err := readAll(t, memInput("r.csv", []byte(b.String())), DefaultOptions(), pipeline.ReadOptions{Offset: 51}, arrowtest.CheckedMem(t))
	if err == nil || !strings.Contains(err.Error(), "r.csv: resume offset 51 is past the end") {
		t.Fatalf("err = %v", err)
	}
}

func TestCSVDeclaredColumnMissing(t *testing.T) {
	opts := DefaultOptions()
	opts.CSV.Columns = []Column{{"amont", "float64"}}
	_, err := readAll(t, memInput("o.csv", []byte("id,amount\n1,2\n")), opts, pipeline.ReadOptions{}, arrowtest.CheckedMem(t))
	if err == nil || !strings.Contains(err.Error(), `o.csv: declared column "amont" not in the file's columns (id, amount)`) {
		t.Fatalf("err = %v", err)
	}
}

// A header naming two columns alike fails the file: the second would be
// unreachable, its values silently dropped.
func TestCSVDuplicateHeader(t *testing.T) {
	_, err := readAll(t, memInput("d.csv", []byte("id,email,email\n1,a,b\n")), DefaultOptions(), pipeline.ReadOptions{}, arrowtest.CheckedMem(t))
	if err == nil || !strings.Contains(err.Error(), `d.csv line 1: header: columns 2 and 3 are both named "email"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestCSVSample(t *testing.T) {
	var buf bytes.Buffer
	if err := sampledata.WriteSignupsCSV(&buf, 1000, 3); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.CSV.Columns = []Column{{"signed_up_at", "timestamp"}}
	res, err := readAll(t, memInput("signups.csv", buf.Bytes()), opts, pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 1000 || len(res.rejects) != 0 || len(res.schemas[0].Fields()) != 6 {
		t.Fatalf("%d rows, %d rejects", len(res.rows), len(res.rejects))
	}
}

// Without a header, the first row names the columns even when it cannot
// be split itself (a bad escape, a bad quote): it is rejected, and the
// rows after it are read with as many columns as it has fields, not only
// those split before its mistake (the fuzzer found every later row
// rejected as "expected 0 fields").
func TestCSVFirstRowBadStillNamesColumns(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		opts       CSVOptions
		reject     string
	}{
		{"copy.txt", "1\\\t2\n3\t4\n", CSVOptions{PostgresText: true, Null: `\N`}, "copy.txt line 1: field 1: backslash at the end of the field"},
		{"q.csv", "\"x\"y,1\n3,4\n", CSVOptions{}, "q.csv line 1: field 1: unexpected 'y' after a closing quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.CSV = tc.opts
			res, err := readAll(t, memInput(tc.name, []byte(tc.data)), opts, pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, res, []string{"column_1=3;column_2=4"}, []string{tc.reject})
		})
	}
}
