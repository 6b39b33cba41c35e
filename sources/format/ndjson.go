package format

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/internal/lines"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// ndjsonReader reads one JSON object a line. The schema is inferred per
// batch (the union of the batch's top-level keys, in first-seen order), so
// a key that appears late is never lost.
type ndjsonReader struct {
	name   string
	split  string
	rc     io.ReadCloser
	lr     *lines.Reader
	mem    memory.Allocator
	batch  int
	offset int64
	want   func(key string) bool // nil: every key
	next   int64                 // row offset of the next batch
	primed bool                  // rows before offset are skipped
	done   bool

	// Per batch, reused: the lines' bytes, where each ends, line numbers;
	// the columns by key; the rejects, and the split offset of each
	// record row (both handed to the batch).
	data    []byte
	ends    []int
	lines   []int64
	cols    []*ndColumn
	index   map[string]int
	rejects []pipeline.Reject
	rows    []int64
	row     []cell      // the current line's cells until it is known good
	seen    []string    // every key of the batch, wanted or not, in first-seen order
	pool    []*ndColumn // columns of earlier batches, their cell slices reused
	used    int
}

func (n *ndjsonReader) newColumn(name string) *ndColumn {
	if n.used == len(n.pool) {
		n.pool = append(n.pool, &ndColumn{})
	}
	c := n.pool[n.used]
	n.used++
	c.name, c.kinds, c.cells = name, 0, c.cells[:0]
	return c
}

// cell is one top-level value: its column, kind, bytes in data and, for
// numbers, the parsed value (bits of an int64 or a float64).
type cell struct {
	col   int
	rec   int // record row
	kind  jsonscan.Kind
	esc   bool
	start int
	end   int
	bits  uint64
}

type ndColumn struct {
	name  string
	kinds jsonscan.Kind
	cells []cell
}

func newNDJSONReader(name string, rc io.ReadCloser, split string, lim lineLimits, ro pipeline.ReadOptions, mem memory.Allocator) pipeline.RecordReader {
	n := &ndjsonReader{name: name, split: split, rc: rc, lr: lim.reader(name, rc), mem: mem,
		batch: ro.BatchRows, offset: ro.Offset, next: ro.Offset}
	if !ro.Columns.All {
		n.want = keyFilter(ro.Columns.Names)
	}
	return n
}

// keyFilter keeps a top-level key k when k or a path below it ("k.x") is
// asked for: nested objects stay whole in one JSON column.
func keyFilter(names []string) func(string) bool {
	set := make(map[string]bool, len(names))
	for _, c := range names {
		set[c] = true
		if i := strings.IndexByte(c, '.'); i > 0 {
			set[c[:i]] = true
		}
	}
	return func(k string) bool { return set[k] }
}

func (n *ndjsonReader) Close() error { return n.rc.Close() }

func (n *ndjsonReader) Next(ctx context.Context) (*pipeline.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !n.primed {
		n.primed = true
		// Skipping only finds line ends: no JSON is parsed before offset.
		for skipped := int64(0); skipped < n.offset; {
			line, err := n.lr.Next()
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: resume offset %d is past the end of the file (%d rows): the file changed since the checkpoint", n.name, n.offset, skipped)
			}
			if tooLong(err) != nil {
				skipped++ // a row, rejected when it was read
				continue
			}
			if err != nil {
				return nil, err
			}
			if !isBlank(line) {
				skipped++
			}
		}
	}
	if n.done {
		return nil, io.EOF
	}
	n.data, n.ends, n.lines = n.data[:0], n.ends[:0], n.lines[:0]
	n.cols, n.rejects, n.rows = n.cols[:0], nil, nil
	n.used = 0
	n.seen = n.seen[:0]
	if n.index == nil {
		n.index = map[string]int{}
	}
	clear(n.index)
	for len(n.ends) < n.batch {
		line, err := n.lr.Next()
		if errors.Is(err, io.EOF) {
			n.done = true
			break
		}
		tl := tooLong(err)
		if err != nil && tl == nil {
			return nil, err
		}
		if tl == nil && isBlank(line) {
			continue
		}
		off := len(n.data)
		n.data = append(n.data, line...) // nothing of a line too long
		n.ends = append(n.ends, len(n.data))
		n.lines = append(n.lines, n.lr.Line())
		n.add(len(n.ends)-1, off, tl)
		// The record holds a value of every column for every row: lines
		// with keys of their own (ids or dates as keys) end the batch
		// early, so that its arrays stay within maxBatchCells values.
		if len(n.cols)*len(n.rows) >= maxBatchCells {
			break
		}
	}
	if len(n.ends) == 0 {
		return nil, io.EOF
	}
	b, err := n.build()
	if err != nil {
		return nil, err
	}
	n.next = b.End
	return b, nil
}

