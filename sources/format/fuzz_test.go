package format

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/internal/testkit/ndjsontest"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
)

// The fuzz targets of the readers. Each checks properties against a model
// that does not share the reader's code where one is at hand (encoding/json
// for NDJSON, a plain split into lines, the records splitFields makes of
// whole texts), and otherwise against the reader itself read another way
// (resumed at an offset, compressed, with a small line limit and buffer):
//
//   - every batch is contiguous and accounts for its rows: rows in the
//     record plus rejects equal [Start, End), and End is the number of
//     records (lines, rows) the input holds;
//   - a reject names its file and line (CSV, NDJSON);
//   - a line or record over the limit is one reject, with its size, and
//     the rest reads as without the limit;
//   - a read never hangs (inputs are bounded; a watchdog fails a read
//     that takes minutes) and releases every Arrow buffer it allocated;
//   - a damaged input (Parquet, gzip, zstd) is an error, never a panic or
//     silently different rows.
//
// The seeds are real samples (configs/sample, internal/testkit/sampledata,
// Postgres COPY text, Redshift UNLOAD text); what the fuzzer finds lands in
// testdata/fuzz/FuzzXxx, which plain `go test` runs.

// maxFuzzInput bounds an input: reads are linear, so a hang is a loop.
const maxFuzzInput = 64 << 10

// watchdog panics (a crash the fuzzer keeps, with every goroutine's
// stack) when a read has not ended after d: a reader stuck in a loop.
func watchdog(what string, d time.Duration) (stop func()) {
	timer := time.AfterFunc(d, func() { panic(fmt.Sprintf("%s: still reading after %s: a reader hangs", what, d)) })
	return func() { timer.Stop() }
}

const hangAfter = 30 * time.Second

// lineRef matches a reject's reason that names its file and line.
func lineRef(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + ` line [1-9][0-9]*[:,]`)
}

// fuzzRead is readAll (which checks contiguity and accounting) with a
// watchdog and a checked allocator that must be empty once the reader is
// closed, whatever happened.
func fuzzRead(t *testing.T, in Input, opts Options, ro pipeline.ReadOptions) (*result, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer watchdog(in.Name, hangAfter)()
	res, err := readAll(t, in, opts, ro, mem)
	mem.AssertSize(t, 0)
	return res, err
}

// refLine is one line as lines.Reader splits text: at "\n", a "\r" before
// it cut; a last line without "\n" keeps its "\r".
type refLine struct {
	n    int64
	text []byte
}

func splitRefLines(data []byte) []refLine {
	var out []refLine
	for n := int64(1); len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, refLine{n, data})
			break
		}
		out = append(out, refLine{n, bytes.TrimSuffix(data[:i], []byte{'\r'})})
		data = data[i+1:]
	}
	return out
}

// rowOutcomes maps each row offset of a read to what became of it.
func rowOutcomes(res *result) map[int64]string {
	out := map[int64]string{}
	for i, r := range res.rows {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%q=%q;", k, r[k])
		}
		out[res.offsets[i]] = "row " + b.String()
	}
	for _, r := range res.rejects {
		out[r.Row] = fmt.Sprintf("reject %q %q %q", r.Column, r.Reason, r.Raw)
	}
	return out
}

func compressFuzz(t *testing.T, data []byte, comp string) []byte {
	if comp == None {
		return data
	}
	return compressBytes(t, data, comp)
}

var fuzzComps = []string{None, Gzip, Zstd, None}

// ---- CSV ----

var (
	fuzzQuotes = []rune{'"', '\'', '¦', '`'}
	fuzzDelims = []rune{',', '|', '\t', ';', '§', '¦', ' ', 'x'}
	fuzzNulls  = []string{"", `\N`, "NULL", "-"}
	fuzzBatch  = []int{1, 2, 3, 7, 64, 8192, 5, 2}
)

