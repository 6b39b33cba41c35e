package format

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

// An NDJSON line over max_line_bytes is one reject naming the file, the
// line and its size, with the line's first bytes as its raw text; the
// lines around it are read, resuming counts it as a row, and it costs the
// same whatever the compression.
func TestNDJSONLineTooLong(t *testing.T) {
	long := `{"big":"` + strings.Repeat("é", 300) + `"}` // 610 bytes
	data := `{"a":1}` + "\n\n" + long + "\r\n" + `{"a":2}` + "\n" + long + `,` + "\n" + `{"a":3}`
	wantRaw := `{"big":"` + strings.Repeat("é", 96) // 200 bytes: a "é" is not cut in two
	for _, comp := range []string{None, Gzip, Zstd} {
		for _, off := range []int64{0, 1, 2, 3, 4, 5} {
			t.Run(fmt.Sprint(comp, "/", off), func(t *testing.T) {
				opts := DefaultOptions()
				opts.MaxLineBytes = 100
				opts.lineBuffer = 16
				res, err := readAll(t, memInput("x.ndjson"+compExt[comp], compressBytes(t, []byte(data), comp)), opts,
					pipeline.ReadOptions{Offset: off, Columns: pipeline.AllColumns, BatchRows: 2}, arrowtest.CheckedMem(t))
				if err != nil {
					t.Fatal(err)
				}
				all := []string{"a=1", "", "a=2", "", "a=3"}
				var want []string
				for _, w := range all[off:] {
					if w != "" {
						want = append(want, w)
					}
				}
				var rejects []string
				for _, r := range []struct{ row, line, size int64 }{{1, 3, 610}, {3, 5, 611}} {
					if r.row >= off {
						rejects = append(rejects, fmt.Sprintf("x.ndjson%s line %d: the line is %d bytes, over max_line_bytes (100): skipped; raw holds its first 200 bytes", compExt[comp], r.line, r.size))
					}
				}
				checkRows(t, res, want, rejects)
				for _, r := range res.rejects {
					if r.Raw != wantRaw {
						t.Errorf("raw %q", r.Raw)
					}
				}
				if res.end != 5 {
					t.Errorf("end %d", res.end)
				}
			})
		}
	}
}

// A CSV record over max_line_bytes, one line or several (a quoted field
// across lines), is one reject, read past by following its quotes; the
// records after it are read, also when resuming past it.
func TestCSVRecordTooLong(t *testing.T) {
	x := strings.Repeat("x", 150)
	tests := []struct {
		name    string
		data    string
		opts    func(*CSVOptions)
		want    []string
		rejects []string
		err     string
	}{
		{name: "one line", data: "a,b\n1,2\n" + x + ",3\n4,5\n",
			want:    []string{"a=1;b=2", "a=4;b=5"},
			rejects: []string{"x.csv line 3: the record is 152 bytes, over max_line_bytes (100): skipped; raw holds its first 152 bytes"}},
		{name: "lines of a quoted field", data: "a,b\n1,\"" + x[:60] + "\n" + x[:60] + "\n\"\"" + x + ",\"\"\nend\",2\n4,5\n",
			want:    []string{"a=4;b=5"},
			rejects: []string{"x.csv line 2: the record (lines 2-5) is 287 bytes, over max_line_bytes (100): skipped; raw holds its first 124 bytes"}},
		{name: "a long line opens a quote", data: "a,b\n1,\"" + x + "\n,\",\"x\"\"\n\"\n4,5\n",
			want:    []string{"a=4;b=5"},
			rejects: []string{"x.csv line 2: the record (lines 2-4) is 163 bytes"}},
		{name: "a long line closes a quote", data: "a,b\n1,\"open\n" + x + "\",2\n4,5\n",
			want:    []string{"a=4;b=5"},
			rejects: []string{"x.csv line 2: the record (lines 2-3) is 161 bytes"}},
		{name: "not closed at the end", data: "a,b\n1,2\n3,\"" + x + "\n4,5\n",
			want:    []string{"a=1;b=2"},
			rejects: []string{"x.csv line 3: the record (lines 3-4) is 157 bytes"}},
		{name: "postgres text", data: "1\t" + x + "\\\n2\tb\n",
			opts:    func(o *CSVOptions) { *o = CSVOptions{PostgresText: true, Null: `\N`} },
			want:    []string{"column_1=2;column_2=b"},
			rejects: []string{"x.csv line 1: the record is 153 bytes"}},
		{name: "first row names the columns", data: x + ",1,2\n3,4,5\n6,7\n",
			opts:    func(o *CSVOptions) { o.Header = false },
			want:    []string{"column_1=3;column_2=4;column_3=5"},
			rejects: []string{"x.csv line 1: the record is 154 bytes", "x.csv line 3: expected 3 fields, got 2"}},
		{name: "header", data: x + ",b\n1,2\n", err: "x.csv line 1: header: the record is 152 bytes, over max_line_bytes (100)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.MaxLineBytes = 100
			opts.lineBuffer = 16
			if tc.opts != nil {
				tc.opts(&opts.CSV)
			}
			ro := pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 2}
			res, err := readAll(t, memInput("x.csv", []byte(tc.data)), opts, ro, arrowtest.CheckedMem(t))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, res, tc.want, tc.rejects)
			// Resuming at each row gives the rest of the same rows.
			for off := int64(1); off <= res.end; off++ {
				ro.Offset = off
				r2, err := readAll(t, memInput("x.csv", []byte(tc.data)), opts, ro, arrowtest.CheckedMem(t))
				if err != nil || r2.end != res.end {
					t.Fatalf("offset %d: end %d, err %v; want end %d", off, r2.end, err, res.end)
				}
				for i, row := range r2.offsets {
					j := indexOf(res.offsets, row)
					if j < 0 || fmt.Sprint(r2.rows[i]) != fmt.Sprint(res.rows[j]) {
						t.Fatalf("offset %d: row %d is %v", off, row, r2.rows[i])
					}
				}
			}
		})
	}
}