// add takes the batch's line i, at off in n.data: a reject, or a row
// whose cells join their columns.
func (n *ndjsonReader) add(i, off int, tl *lines.TooLongError) {
	row := n.next + int64(i)
	if tl != nil {
		n.rejects = append(n.rejects, tooLongReject(row, tl, "line"))
		return
	}
	line := n.data[off:]
	if err := n.scanLine(line, off, n.index, &n.cols); err != nil {
		n.rejects = append(n.rejects, pipeline.Reject{
			Row: row, Stage: "source",
			Reason: fmt.Sprintf("%s line %d: %v", n.name, n.lines[i], err),
			Raw:    string(line),
		})
		return
	}
	rec := len(n.rows)
	for _, c := range n.row {
		col := n.cols[c.col]
		c.rec = rec
		col.kinds |= c.kind
		// A key repeated in one object: the last value wins, as in
		// encoding/json.
		if k := len(col.cells); k > 0 && col.cells[k-1].rec == rec {
			col.cells[k-1] = c
		} else {
			col.cells = append(col.cells, c)
		}
	}
	n.rows = append(n.rows, row)
}

// build makes the batch of the lines read.
func (n *ndjsonReader) build() (*pipeline.Batch, error) {
	cols, rows, rejects := n.cols, n.rows, n.rejects
	b := &pipeline.Batch{Split: n.split, Start: n.next, End: n.next + int64(len(n.ends)), Rejects: rejects}
	if len(rows) == 0 {
		return b, nil
	}
	if len(rejects) > 0 {
		b.Rows = rows
	}
	// A key seen only on rejected lines has no cells: no column for it.
	kept := cols[:0]
	for _, c := range cols {
		if len(c.cells) > 0 {
			kept = append(kept, c)
		}
	}
	cols = kept
	fields := make([]arrow.Field, len(cols))
	arrs := make([]arrow.Array, len(cols))
	defer func() {
		for _, a := range arrs {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i, c := range cols {
		a, err := n.column(c, len(rows))
		if err != nil {
			return nil, err
		}
		arrs[i] = a
		fields[i] = arrow.Field{Name: c.name, Type: a.DataType(), Nullable: true}
	}
	// Every key the batch holds, so an error for a missing column can
	// suggest among those not projected too.
	md := pipeline.DataColumnsMetadata(arrow.Metadata{}, n.seen)
	b.Record = array.NewRecord(arrow.NewSchema(fields, &md), arrs, int64(len(rows)))
	return b, nil
}

var errNotObject = errors.New("not a JSON object")

// scanLine checks one line and leaves its wanted top-level values in n.row.
func (n *ndjsonReader) scanLine(line []byte, off int, index map[string]int, cols *[]*ndColumn) error {
	n.row = n.row[:0]
	i := jsonscan.SkipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return errNotObject
	}
	i = jsonscan.SkipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			if i >= len(line) || line[i] != '"' {
				return jsonscan.Expected(line, i, "a key string")
			}
			// Keys and values must be UTF-8: they become Arrow strings and
			// JSON sent on.
			kend, kinfo, err := jsonscan.ScanString(line, i)
			if err != nil {
				return err
			}
			if kinfo&jsonscan.BadUTF8 != 0 {
				return &jsonscan.Error{Off: i, Msg: "invalid UTF-8 in a key"}
			}
			kesc := kinfo&jsonscan.Escaped != 0
			kb := line[i+1 : kend-1]
			i = jsonscan.SkipWS(line, kend)
			if i >= len(line) || line[i] != ':' {
				return jsonscan.Expected(line, i, "':'")
			}
			i = jsonscan.SkipWS(line, i+1)
			vstart := i
			vend, kind, err := jsonscan.Strict.Value(line, i)
			if err != nil {
				return err
			}
			if err := n.keep(line, kb, kesc, vstart, vend, kind, off, index, cols); err != nil {
				return err
			}
			i = jsonscan.SkipWS(line, vend)
			if i < len(line) && line[i] == ',' {
				i = jsonscan.SkipWS(line, i+1)
				continue
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			return jsonscan.Expected(line, i, "',' or '}'")
		}
	}
	if i = jsonscan.SkipWS(line, i); i != len(line) {
		return &jsonscan.Error{Off: i, Msg: "text after the JSON object"}
	}
	return nil
}