// csvFuzzOptions turns the fuzzer's flags into options the config
// accepts: quote and delimiter differ; postgres_text is tab-separated.
func csvFuzzOptions(flags uint32) CSVOptions {
	o := CSVOptions{
		Header:       flags&1 != 0,
		PostgresText: flags&2 != 0,
		Quote:        fuzzQuotes[flags>>2&3],
		Delimiter:    fuzzDelims[flags>>4&7],
		Null:         fuzzNulls[flags>>7&3],
	}
	if o.Quote == o.Delimiter {
		o.Quote = '"'
	}
	if o.PostgresText {
		o.Delimiter = '\t'
	}
	return o
}

// refRecord is one record as splitFields makes it of the whole text.
type refRecord struct {
	line, last int64 // its first and last line
	raw        []byte
	closed     bool // its quotes are closed: not cut by the end of the file
	splitErr   bool
	width      int
}

// refCSVRecords groups lines into records: blank lines between records
// are skipped, and a record goes on while splitFields says a quoted field
// is open (postgres_text has no quoting).
func refCSVRecords(data []byte, o CSVOptions) []refRecord {
	c := &csvReader{opts: o, quote: utf8.AppendRune(nil, o.Quote), delim: utf8.AppendRune(nil, o.Delimiter)}
	lines := splitRefLines(data)
	var out []refRecord
	for i := 0; i < len(lines); i++ {
		if len(lines[i].text) == 0 {
			continue
		}
		r := refRecord{line: lines[i].n, last: lines[i].n, raw: append([]byte(nil), lines[i].text...)}
		for {
			complete, err := c.splitFields(r.raw)
			if complete {
				r.closed, r.splitErr, r.width = true, err != nil, len(c.fields)
				break
			}
			if i+1 == len(lines) {
				break
			}
			i++
			r.raw = append(append(r.raw, '\n'), lines[i].text...)
			r.last = lines[i].n
		}
		out = append(out, r)
	}
	return out
}

var csvTooLong = regexp.MustCompile(`^x\.csv line ([0-9]+): the record( \(lines ([0-9]+)-([0-9]+)\))? is ([0-9]+) bytes, over max_line_bytes \(([0-9]+)\): skipped; raw holds its first ([0-9]+) bytes$`)

