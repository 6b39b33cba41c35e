package format

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/internal/lines"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// csvReader reads delimited text with its own small parser: it keeps each
// record's raw text (for Rejects), supports any quote character and the
// Postgres COPY text format, and skips rows without building fields.
type csvReader struct {
	name   string
	split  string
	rc     io.ReadCloser
	lr     *lines.Reader
	mem    memory.Allocator
	opts   CSVOptions
	delim  []byte
	quote  []byte
	batch  int
	offset int64
	next   int64
	primed bool
	done   bool

	names []string       // every column in the file
	md    arrow.Metadata // names, as the records' schema metadata (pipeline.DataColumns)
	sel   []int          // file column of each output column
	types []string       // declared type of each output column
	width int

	pending    bool   // the current record is the next row, not yet returned
	pendingBad string // why that record cannot be split, if it cannot
	layouts    []int  // per output column: the timestamp layout that last worked

	// The current record: raw text, its first line, its fields; how one
	// over the limit is followed while it is read past.
	scan    recordScan
	raw     []byte
	rawCut  bool // raw is only the start of a record over the limit
	recLine int64
	fbuf    []byte
	fields  []field
	vals    []value
}

type field struct {
	start, end int
	null       bool
}

type value struct {
	null bool
	i    int64
	f    float64
	s    []byte
}