func (n *ndjsonReader) keep(line, kb []byte, kesc bool, vstart, vend int, kind jsonscan.Kind, off int, index map[string]int, cols *[]*ndColumn) error {
	c, ok := index[unsafeString(kb)]
	if !ok {
		key := string(kb)
		if kesc {
			key = unescape(kb)
		}
		n.seen = append(n.seen, key)
		if n.want != nil && !n.want(key) {
			index[string(kb)] = -1
			return nil
		}
		c = len(*cols)
		index[string(kb)] = c
		*cols = append(*cols, n.newColumn(key))
	}
	if c < 0 {
		return nil
	}
	v := line[vstart:vend]
	cl := cell{col: c, kind: kind, start: off + vstart, end: off + vend}
	switch kind {
	case jsonscan.String:
		cl.esc = bytes.IndexByte(v[1:len(v)-1], '\\') >= 0
	case jsonscan.Int:
		x, err := strconv.ParseInt(unsafeString(v), 10, 64)
		if err != nil {
			// Too big for int64: a float64, like JavaScript would.
			kind = jsonscan.Float
			cl.kind = jsonscan.Float
		} else {
			cl.bits = uint64(x)
			break
		}
		fallthrough
	case jsonscan.Float:
		f, err := strconv.ParseFloat(unsafeString(v), 64)
		if err != nil || math.IsInf(f, 0) {
			return fmt.Errorf("number %s is out of range", v)
		}
		cl.bits = math.Float64bits(f)
	}
	n.row = append(n.row, cl)
	return nil
}

// unescape decodes the contents of a JSON string already checked valid.
func unescape(inner []byte) string {
	q := make([]byte, 0, len(inner)+2)
	q = append(append(append(q, '"'), inner...), '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return string(inner)
	}
	return s
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// column builds one column of nrec rows from its cells, typed by the kinds
// seen: one scalar kind keeps its type, ints with floats are float64,
// anything else (objects, arrays, a mix) is JSON text.
func (n *ndjsonReader) column(c *ndColumn, nrec int) (arrow.Array, error) {
	kinds := c.kinds &^ jsonscan.Null
	each := func(appendNull func(), appendVal func(cell)) {
		pos := 0
		for r := 0; r < nrec; r++ {
			if pos < len(c.cells) && c.cells[pos].rec == r {
				if cl := c.cells[pos]; cl.kind == jsonscan.Null {
					appendNull()
				} else {
					appendVal(cl)
				}
				pos++
			} else {
				appendNull()
			}
		}
	}
	size := 0
	for _, cl := range c.cells {
		size += cl.end - cl.start
	}
	switch kinds {
	case jsonscan.String:
		b := array.NewStringBuilder(n.mem)
		defer b.Release()
		b.Reserve(nrec)
		b.ReserveData(size)
		each(b.AppendNull, func(cl cell) {
			if cl.esc {
				b.Append(unescape(n.data[cl.start+1 : cl.end-1]))
			} else {
				b.BinaryBuilder.Append(n.data[cl.start+1 : cl.end-1])
			}
		})
		return b.NewArray(), nil
	case jsonscan.Int:
		b := array.NewInt64Builder(n.mem)
		defer b.Release()
		b.Reserve(nrec)
		each(b.AppendNull, func(cl cell) { b.UnsafeAppend(int64(cl.bits)) })
		return b.NewArray(), nil
	case jsonscan.Float, jsonscan.Int | jsonscan.Float:
		b := array.NewFloat64Builder(n.mem)
		defer b.Release()
		b.Reserve(nrec)
		each(b.AppendNull, func(cl cell) {
			if cl.kind == jsonscan.Int {
				b.UnsafeAppend(float64(int64(cl.bits)))
			} else {
				b.UnsafeAppend(math.Float64frombits(cl.bits))
			}
		})
		return b.NewArray(), nil
	case jsonscan.Bool:
		b := array.NewBooleanBuilder(n.mem)
		defer b.Release()
		b.Reserve(nrec)
		each(b.AppendNull, func(cl cell) { b.UnsafeAppend(n.data[cl.start] == 't') })
		return b.NewArray(), nil
	}
	b := record.NewJSONBuilder(n.mem)
	defer b.Release()
	b.Reserve(nrec)
	b.StorageBuilder().(*array.StringBuilder).ReserveData(size)
	each(b.AppendNull, func(cl cell) { record.AppendJSON(b, n.data[cl.start:cl.end]) })
	return b.NewArray(), nil
}