func indexOf(s []int64, v int64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// hugeLineInput is an NDJSON input of three lines whose second is a JSON
// object of size bytes, generated as it is read (never held), compressed
// on the fly when comp says so.
func hugeLineInput(t testing.TB, name string, size int, comp string) Input {
	body := func() io.Reader {
		pad := size - len(`{"blob":""}`)
		return io.MultiReader(
			strings.NewReader(`{"n":1,"s":"first"}`+"\n"+`{"blob":"`),
			io.LimitReader(repeatReader('x'), int64(pad)),
			strings.NewReader(`"}`+"\n"+`{"n":3,"s":"third"}`+"\n"))
	}
	return Input{Name: name, Open: func(context.Context) (io.ReadCloser, error) {
		if comp == None {
			return io.NopCloser(body()), nil
		}
		pr, pw := io.Pipe()
		go func() {
			var zw io.WriteCloser
			if comp == Gzip {
				zw = newGzipWriter(pw)
			} else {
				zw = newZstdWriter(t, pw)
			}
			_, err := io.Copy(zw, body())
			if err == nil {
				err = zw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	}}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// A 150 MB line between two good ones: the good lines are read, the big
// one is one reject (its line, its size, its first 200 bytes), and it is
// streamed past, not held: the whole read allocates under 100 MB, so the
// heap never grows by as much (TotalAlloc bounds it), against the 150 MB
// it would take to hold the line, or the 64 MB cap that used to fail the
// file.
//
// Slow under the race detector: scripts/test.sh runs it with the other
// slow tests.
func TestNDJSONHugeLineIsOneReject(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 300 MB; run without -short")
	}
	const size = 150 << 20
	for _, comp := range []string{None, Gzip} {
		t.Run(comp, func(t *testing.T) {
			name := "events.ndjson" + compExt[comp]
			in := hugeLineInput(t, name, size, comp)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			peak := peakHeap(before.HeapAlloc)
			res, err := readAll(t, in, DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
			growth := peak()
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, res, []string{"n=1;s=first", "n=3;s=third"},
				[]string{fmt.Sprintf("%s line 2: the line is %d bytes, over max_line_bytes (1048576): skipped; raw holds its first 200 bytes", name, size)})
			if r := res.rejects[0]; r.Row != 1 || r.Raw != `{"blob":"`+strings.Repeat("x", 191) {
				t.Errorf("reject row %d raw %q", r.Row, r.Raw)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: allocated %.1f MB in all, heap grew by at most %.1f MB (sampled)", comp, float64(alloc)/(1<<20), float64(growth)/(1<<20))
			if alloc > 100<<20 {
				t.Errorf("reading past a %d MB line allocated %d MB", size>>20, alloc>>20)
			}
		})
	}
}

// peakHeap samples the live heap every millisecond until the returned
// function is called, which returns its largest growth over base.
func peakHeap(base uint64) func() uint64 {
	done := make(chan uint64)
	stop := make(chan struct{})
	go func() {
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak {
				peak = ms.HeapAlloc - base
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-done }
}

// The same for a CSV record: a quoted field of 150 MB across lines is
// followed quote by quote while it is read past.
func TestCSVHugeRecordIsOneReject(t *testing.T) {
	const size = 150 << 20
	body := io.MultiReader(strings.NewReader("id,note\n1,first\n2,\""),
		io.LimitReader(&linesOf{line: strings.Repeat("y", 999) + "\n"}, size),
		strings.NewReader("\"\n3,third\n"))
	in := Input{Name: "notes.csv", Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(body), nil }}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := readAll(t, in, DefaultOptions(), pipeline.ReadOptions{Columns: pipeline.AllColumns}, arrowtest.CheckedMem(t))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, res, []string{"id=1;note=first", "id=3;note=third"},
		[]string{fmt.Sprintf("notes.csv line 3: the record (lines 3-%d) is %d bytes, over max_line_bytes (1048576)", 3+size/1000, size+4)})
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 100<<20 {
		t.Errorf("reading past a %d MB record allocated %d MB", size>>20, alloc>>20)
	}
}

// linesOf repeats line.
type linesOf struct {
	line string
	off  int
}

func (l *linesOf) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.line[l.off:])
		n += c
		l.off = (l.off + c) % len(l.line)
	}
	return n, nil
}