// newCSVReader takes rc; when it fails, the caller closes rc.
func newCSVReader(name string, rc io.ReadCloser, split string, opts CSVOptions, lim lineLimits, ro pipeline.ReadOptions, mem memory.Allocator) (_ pipeline.RecordReader, err error) {
	if opts.PostgresText {
		opts.Delimiter = '\t'
	}
	if opts.Delimiter == 0 {
		opts.Delimiter = ','
	}
	if opts.Quote == 0 {
		opts.Quote = '"'
	}
	c := &csvReader{name: name, split: split, rc: rc, lr: lim.reader(name, rc), mem: mem, opts: opts,
		delim: utf8.AppendRune(nil, opts.Delimiter), quote: utf8.AppendRune(nil, opts.Quote),
		batch: ro.BatchRows, offset: ro.Offset, next: ro.Offset}
	c.scan = recordScan{quote: c.quote, delim: c.delim}
	if opts.PostgresText {
		c.scan.quote = nil
	}
	c.lr.Skipped = c.scan.feed
	declared := map[string]string{}
	for _, col := range opts.Columns {
		declared[col.Name] = col.Type
	}
	switch {
	case opts.Header:
		bad, err := c.readRecord(false)
		if errors.Is(err, io.EOF) {
			c.done = true // an empty file: no header, no rows
			return c, nil
		}
		if err != nil {
			return nil, err
		}
		if bad != "" {
			return nil, fmt.Errorf("%s line %d: header: %s", name, c.recLine, bad)
		}
		for i, f := range c.fields {
			n := string(c.fbuf[f.start:f.end])
			if i == 0 {
				n = strings.TrimPrefix(n, "\ufeff") // Excel's byte order mark
			}
			if n == "" {
				n = fmt.Sprintf("column_%d", i+1)
			}
			// A second column of one name would be silently unreachable.
			if j := slices.Index(c.names, n); j >= 0 {
				return nil, fmt.Errorf("%s line %d: header: columns %d and %d are both named %q; rename one",
					name, c.recLine, j+1, i+1, n)
			}
			c.names = append(c.names, n)
		}
	case len(opts.Columns) > 0:
		for _, col := range opts.Columns {
			c.names = append(c.names, col.Name)
		}
	default:
		// Neither header nor declared columns: the first row's width
		// names them column_1..N; that row stays pending as row 0.
		bad, err := c.readRecord(false)
		if errors.Is(err, io.EOF) {
			c.done = true
			return c, nil
		}
		if err != nil {
			return nil, err
		}
		c.pending, c.pendingBad = true, bad
		width := len(c.fields)
		if bad != "" && !c.rawCut {
			// A first row that cannot be split (a bad escape or quote)
			// still has its fields: as many columns as it has delimiters
			// outside quotes, plus one, not only those split before the
			// mistake, which would reject every row after it.
			c.scan.start()
			c.scan.feed(c.raw)
			width = c.scan.fields
		}
		for i := range width {
			c.names = append(c.names, fmt.Sprintf("column_%d", i+1))
		}
	}
	if err := c.setColumns(declared, ro.Columns); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *csvReader) setColumns(declared map[string]string, proj pipeline.Columns) error {
	c.width = len(c.names)
	c.md = pipeline.DataColumnsMetadata(arrow.Metadata{}, c.names)
	in := make(map[string]bool, len(c.names))
	for _, n := range c.names {
		in[n] = true
	}
	var missing []string
	for _, col := range c.opts.Columns {
		if !in[col.Name] {
			missing = append(missing, strconv.Quote(col.Name))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: declared column %s not in the file's columns (%s)", c.name, strings.Join(missing, ", "), strings.Join(c.names, ", "))
	}
	var want map[string]bool
	if !proj.All {
		want = make(map[string]bool, len(proj.Names))
		for _, n := range proj.Names {
			want[n] = true
		}
	}
	for i, n := range c.names {
		if want != nil && !want[n] {
			continue
		}
		t := declared[n]
		if t == "" {
			t = "string"
		}
		c.sel = append(c.sel, i)
		c.types = append(c.types, t)
	}
	if len(c.sel) > 0 {
		c.batch = min(c.batch, max(1, maxBatchCells/len(c.sel))) // see maxBatchCells
	}
	return nil
}

func (c *csvReader) Close() error { return c.rc.Close() }

// readRecord reads the next record into c.raw and c.fields. A record that
// cannot be split (a bad or unterminated quote) or is longer than
// max_line_bytes comes back with a reason and counts as a row; io.EOF ends
// the input. A record over the limit is read past, not held: c.raw keeps
// its first bytes. When skipping (rows before the offset), a line that
// cannot hold a quote is a whole record, neither copied nor split.
func (c *csvReader) readRecord(skipping bool) (bad string, err error) {
	var line []byte
	for {
		c.scan.start()
		line, err = c.lr.Next()
		if tl := tooLong(err); tl != nil {
			c.recLine = tl.Line
			return c.readPastRecord(tl.Head, tl.Size)
		}
		if err != nil {
			return "", err
		}
		if len(line) > 0 {
			break
		}
	}
	c.recLine = c.lr.Line()
	if skipping && (c.opts.PostgresText || !bytes.Contains(line, c.quote)) {
		return "", nil
	}
	c.raw, c.rawCut = append(c.raw[:0], line...), false
	for {
		complete, qerr := c.splitFields(c.raw)
		if len(c.raw) > c.lr.Max() {
			// The scan takes over where splitFields stopped: in a quoted
			// field still open, or at the record's end.
			c.scan.state, c.scan.qm, c.scan.dm = inBad, 0, 0
			if !complete {
				c.scan.state = inQuoted
				c.scan.fields = len(c.fields) + 1 // and the quoted one still open
			}
			return c.readPastRecord(c.raw, int64(len(c.raw)))
		}
		if qerr != nil {
			return qerr.Error(), nil
		}
		if complete {
			return "", nil
		}
		c.scan.fields = len(c.fields) + 1
		c.scan.inQuotes()
		line, err = c.lr.Next()
		if errors.Is(err, io.EOF) {
			return "quoted field not closed before the end of the file", nil
		}
		if tl := tooLong(err); tl != nil {
			return c.readPastRecord(c.raw, int64(len(c.raw))+1+tl.Size)
		}
		if err != nil {
			return "", err
		}
		c.raw = append(append(c.raw, '\n'), line...)
	}
}

// readPastRecord reads past the rest of a record over the limit, whose
// lines so far (size bytes, starting with start) c.scan has followed,
// and says why it is rejected; c.raw keeps its first bytes.
func (c *csvReader) readPastRecord(start []byte, size int64) (string, error) {
	first := c.recLine
	for !c.scan.endLine() {
		c.scan.inQuotes()
		line, err := c.lr.Next()
		if errors.Is(err, io.EOF) {
			break // the last row: not closed either, but too long first
		}
		tl := tooLong(err)
		if err != nil && tl == nil {
			return "", err
		}
		size++
		if tl != nil {
			size += tl.Size
		} else {
			c.scan.feed(line)
			size += int64(len(line))
		}
	}
	h := lines.Head(start)
	c.raw, c.rawCut = append(c.raw[:0], h...), true
	c.fields = c.fields[:0]
	for range c.scan.fields { // its width, should it be the first row and name the columns
		c.fields = append(c.fields, field{})
	}
	what := "record"
	if last := c.lr.Line(); last > first {
		what = fmt.Sprintf("record (lines %d-%d)", first, last)
	}
	return tooLongReason(what, size, c.lr.Max(), len(h)), nil
}

// splitFields splits raw into c.fields; complete is false while a quoted
// field is still open at the end of raw.
func (c *csvReader) splitFields(raw []byte) (complete bool, err error) {
	c.fbuf, c.fields = c.fbuf[:0], c.fields[:0]
	if c.opts.PostgresText {
		return true, c.splitCopyText(raw)
	}
	i := 0
	for {
		start := len(c.fbuf)
		if bytes.HasPrefix(raw[i:], c.quote) {
			i += len(c.quote)
			for {
				j := bytes.Index(raw[i:], c.quote)
				if j < 0 {
					return false, nil
				}
				c.fbuf = append(c.fbuf, raw[i:i+j]...)
				i += j + len(c.quote)
				if bytes.HasPrefix(raw[i:], c.quote) { // a doubled quote is one quote
					c.fbuf = append(c.fbuf, c.quote...)
					i += len(c.quote)
					continue
				}
				break
			}
			c.fields = append(c.fields, field{start: start, end: len(c.fbuf)})
			if i == len(raw) {
				return true, nil
			}
			if !bytes.HasPrefix(raw[i:], c.delim) {
				r, _ := utf8.DecodeRune(raw[i:])
				return true, fmt.Errorf("field %d: unexpected %q after a closing quote", len(c.fields), r)
			}
			i += len(c.delim)
			continue
		}
		j := bytes.Index(raw[i:], c.delim)
		if j < 0 {
			j = len(raw) - i
		}
		v := raw[i : i+j]
		c.fbuf = append(c.fbuf, v...)
		c.fields = append(c.fields, field{start: start, end: len(c.fbuf), null: string(v) == c.opts.Null})
		i += j
		if i == len(raw) {
			return true, nil
		}
		i += len(c.delim)
	}
}

// splitCopyText splits a Postgres COPY text line: tab-separated, \N is
// NULL, backslash escapes, no quoting.
func (c *csvReader) splitCopyText(raw []byte) error {
	for {
		j := bytes.IndexByte(raw, '\t')
		v := raw
		if j >= 0 {
			v = raw[:j]
		}
		start := len(c.fbuf)
		null := string(v) == c.opts.Null
		if !null {
			var err error
			if c.fbuf, err = appendCopyUnescaped(c.fbuf, v); err != nil {
				return fmt.Errorf("field %d: %v", len(c.fields)+1, err)
			}
		}
		c.fields = append(c.fields, field{start: start, end: len(c.fbuf), null: null})
		if j < 0 {
			return nil
		}
		raw = raw[j+1:]
	}
}

func appendCopyUnescaped(dst, v []byte) ([]byte, error) {
	for {
		k := bytes.IndexByte(v, '\\')
		if k < 0 {
			return append(dst, v...), nil
		}
		dst = append(dst, v[:k]...)
		v = v[k+1:]
		if len(v) == 0 {
			return dst, errors.New("backslash at the end of the field")
		}
		c := v[0]
		v = v[1:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'v':
			dst = append(dst, '\v')
		case 'x':
			n, val := 0, 0
			for n < 2 && n < len(v) && isHex(v[n]) {
				val = val*16 + hexVal(v[n])
				n++
			}
			if n == 0 {
				dst = append(dst, 'x')
			} else {
				dst = append(dst, byte(val))
				v = v[n:]
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			val, n := int(c-'0'), 0
			for n < 2 && n < len(v) && v[n] >= '0' && v[n] <= '7' {
				val = val*8 + int(v[n]-'0')
				n++
			}
			dst = append(dst, byte(val))
			v = v[n:]
		default: // \\ and any other character stand for themselves
			dst = append(dst, c)
		}
	}
}

func hexVal(c byte) int {
	switch {
	case c >= 'a':
		return int(c-'a') + 10
	case c >= 'A':
		return int(c-'A') + 10
	}
	return int(c - '0')
}

func (c *csvReader) Next(ctx context.Context) (*pipeline.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !c.primed {
		c.primed = true
		if err := c.skip(); err != nil {
			return nil, err
		}
	}
	if c.done {
		return nil, io.EOF
	}
	return c.readBatch()
}

// skip passes the rows before the offset; lines without a quote are
// complete records and are not split at all.
func (c *csvReader) skip() error {
	var skipped int64
	if c.pending && c.offset > 0 {
		skipped++
		c.pending = false
	}
	for ; skipped < c.offset; skipped++ {
		if c.done {
			return fmt.Errorf("%s: resume offset %d is past the end of the file (%d rows): the file changed since the checkpoint", c.name, c.offset, skipped)
		}
		_, err := c.readRecord(true)
		if errors.Is(err, io.EOF) {
			c.done = true
			skipped--
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

func (c *csvReader) newBuilder(t string) array.Builder {
	switch t {
	case "int64":
		return array.NewInt64Builder(c.mem)
	case "float64":
		return array.NewFloat64Builder(c.mem)
	case "bool":
		return array.NewBooleanBuilder(c.mem)
	case "timestamp":
		return array.NewTimestampBuilder(c.mem, tsType)
	case "json":
		return record.NewJSONBuilder(c.mem)
	}
	return array.NewStringBuilder(c.mem)
}

func (c *csvReader) readBatch() (*pipeline.Batch, error) {
	bs := make([]array.Builder, len(c.sel))
	defer func() {
		for _, b := range bs {
			b.Release()
		}
	}()
	for k, t := range c.types {
		bs[k] = c.newBuilder(t)
		bs[k].Reserve(c.batch)
	}
	if c.layouts == nil {
		c.layouts = make([]int, len(c.sel))
	}
	if cap(c.vals) < len(c.sel) {
		c.vals = make([]value, len(c.sel))
	}
	vals := c.vals[:len(c.sel)]
	var (
		rows    []int64
		rejects []pipeline.Reject
		n       int
	)
	reject := func(row int64, col, reason string) {
		rejects = append(rejects, pipeline.Reject{Row: row, Stage: "source", Column: col, Reason: reason, Raw: string(c.raw)})
	}
rowLoop:
	for n < c.batch {
		var bad string
		if c.pending {
			c.pending, bad = false, c.pendingBad
		} else {
			var err error
			bad, err = c.readRecord(false)
			if errors.Is(err, io.EOF) {
				c.done = true
				break
			}
			if err != nil {
				return nil, err
			}
		}
		row := c.next + int64(n)
		n++
		if bad != "" {
			reject(row, "", fmt.Sprintf("%s line %d: %s", c.name, c.recLine, bad))
			continue
		}
		if len(c.fields) != c.width {
			reject(row, "", fmt.Sprintf("%s line %d: expected %d fields, got %d", c.name, c.recLine, c.width, len(c.fields)))
			continue
		}
		for k, fi := range c.sel {
			f := c.fields[fi]
			v, want := c.convert(k, f)
			if want != "" {
				reject(row, c.names[fi], fmt.Sprintf("%s line %d, column %q: expected %s, got %q",
					c.name, c.recLine, c.names[fi], want, c.fbuf[f.start:f.end]))
				continue rowLoop
			}
			vals[k] = v
		}
		for k, b := range bs {
			appendValue(b, c.types[k], vals[k])
		}
		rows = append(rows, row)
	}
	if n == 0 {
		return nil, io.EOF
	}
	batch := &pipeline.Batch{Split: c.split, Start: c.next, End: c.next + int64(n), Rejects: rejects}
	c.next = batch.End
	if len(rows) == 0 {
		return batch, nil
	}
	if len(rejects) > 0 {
		batch.Rows = rows
	}
	fields := make([]arrow.Field, len(bs))
	arrs := make([]arrow.Array, len(bs))
	for k, b := range bs {
		arrs[k] = b.NewArray()
		fields[k] = arrow.Field{Name: c.names[c.sel[k]], Type: arrs[k].DataType(), Nullable: true}
	}
	batch.Record = array.NewRecord(arrow.NewSchema(fields, &c.md), arrs, int64(len(rows)))
	for _, a := range arrs {
		a.Release()
	}
	return batch, nil
}

func appendValue(b array.Builder, t string, v value) {
	if v.null {
		b.AppendNull()
		return
	}
	switch t {
	case "int64":
		b.(*array.Int64Builder).Append(v.i)
	case "float64":
		b.(*array.Float64Builder).Append(v.f)
	case "bool":
		b.(*array.BooleanBuilder).Append(v.i != 0)
	case "timestamp":
		b.(*array.TimestampBuilder).Append(arrow.Timestamp(v.i))
	case "json":
		record.AppendJSON(b.(*array.ExtensionBuilder), v.s)
	default:
		b.(*array.StringBuilder).BinaryBuilder.Append(v.s)
	}
}

// convert parses output column k's field; want names the expected type
// when the text is not one.
func (c *csvReader) convert(k int, f field) (v value, want string) {
	raw := c.fbuf[f.start:f.end]
	t := c.types[k]
	if f.null || (len(raw) == 0 && t != "string") {
		return value{null: true}, ""
	}
	switch t {
	case "int64":
		i, err := strconv.ParseInt(unsafeString(raw), 10, 64)
		if err != nil {
			return v, "int64"
		}
		v.i = i
	case "float64":
		x, err := strconv.ParseFloat(unsafeString(raw), 64)
		if err != nil {
			return v, "float64"
		}
		v.f = x
	case "bool":
		switch strings.ToLower(unsafeString(raw)) {
		case "true", "t", "1", "yes", "y":
			v.i = 1
		case "false", "f", "0", "no", "n":
		default:
			return v, "bool"
		}
	case "timestamp":
		ts, ok := c.parseTime(k, unsafeString(raw))
		if !ok {
			return v, "a timestamp (RFC 3339 or 2006-01-02 15:04:05[.999999][+07])"
		}
		v.i = ts
	case "json":
		if _, err := jsonscan.Strict.Valid(raw); err != nil {
			return v, "JSON"
		}
		v.s = raw
	default:
		if !utf8.Valid(raw) {
			return v, "UTF-8 text"
		}
		v.s = raw
	}
	return v, ""
}

// Timestamp layouts; a zone-less time is UTC.
var tsLayouts = []string{
	time.RFC3339, // fractional seconds are accepted too
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05Z07",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

// parseTime returns microseconds since the epoch, trying first the layout
// that worked last in this column.
func (c *csvReader) parseTime(k int, s string) (int64, bool) {
	last := c.layouts[k]
	if t, err := time.Parse(tsLayouts[last], s); err == nil {
		return t.UnixMicro(), true
	}
	for i, l := range tsLayouts {
		if i == last {
			continue
		}
		if t, err := time.Parse(l, s); err == nil {
			c.layouts[k] = i
			return t.UnixMicro(), true
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