// FuzzCSV reads delimited text with every option: quote, delimiter, null,
// postgres_text, a header or not, declared column types, a projection,
// compression, a line limit and buffer, a resume offset, a batch size.
// Each read is checked against the records splitFields makes of the whole
// text (their number, where they start, those over the limit) and against
// a plain read of the same text (the rows not over the limit are the same).
func FuzzCSV(f *testing.F) {
	var signups bytes.Buffer
	if err := sampledata.WriteSignupsCSV(&signups, 12, 7); err != nil {
		f.Fatal(err)
	}
	seeds := []struct {
		data  string
		flags uint32
		types uint32
	}{
		{signups.String(), 1, 0},
		{signups.String(), 1 | 1<<11, 4 << 12}, // signed_up_at: timestamp
		// Postgres COPY text: tabs, \N, backslash escapes, no header.
		{"1\tann\\tx\\\\y\t\\N\n2\tl1\\nl2\\101\\x41\t2024-01-02 03:04:05+00\n3\t\\N\t2024-01-02\n", 2 | 1<<7, 0},
		{"1\tann\t2024-01-02T03:04:05Z\t{\"a\":1}\n2\t\\N\t\\N\t[1]\n", 2 | 1<<7 | 1<<11, 1 | 4<<6 | 5<<9},
		// Redshift UNLOAD: pipe-delimited, "" is NULL, header or not.
		{"id|email|amount|ok\n1|a@x.com|12.5|t\n2||7|f\n3|\"q|uoted\"|x|maybe\n", 1 | 1<<4, 0},
		{"1|a@x.com|12.5|t\n2||7|f\n", 1 << 4, 0},
		{"id,amount,ok,at,meta\n1,12.5,true,2024-03-01T10:00:00Z,{\"a\":1}\n2,,f,2024-03-01 10:00:00.5+02,[1]\n", 1 | 1<<11, 1 | 2<<3 | 3<<6 | 4<<9 | 5<<12},
		{"a,b\r\n\"x, \"\"y\"\"\",\"multi\nline\"\r\n\"\",plain\n\"open,3\n4,5\n", 1, 0},
		{"a;b\n'x;y';1\n\n'bad'q;2\n", 1 | 1<<2 | 3<<4, 0},
		{"\ufeffid,id\n1,2\n", 1, 0},
		{"a§b\n¦x§y¦§1\n", 1 | 2<<2 | 4<<4, 0},
	}
	for _, s := range seeds {
		f.Add([]byte(s.data), s.flags, s.types, uint16(0), uint16(0))
		f.Add([]byte(s.data), s.flags|1<<9|1<<16, s.types, uint16(12), uint16(1)) // gzip, a 12-byte limit, small buffer, from row 1
		f.Add([]byte(s.data), s.flags|2<<9|3<<13, s.types, uint16(40), uint16(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, flags, types uint32, maxLine, offset uint16) {
		if len(data) > maxFuzzInput {
			return
		}
		o := csvFuzzOptions(flags)
		opts := DefaultOptions()
		opts.CSV = o
		opts.Compression = None
		in := memInput("x.csv", data)
		ro := pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: fuzzBatch[flags>>13&7]}
		if flags&(1<<11) != 0 { // declared types, on the columns the reader names
			names, _, err := PeekColumns(context.Background(), in, opts)
			if err != nil {
				return
			}
			for i, n := range names {
				if i >= 10 {
					break
				}
				if ty := ColumnTypes[int(types>>(3*i)&7)%len(ColumnTypes)]; ty != "string" || types>>31 != 0 {
					opts.CSV.Columns = append(opts.CSV.Columns, Column{Name: n, Type: ty})
				}
			}
			if !o.Header && len(names) > 0 && types>>30&1 != 0 {
				// Declared columns name the columns of a file without a
				// header; the undeclared ones are strings.
				opts.CSV.Columns = opts.CSV.Columns[:0]
				for i, n := range names {
					opts.CSV.Columns = append(opts.CSV.Columns, Column{Name: n, Type: ColumnTypes[int(types>>(3*(i%10))&7)%len(ColumnTypes)]})
				}
			}
		}
		if flags&(1<<12) != 0 {
			ro.Columns = pipeline.Columns{Names: []string{"column_1", "id", "a", "nope"}}
		}
		plain, plainErr := fuzzRead(t, in, opts, ro)
		if plainErr != nil {
			// Only the header and the declared columns can fail a file.
			if !o.Header && len(opts.CSV.Columns) == 0 {
				t.Fatalf("no header, no declared columns: error %v", plainErr)
			}
			if msg := plainErr.Error(); !strings.HasPrefix(msg, "x.csv") ||
				!strings.Contains(msg, "header") && !strings.Contains(msg, "declared column") {
				t.Fatalf("unexpected error %v", plainErr)
			}
			return
		}
		recs := refCSVRecords(data, o)
		if o.Header && len(recs) > 0 {
			recs = recs[1:]
		}
		if plain.end != int64(len(recs)) {
			t.Fatalf("read %d rows; the text holds %d records", plain.end, len(recs))
		}
		checkCSVRejects(t, plain, recs, DefaultMaxLineBytes)

		// The same text compressed, with a line limit and a small buffer,
		// from an offset.
		test := opts
		comp := fuzzComps[flags>>9&3]
		test.Compression = comp
		if maxLine > 0 {
			test.MaxLineBytes = int(maxLine)
		}
		if flags&(1<<16) != 0 {
			test.lineBuffer = 16
		}
		ro.Offset = int64(offset)
		if ro.Offset > plain.end+1 {
			ro.Offset = plain.end
		}
		tin := memInput("x.csv", compressFuzz(t, data, comp))
		limit := test.lineLimits().max
		res, err := fuzzRead(t, tin, test, ro)
		if hdr := refCSVRecords(data, o); o.Header && len(hdr) > 0 && len(hdr[0].raw) > limit {
			// A header over the limit fails the file.
			if err == nil || !strings.Contains(err.Error(), "x.csv line 1: header: the record is") && !strings.Contains(err.Error(), ": header: the record") {
				t.Fatalf("header of %d bytes over the limit of %d: error %v", len(hdr[0].raw), limit, err)
			}
			return
		}
		if ro.Offset > plain.end {
			if err == nil || !strings.Contains(err.Error(), "past the end") {
				t.Fatalf("offset %d past the end (%d): err %v", ro.Offset, plain.end, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s, limit %d, offset %d: %v (a plain read had none)", comp, test.MaxLineBytes, ro.Offset, err)
		}
		if res.end != plain.end {
			t.Fatalf("ended at %d, a plain read at %d", res.end, plain.end)
		}
		checkCSVRejects(t, res, recs, limit)
		want, got := rowOutcomes(plain), rowOutcomes(res)
		for row := ro.Offset; row < res.end; row++ {
			if len(recs[row].raw) > limit {
				continue // checked above
			}
			if got[row] != want[row] {
				t.Fatalf("row %d (line %d): %s\nplain read: %s", row, recs[row].line, got[row], want[row])
			}
		}
	})
}

// checkCSVRejects checks res against the records of the text: a reject
// names its line; a record over limit is a reject with its lines and
// size; one not closed at the end of the file is a reject; a record of
// another width than the header's is a reject.
func checkCSVRejects(t *testing.T, res *result, recs []refRecord, limit int) {
	t.Helper()
	byRow := map[int64]pipeline.Reject{}
	ref := lineRef("x.csv")
	for _, r := range res.rejects {
		if !ref.MatchString(r.Reason) {
			t.Fatalf("reject of row %d does not name its line: %q", r.Row, r.Reason)
		}
		if r.Raw == "" {
			t.Fatalf("reject of row %d without its text: %q", r.Row, r.Reason)
		}
		byRow[r.Row] = r
	}
	for row := res.start; row < res.end; row++ {
		rec := recs[row]
		r, rejected := byRow[row]
		m := csvTooLong.FindStringSubmatch(r.Reason)
		if len(rec.raw) > limit {
			if !rejected || m == nil {
				t.Fatalf("row %d (lines %d-%d) is %d bytes, over %d: got %q", row, rec.line, rec.last, len(rec.raw), limit, r.Reason)
			}
			first, _ := strconv.ParseInt(m[1], 10, 64)
			size, _ := strconv.Atoi(m[5])
			last := first
			if m[2] != "" {
				last, _ = strconv.ParseInt(m[4], 10, 64)
			}
			if first != rec.line || last != rec.last || size != len(rec.raw) || !bytes.HasPrefix(rec.raw, []byte(r.Raw)) || len(r.Raw) > 200 {
				t.Fatalf("row %d: lines %d-%d, %d bytes: reject %q, raw %q", row, rec.line, rec.last, len(rec.raw), r.Reason, r.Raw)
			}
			continue
		}
		if m != nil {
			t.Fatalf("row %d (%d bytes, under %d) rejected as too long: %q", row, len(rec.raw), limit, r.Reason)
		}
		if !rejected {
			if !rec.closed || rec.splitErr {
				t.Fatalf("row %d (line %d, %q) cannot be split, but was read", row, rec.line, rec.raw)
			}
			continue
		}
		if want := fmt.Sprintf("x.csv line %d", rec.line); !strings.HasPrefix(r.Reason, want) {
			t.Fatalf("row %d starts at line %d: reject %q", row, rec.line, r.Reason)
		}
		if !rec.closed && !strings.Contains(r.Reason, "quoted field not closed before the end of the file") {
			t.Fatalf("row %d (line %d) is not closed: reject %q", row, rec.line, r.Reason)
		}
	}
}

// ---- NDJSON ----

var ndjsonTooLong = regexp.MustCompile(`^x\.ndjson line ([0-9]+): the line is ([0-9]+) bytes, over max_line_bytes \(([0-9]+)\): skipped; raw holds its first ([0-9]+) bytes$`)

// ndjsonRef is what encoding/json makes of a line: ok when the reader
// must take it (one JSON object, valid UTF-8, nested at most
// jsonscan.MaxDepth deep, the top-level numbers of the keys it reads,
// read (nil: all), within float64), its members
// (the last of a repeated key), and whether each member's value is a
// number, string, bool, null or JSON text.
func ndjsonRef(line []byte, read func(key string) bool) (members map[string]json.RawMessage, ok bool) {
	ms, valid, object := ndjsontest.Members(line, jsonscan.MaxDepth)
	if !valid || !object {
		return nil, false
	}
	members = make(map[string]json.RawMessage, len(ms))
	for _, m := range ms {
		if c := m.Value[0]; (c == '-' || c >= '0' && c <= '9') && (read == nil || read(m.Key)) {
			if f, err := strconv.ParseFloat(string(m.Value), 64); err != nil || math.IsInf(f, 0) {
				return nil, false // out of float64's range, even if a later member replaces it
			}
		}
		members[m.Key] = m.Value
	}
	return members, true
}

// FuzzNDJSON reads arbitrary lines (nested objects, invalid UTF-8, huge
// numbers, repeated keys) and checks every read against encoding/json,
// line by line: a line it takes is a row whose every column holds the
// line's value for that key (the last of a repeated key), a line it does
// not take is a reject naming the line, a line over the limit is a reject
// with its size; and the rows are those of the non-blank lines, whatever
// the compression, limit, buffer, offset and batch size.
func FuzzNDJSON(f *testing.F) {
	var archive bytes.Buffer
	if err := sampledata.WriteArchiveNDJSON(&archive, 6, 3); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		archive.String(),
		`{"type":"track","event":"Order Completed","properties":{"total":9.5,"items":[1,2]},"context":{"ip":"1.2.3.4"}}` + "\n" +
			`{"type":"identify","traits":{"plan":"pro"},"timestamp":"2024-01-02T00:00:00Z"}` + "\n",
		`{"i":1,"f":1,"b":true,"m":"x","n":null,"s":"a\"b\u00e9"}` + "\n" + `{"i":-2,"f":2.5,"b":false,"m":3,"n":null,"s":"c"}` + "\n",
		"\n{\"a\":1}\n  \n[1,2]\n{\"a\":2} x\n{\"a\":\n{\"a\":3,}\n{\"a\":1e999}\n{\"a\":4}\r\n{\"a\":\"\xff\"}\n{\"a\xff\":5}\n",
		`{"a":1,"a":2,"k\u0065y":"v","a":null}` + "\n" + `{"a":99999999999999999999,"b":-0,"c":1.5e308,"d":[1e999]}` + "\n",
		`{"":{"":[[[[{"x":"\ud800"}]]]]}}` + "\n" + `{"a":"x"}`,
		`{"a":{"b":{"c":{"d":[true,false,null,"\u2028"]}}},"a.b":1}` + "\r\n",
	} {
		f.Add([]byte(s), uint32(0), uint16(0), uint16(0))
		f.Add([]byte(s), uint32(1|1<<2|1<<4), uint16(24), uint16(1))
		f.Add([]byte(s), uint32(2|3<<5), uint16(100), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, flags uint32, maxLine, offset uint16) {
		if len(data) > maxFuzzInput {
			return
		}
		opts := DefaultOptions()
		comp := fuzzComps[flags&3]
		opts.Compression = comp
		if maxLine > 0 {
			opts.MaxLineBytes = int(maxLine)
		}
		limit := opts.lineLimits().max
		if flags&(1<<2) != 0 {
			opts.lineBuffer = 16
		}
		ro := pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: fuzzBatch[flags>>5&7]}
		var want func(string) bool
		if flags&(1<<4) != 0 {
			names := []string{"a", "type", "properties.total", "k.x"}
			ro.Columns = pipeline.Columns{Names: names}
			want = keyFilter(names)
		}
		var rows []refLine // the non-blank lines
		for _, l := range splitRefLines(data) {
			if !isBlank(l.text) {
				rows = append(rows, l)
			}
		}
		ro.Offset = min(int64(offset), int64(len(rows))+1)
		res, err := fuzzRead(t, memInput("x.ndjson", compressFuzz(t, data, comp)), opts, ro)
		if ro.Offset > int64(len(rows)) {
			if err == nil || !strings.Contains(err.Error(), "past the end") {
				t.Fatalf("offset %d past the end (%d rows): err %v", ro.Offset, len(rows), err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.end != int64(len(rows)) {
			t.Fatalf("read %d rows; the text has %d non-blank lines", res.end, len(rows))
		}
		rejected := map[int64]pipeline.Reject{}
		ref := lineRef("x.ndjson")
		for _, r := range res.rejects {
			if !ref.MatchString(r.Reason) || r.Raw == "" {
				t.Fatalf("reject of row %d: %q (raw %q)", r.Row, r.Reason, r.Raw)
			}
			if !strings.HasPrefix(r.Reason, fmt.Sprintf("x.ndjson line %d:", rows[r.Row].n)) {
				t.Fatalf("row %d is line %d: reject %q", r.Row, rows[r.Row].n, r.Reason)
			}
			rejected[r.Row] = r
		}
		got := map[int64]map[string]string{}
		for i, row := range res.rows {
			got[res.offsets[i]] = row
		}
		for i := ro.Offset; i < res.end; i++ {
			line := rows[i]
			r, isRejected := rejected[i]
			if len(line.text) > limit {
				m := ndjsonTooLong.FindStringSubmatch(r.Reason)
				if !isRejected || m == nil || m[2] != strconv.Itoa(len(line.text)) || !bytes.HasPrefix(line.text, []byte(r.Raw)) {
					t.Fatalf("line %d is %d bytes, over %d: reject %q (raw %q)", line.n, len(line.text), limit, r.Reason, r.Raw)
				}
				continue
			}
			members, ok := ndjsonRef(line.text, want)
			if ok == isRejected {
				t.Fatalf("line %d %q: encoding/json takes it: %v; the reader: %v (%q)", line.n, line.text, ok, !isRejected, r.Reason)
			}
			if isRejected {
				if string(line.text) != r.Raw {
					t.Fatalf("line %d: raw %q", line.n, r.Raw)
				}
				continue
			}
			row := got[i]
			for col, v := range row {
				raw, present := members[col]
				if !present || string(raw) == "null" {
					if v != "(null)" {
						t.Fatalf("line %d %q: column %q = %q, want null", line.n, line.text, col, v)
					}
					continue
				}
				if !sameJSON(t, raw, v) {
					t.Fatalf("line %d %q: column %q = %q, want %s", line.n, line.text, col, v, raw)
				}
			}
			for k, raw := range members {
				if _, ok := row[k]; !ok && string(raw) != "null" && (want == nil || want(k)) {
					t.Fatalf("line %d %q: key %q (%s) is not in the row %v", line.n, line.text, k, raw, row)
				}
			}
		}
	})
}

// sameJSON reports whether a cell as readAll renders it (a string column's
// text, a number's or a bool's ValueStr, a JSON column's text) holds the
// JSON value raw.
func sameJSON(t *testing.T, raw json.RawMessage, cell string) bool {
	var want any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}
	switch w := want.(type) {
	case string:
		if cell == w {
			return true // a string column
		}
	case json.Number:
		if cell == string(w) {
			return true
		}
		wf, err1 := strconv.ParseFloat(string(w), 64)
		cf, err2 := strconv.ParseFloat(cell, 64)
		if err1 == nil && err2 == nil && (wf == cf || math.IsNaN(wf) && math.IsNaN(cf)) {
			return true // a float64 column (ints with floats), or an int64 one
		}
	case bool:
		if cell == strconv.FormatBool(w) {
			return true
		}
	}
	// A JSON column holds the value as written.
	var got any
	dec = json.NewDecoder(strings.NewReader(cell))
	dec.UseNumber()
	if dec.Decode(&got) != nil {
		return false
	}
	return reflect.DeepEqual(got, want)
}

// ---- Parquet ----

// fuzzParquetSeeds are small real Parquet files: the sample orders
// (snappy, dictionaries, several row groups), and one of many types with
// nested columns, no compression or zstd, data pages v1 and v2.
func fuzzParquetSeeds(t testing.TB) [][]byte {
	var out [][]byte
	var orders bytes.Buffer
	if err := sampledata.WriteOrdersParquetRowGroups(&orders, 24, 5, 10); err != nil {
		t.Fatal(err)
	}
	out = append(out, orders.Bytes())
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "n32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "ctx", Type: arrow.StructOf(arrow.Field{Name: "ip", Type: arrow.BinaryTypes.String, Nullable: true}), Nullable: true},
	}, nil)
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[
		{"id":1,"n32":7,"f":1.5,"ok":true,"s":"a","at":"2024-01-01T00:00:00Z","tags":["x","y"],"ctx":{"ip":"1.2.3.4"}},
		{"id":2,"n32":null,"f":null,"ok":null,"s":null,"at":null,"tags":null,"ctx":null},
		{"id":3,"n32":-1,"f":-0.25,"ok":false,"s":"ccc","at":"2024-03-01T10:00:00.5Z","tags":[],"ctx":{"ip":null}},
		{"id":4,"n32":9,"f":1e300,"ok":true,"s":"a","at":"1970-01-01T00:00:00Z","tags":["z"],"ctx":{"ip":"::1"}},
		{"id":5,"n32":0,"f":2,"ok":false,"s":"a","at":"2024-01-01T00:00:00Z","tags":["x"],"ctx":{"ip":"a"}}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	for _, props := range []*parquet.WriterProperties{
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed), parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(3)),
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(true), parquet.WithDataPageVersion(parquet.DataPageV2)),
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Gzip), parquet.WithStats(true)),
	} {
		var buf bytes.Buffer
		w, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// FuzzParquet reads mutated Parquet files (the fuzzer corrupts pages,
// footers, the schema, row counts): a read either fails with an error or
// gives batches that account for their rows and, in all, the footer's
// row count; it never panics or hangs, and releases every buffer, on
// error paths too. A read of one column from an offset gives, where both
// succeed, that column of the rows a full read gave.
func FuzzParquet(f *testing.F) {
	for i, seed := range fuzzParquetSeeds(f) {
		f.Add(seed, uint8(i), uint16(0))
		f.Add(seed, uint8(i+3), uint16(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, flags uint8, offset uint16) {
		if len(data) > 256<<10 {
			return
		}
		in := memInput("x.parquet", data)
		batch := fuzzBatch[flags&7]
		footerRows, footerErr := ParquetRows(bytes.NewReader(data), int64(len(data)))
		if _, _, err := PeekColumns(context.Background(), in, DefaultOptions()); (err == nil) && footerErr != nil {
			t.Fatalf("the columns read, but not the row count: %v", footerErr)
		}
		full, err := fuzzRead(t, in, DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: batch})
		if err != nil {
			return
		}
		if footerErr != nil || full.end != footerRows {
			t.Fatalf("read %d rows; the footer says %d (%v)", full.end, footerRows, footerErr)
		}
		if len(full.rejects) > 0 {
			t.Fatalf("rejects from Parquet: %+v", full.rejects)
		}
		// One column (the first the full read named), from an offset.
		if len(full.schemas) == 0 || full.schemas[0].NumFields() == 0 {
			return
		}
		col := full.schemas[0].Field(int(flags>>3) % full.schemas[0].NumFields()).Name
		off := int64(offset) % (full.end + 1)
		part, err := fuzzRead(t, memInput("x.parquet", data), DefaultOptions(),
			pipeline.ReadOptions{Offset: off, Columns: pipeline.Columns{Names: []string{col}}, BatchRows: batch})
		if err != nil {
			return // a page only this read decodes may be corrupt
		}
		if part.end != full.end {
			t.Fatalf("from %d: ended at %d, a full read at %d", off, part.end, full.end)
		}
		byRow := map[int64]map[string]string{}
		for i, r := range full.rows {
			byRow[full.offsets[i]] = r
		}
		for i, r := range part.rows {
			if want := byRow[part.offsets[i]][col]; r[col] != want {
				t.Fatalf("row %d column %q: %q from %d, %q in a full read", part.offsets[i], col, r[col], off, want)
			}
		}
	})
}

// ---- compression ----

// FuzzDecompress feeds decompress arbitrary bytes (sniffed, and as gzip
// and zstd) and valid gzip and zstd streams of arbitrary text with one
// byte changed or cut short. Reading never panics or hangs (the output
// read is bounded); a damaged stream gives its text or a prefix of it with
// an error, never other bytes without one; and a valid stream gives its
// text exactly.
func FuzzDecompress(f *testing.F) {
	archive, err := os.ReadFile("../../configs/sample/archive.ndjson.gz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(archive[:min(len(archive), 4096)], uint8(0), uint16(0), uint8(0))
	for _, s := range []string{"", "a", `{"a":1}` + "\n" + strings.Repeat("xyz", 100), "id,name\n1,ann\n"} {
		for mode := uint8(0); mode < 6; mode++ {
			f.Add([]byte(s), mode, uint16(len(s)/2), uint8(1))
		}
	}
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, uint8(0), uint16(0), uint8(0))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x00, 0x00}, uint8(0), uint16(0), uint8(0))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, 0x03, 0x35, 0x0c, 'x'}, uint8(2), uint16(0), uint8(0)) // a 1 MB window, an RLE block
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, pos uint16, xor uint8) {
		if len(data) > maxFuzzInput {
			return
		}
		const bound = 16 << 20
		comps := []string{"", Gzip, Zstd}
		if mode%6 < 3 { // arbitrary bytes
			out, _, err := fuzzDecompress(t, data, comps[mode%3], bound)
			if err == nil && mode%3 != 0 && len(data) == 0 && len(out) != 0 {
				t.Fatalf("%q from nothing", out)
			}
			return
		}
		comp := comps[1+mode%2]
		if mode%6 == 5 {
			comp = Zstd
		}
		stream := compressBytes(t, data, comp)
		out, limited, err := fuzzDecompress(t, stream, comp, bound)
		if err != nil || limited || !bytes.Equal(out, data) {
			t.Fatalf("%s of %d bytes: got %d bytes, err %v", comp, len(data), len(out), err)
		}
		// One byte changed, or the stream cut short.
		damaged := bytes.Clone(stream)
		i := int(pos) % (len(damaged) + 1)
		cut := xor == 0
		if cut {
			damaged = damaged[:i]
		} else if i < len(damaged) {
			damaged[i] ^= xor
		} else {
			return
		}
		// Both formats check a checksum of the text at its end (gzip's
		// CRC-32, the zstd frame's XXH64, which klauspost's encoder writes
		// by default), so damaged bytes may come out before the error, but
		// never without one. An empty input is an empty file.
		out, _, err = fuzzDecompress(t, damaged, comp, bound)
		if err == nil && !bytes.Equal(out, data) && !(cut && i == 0 && len(out) == 0) {
			t.Fatalf("%s stream with byte %d %s: %d bytes (%q) without an error, want the %d bytes it held (%q)",
				comp, i, map[bool]string{true: "cut", false: "changed"}[cut], len(out), trim(out), len(data), trim(data))
		}
		if cut && err != nil && !bytes.HasPrefix(data, out) {
			t.Fatalf("%s stream cut at byte %d: %q is not a prefix of its text (%v)", comp, i, trim(out), err)
		}
	})
}

func trim(b []byte) []byte { return b[:min(len(b), 64)] }

// fuzzDecompress decompresses data as Open would, reading at most bound
// bytes (limited says it stopped there). A decoder's memory is bounded by
// the format's window, whatever the stream declares: gzip's 32 KB, and
// 128 MB for zstd, what `zstd -d` takes (a frame header may ask for
// 3.75 TB).
func fuzzDecompress(t *testing.T, data []byte, comp string, bound int64) (out []byte, limited bool, err error) {
	defer watchdog("decompress", hangAfter)()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	defer func() {
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128<<20+uint64(bound)*4+64<<20 {
			t.Fatalf("decompressing %d bytes (%d out) allocated %d MB", len(data), len(out), alloc>>20)
		}
	}()
	rc, err := decompress("x", io.NopCloser(bytes.NewReader(data)), comp)
	if err != nil {
		return nil, false, err
	}
	defer rc.Close()
	out, err = io.ReadAll(io.LimitReader(rc, bound+1))
	if int64(len(out)) > bound {
		return out[:bound], true, err
	}
	return out, false, err
}