// A file of kilobytes makes batches of megabytes, not gigabytes: a CSV
// header of 20,000 columns (the fuzzer found one of 30,000: 2.2 GB allocated for 60
// KB) gets batches of maxBatchCells values, and so do NDJSON lines that
// each bring keys of their own.
//
// Slow under the race detector: scripts/test.sh runs it with the other
// slow tests.
func TestWideInputsBoundBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100 batches of thousands of columns; run without -short")
	}
	const width = 20000
	hdr := strings.Repeat(",", width-1)
	csvData := hdr + "\n" + strings.Repeat(hdr+"\n", 60)
	var nd strings.Builder
	for i := range 8192 {
		fmt.Fprintf(&nd, "{\"k%d\":%d,\"a\":\"x\"}\n", i, i)
	}
	for _, tc := range []struct {
		name, data   string
		rows, batchN int
	}{
		{"wide.csv", csvData, 60, maxBatchCells / width},
		{"keys.ndjson", nd.String(), 8192, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			mem := arrowtest.CheckedMem(t)
			rr, err := Open(context.Background(), memInput(tc.name, []byte(tc.data)), tc.name, DefaultOptions(),
				pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192}, mem)
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Close()
			var rows, batches int64
			for {
				b, err := rr.Next(context.Background())
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				cells := b.NumRows() * int64(b.Record.NumCols())
				if cells > maxBatchCells+int64(b.Record.NumCols()) {
					t.Fatalf("a batch of %d rows and %d columns", b.NumRows(), b.Record.NumCols())
				}
				if tc.batchN > 0 && b.NumRows() > int64(tc.batchN) {
					t.Fatalf("a batch of %d rows", b.NumRows())
				}
				rows += b.NumRows()
				batches++
				b.Release()
			}
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d rows in %d batches, %d MB allocated", rows, batches, alloc>>20)
			if rows != int64(tc.rows) || batches < 2 {
				t.Fatalf("%d rows in %d batches", rows, batches)
			}
			if alloc > 400<<20 {
				t.Errorf("%d MB allocated for %d KB", alloc>>20, len(tc.data)>>10)
			}
		})
	}
}
