package message

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/backfillhq/backfill/internal/jsonscan"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/backfillhq/backfill/pipeline/record"
)

// writer encodes one column's values. It is chosen once per schema and
// bound to each record's array, so the per-row work is a type-specific
// append with no allocation.
type writer interface {
	bind(a arrow.Array)
	null(i int) bool
	// write appends row i's value (not null) as JSON. On a value JSON
	// cannot carry it records why in e and returns false.
	write(e *Encoder, dst []byte, i int) ([]byte, bool)
}

// texter is a writer whose values are strings (or can be read as one).
type texter interface {
	text(i int) string
}

// asTexter is w as a texter when its values are strings. A dictionary
// has a text method whatever its values, but only a dictionary of strings
// has a string to give: one of binary values or numbers is not a string.
func asTexter(w writer) (texter, bool) {
	if d, ok := w.(*dictW); ok && d.str == nil {
		return nil, false
	}
	t, ok := w.(texter)
	return t, ok
}

// nulls reads an array's validity bitmap without an interface call.
type nulls struct {
	bits []byte
	off  int
	col  string // column name, for reasons
}

func (n *nulls) bindNulls(a arrow.Array) {
	n.bits, n.off = nil, 0
	if a.NullN() > 0 {
		n.bits, n.off = a.NullBitmapBytes(), a.Data().Offset()
	}
}

func (n *nulls) null(i int) bool { return n.bits != nil && !bitutil.BitIsSet(n.bits, n.off+i) }

type boolW struct {
	nulls
	a *array.Boolean
}

func (w *boolW) bind(a arrow.Array) { w.bindNulls(a); w.a = a.(*array.Boolean) }
func (w *boolW) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	if w.a.Value(i) {
		return append(dst, "true"...), true
	}
	return append(dst, "false"...), true
}

type signed interface {
	~int8 | ~int16 | ~int32 | ~int64
}
type unsigned interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

type intW[T signed] struct {
	nulls
	v []T
}

func (w *intW[T]) bind(a arrow.Array) {
	w.bindNulls(a)
	w.v = arrow.GetValues[T](a.Data(), 1)
}
func (w *intW[T]) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	return strconv.AppendInt(dst, int64(w.v[i]), 10), true
}
func (w *intW[T]) appendDecimal(dst []byte, i int) []byte {
	return strconv.AppendInt(dst, int64(w.v[i]), 10)
}

type uintW[T unsigned] struct {
	nulls
	v []T
}

func (w *uintW[T]) bind(a arrow.Array) {
	w.bindNulls(a)
	w.v = arrow.GetValues[T](a.Data(), 1)
}
func (w *uintW[T]) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	return strconv.AppendUint(dst, uint64(w.v[i]), 10), true
}
func (w *uintW[T]) appendDecimal(dst []byte, i int) []byte {
	return strconv.AppendUint(dst, uint64(w.v[i]), 10)
}

// decimalAppender is an integer writer that ids can quote.
type decimalAppender interface {
	appendDecimal(dst []byte, i int) []byte
}

type floatW struct {
	nulls
	f64  []float64
	f32  []float32
	half *array.Float16
}

func (w *floatW) bind(a arrow.Array) {
	w.bindNulls(a)
	switch a := a.(type) {
	case *array.Float64:
		w.f64 = a.Float64Values()
	case *array.Float32:
		w.f32 = a.Float32Values()
	case *array.Float16:
		w.half = a
	}
}

func (w *floatW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	var f float64
	bits := 64
	switch {
	case w.f64 != nil:
		f = w.f64[i]
	case w.f32 != nil:
		f, bits = float64(w.f32[i]), 32
	default:
		f, bits = float64(w.half.Value(i).Float32()), 32
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		e.fail(w.col, fmt.Sprintf("%s is %v, which JSON cannot carry", w.col, f))
		return dst, false
	}
	return appendFloat(dst, f, bits), true
}

// appendFloat formats like encoding/json: shortest repr, exponent only for
// very small or large magnitudes.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if bits == 64 {
		if out, ok := appendCents(dst, f); ok {
			return out
		}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendCents writes f when it is an amount with at most two decimals
// (prices, revenue: most float columns of events), for which strconv's
// shortest-representation search is most of the cost of a float. The
// digits of c/100 are f's shortest representation when c/100 == f: the
// decimal parses to the double nearest c/100, which is f, and below 1e13
// f's rounding interval (at most 2^-9 wide) holds no other decimal with
// two digits or fewer after the point.
func appendCents(dst []byte, f float64) ([]byte, bool) {
	if !(f > -1e13 && f < 1e13) || f == 0 {
		return dst, false // NaN, large, or a zero whose sign must show
	}
	c := math.Round(f * 100)
	if c/100 != f {
		return dst, false
	}
	n := int64(c)
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	dst = strconv.AppendInt(dst, n/100, 10)
	if r := n % 100; r != 0 {
		dst = append(dst, '.', byte('0'+r/10))
		if r%10 != 0 {
			dst = append(dst, byte('0'+r%10))
		}
	}
	return dst, true
}

// stringW writes utf8, large_utf8 and string_view columns.
type stringW struct {
	nulls
	a array.StringLike
	// For utf8 (the common case) the offsets and data buffer themselves:
	// the encoder's string step reads a row with two loads and a slice, no
	// call and no walk through the array's Data.
	offs []int32 // offsets of the array's rows (its slice offset applied)
	vals []byte  // the whole data buffer
	fast bool
	// clean: no row of this batch needs escaping, checked once for the
	// whole column, so each row is copied between quotes as it is.
	clean bool
}

func (w *stringW) bind(a arrow.Array) {
	w.bindNulls(a)
	w.a = a.(array.StringLike)
	w.offs, w.vals, w.fast, w.clean = nil, nil, false, false
	if s, ok := a.(*array.String); ok {
		w.offs, w.fast = s.ValueOffsets(), true
		if bufs := s.Data().Buffers(); len(bufs) > 2 && bufs[2] != nil {
			w.vals = bufs[2].Bytes()
		}
		if n := len(w.offs); n > 0 && int(w.offs[n-1]) <= len(w.vals) && w.offs[0] <= w.offs[n-1] {
			w.clean = allSafe(b2s(w.vals[w.offs[0]:w.offs[n-1]]))
		}
	}
}
func (w *stringW) text(i int) string {
	if w.fast {
		return b2s(w.vals[w.offs[i]:w.offs[i+1]])
	}
	return w.a.Value(i)
}
func (w *stringW) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	return w.appendText(dst, i), true
}

// appendText appends row i as a JSON string.
func (w *stringW) appendText(dst []byte, i int) []byte {
	return appendQuoted(dst, w.text(i), w.clean)
}

// binaryW writes binary columns as base64 strings, as encoding/json does.
type binaryW struct {
	nulls
	a interface{ Value(int) []byte }
}

func (w *binaryW) bind(a arrow.Array) {
	w.bindNulls(a)
	w.a = a.(interface{ Value(int) []byte })
}
func (w *binaryW) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, w.a.Value(i))
	return append(dst, '"'), true
}

// timeW writes timestamps and dates as RFC 3339 UTC with milliseconds.
type timeW struct {
	nulls
	ts   []arrow.Timestamp
	d32  []arrow.Date32
	d64  []arrow.Date64
	unit arrow.TimeUnit

	day   int64  // the day date holds, when dayOK
	date  []byte // "YYYY-MM-DDT" of day
	dayOK bool
}

func (w *timeW) bind(a arrow.Array) {
	w.bindNulls(a)
	switch a := a.(type) {
	case *array.Timestamp:
		w.ts = a.TimestampValues()
		w.unit = a.DataType().(*arrow.TimestampType).Unit
	case *array.Date32:
		w.d32 = a.Date32Values()
	case *array.Date64:
		w.d64 = a.Date64Values()
	}
}

func (w *timeW) millis(i int) int64 {
	switch {
	case w.ts != nil:
		v := int64(w.ts[i])
		switch w.unit {
		case arrow.Second:
			return v * 1000
		case arrow.Microsecond:
			return floorDiv(v, 1000)
		case arrow.Nanosecond:
			return floorDiv(v, 1000000)
		}
		return v
	case w.d32 != nil:
		return int64(w.d32[i]) * 86400000
	}
	return int64(w.d64[i])
}

func (w *timeW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	ms := w.millis(i)
	if w.ts != nil && w.unit == arrow.Second && (ms/1000 != int64(w.ts[i])) {
		e.fail(w.col, fmt.Sprintf("%s is out of range for a timestamp", w.col))
		return dst, false
	}
	return w.appendMillis(e, dst, ms)
}

// appendMillis writes ms since 1970 as a quoted RFC 3339 UTC time with
// milliseconds, or fails the row outside years 0000-9999.
func (w *timeW) appendMillis(e *Encoder, dst []byte, ms int64) ([]byte, bool) {
	dst = append(dst, '"')
	// Rows of a batch mostly share a day: reuse its "YYYY-MM-DDT" instead
	// of converting days to a civil date per row.
	days := floorDiv(ms, 86400000)
	if !w.dayOK || days != w.day {
		var ok bool
		if w.date, ok = appendDate(w.date[:0], days); !ok {
			e.fail(w.col, fmt.Sprintf("%s is outside years 0000-9999 (%d ms since 1970)", w.col, ms))
			return dst, false
		}
		w.day, w.dayOK = days, true
	}
	dst = append(dst, w.date...)
	dst = appendClock(dst, ms-days*86400000)
	return append(dst, '"'), true
}

// timeTextW writes the timestamp field from a text column. RFC 3339 text
// is written as UTC with milliseconds, like an Arrow timestamp; other text
// rejects the row. Sent as it is, text Segment cannot parse would make it
// take the time it received the message: the event would move to "now".
// An empty text counts as absent.
type timeTextW struct {
	inner writer
	t     texter
	out   timeW // writes the time, with its day cache
}

func newTimeTextW(inner writer, col string) *timeTextW {
	t, _ := asTexter(inner)
	return &timeTextW{inner: inner, t: t, out: timeW{nulls: nulls{col: col}}}
}

func (w *timeTextW) bind(a arrow.Array) { w.inner.bind(a) }
func (w *timeTextW) null(i int) bool    { return w.inner.null(i) || w.t.text(i) == "" }
func (w *timeTextW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	s := w.t.text(i)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		e.fail(w.out.col, fmt.Sprintf("%s %q is not an RFC 3339 time (2024-03-01T12:00:00Z); "+
			"a timestamp transform reads other forms (no zone, a space, unix times, Go layouts)", w.out.col, s))
		return dst, false
	}
	return w.out.appendMillis(e, dst, t.UnixMilli())
}

// jsonW splices JSON texts, validated (a broken text would fail a whole
// request) and put on one line.
type jsonW struct {
	nulls
	s   *array.String
	obj bool // the value must be an object (properties, traits, ...)
	tmp []byte
}

func (w *jsonW) bind(a arrow.Array) {
	w.bindNulls(a)
	w.s = a.(array.ExtensionArray).Storage().(*array.String)
}

// null also treats an empty text and the JSON null as absent.
func (w *jsonW) null(i int) bool {
	if w.nulls.null(i) {
		return true
	}
	v := w.s.Value(i)
	return len(v) == 0 || v == "null"
}

// value returns row i's JSON text validated, trimmed and on one line.
func (w *jsonW) value(e *Encoder, i int) ([]byte, bool) {
	raw := unsafeBytes(w.s.Value(i))
	v, err := jsonscan.Strict.Valid(raw)
	if err != nil {
		e.fail(w.col, fmt.Sprintf("%s holds invalid JSON: %v", w.col, err))
		return nil, false
	}
	if hasLineBreak(v) {
		w.tmp = appendCompact(w.tmp[:0], v)
		v = w.tmp
	}
	return v, true
}

func (w *jsonW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	v, ok := w.value(e, i)
	if !ok {
		return dst, false
	}
	if w.obj && v[0] != '{' {
		e.fail(w.col, fmt.Sprintf("%s holds %s, not an object", w.col, jsonscan.Describe(v)))
		return dst, false
	}
	return append(dst, v...), true
}

// structW writes a struct as an object, leaving out null fields.
type structW struct {
	nulls
	keys   [][]byte // `"name":`
	fields []writer
}

func (w *structW) bind(a arrow.Array) {
	w.bindNulls(a)
	s := a.(*array.Struct)
	for j, f := range w.fields {
		f.bind(s.Field(j))
	}
}
func (w *structW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	dst = append(dst, '{')
	first := true
	for j, f := range w.fields {
		if f.null(i) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, w.keys[j]...)
		var ok bool
		if dst, ok = f.write(e, dst, i); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// listW writes list, large_list and fixed_size_list as arrays; null items
// are written as null (dropping them would shift positions).
type listW struct {
	nulls
	a    interface{ ValueOffsets(int) (int64, int64) }
	elem writer
}

func (w *listW) bind(a arrow.Array) {
	w.bindNulls(a)
	w.a = a.(interface{ ValueOffsets(int) (int64, int64) })
	w.elem.bind(a.(array.ListLike).ListValues())
}
func (w *listW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	start, end := w.a.ValueOffsets(i)
	dst = append(dst, '[')
	for j := int(start); j < int(end); j++ {
		if j > int(start) {
			dst = append(dst, ',')
		}
		if w.elem.null(j) {
			dst = append(dst, "null"...)
			continue
		}
		var ok bool
		if dst, ok = w.elem.write(e, dst, j); !ok {
			return dst, false
		}
	}
	return append(dst, ']'), true
}

// mapW writes a map as an object; keys that are not strings are written
// as their JSON text in a string ({"1": ...}).
type mapW struct {
	nulls
	a          *array.Map
	keys, vals writer
	tmp        []byte
}

func (w *mapW) bind(a arrow.Array) {
	w.bindNulls(a)
	w.a = a.(*array.Map)
	w.keys.bind(w.a.Keys())
	w.vals.bind(w.a.Items())
}
func (w *mapW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	start, end := w.a.ValueOffsets(i)
	dst = append(dst, '{')
	first := true
	for j := int(start); j < int(end); j++ {
		if w.vals.null(j) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if t, ok := asTexter(w.keys); ok {
			dst = appendString(dst, t.text(j))
		} else {
			var ok bool
			if w.tmp, ok = w.keys.write(e, w.tmp[:0], j); !ok {
				return dst, false
			}
			dst = appendString(dst, b2s(w.tmp))
		}
		dst = append(dst, ':')
		var ok bool
		if dst, ok = w.vals.write(e, dst, j); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// dictW writes a dictionary-encoded column through its dictionary's
// writer. A string dictionary (what the Parquet source reads a repetitive
// column as) has each value it uses escaped once per batch, then copied
// per row: no escape scan and no value lookup through the dictionary.
type dictW struct {
	nulls
	d     *array.Dictionary
	inner writer
	str   *stringW // inner, for a string dictionary; nil otherwise
	idx32 []int32  // the indices when they are int32 (pqarrow's type)
	cache bool     // str, idx32, and a dictionary at most ~4x the batch: values are cached
	enc   []byte   // the JSON of the values written so far this batch
	spans []span   // per dictionary value: its JSON in enc, or end 0
}

// span is a cached value's JSON in enc; end is 0 until it is cached, and
// -1 for a null value.
type span struct{ start, end int }

func newDictW(n nulls, valueType arrow.DataType, col string) *dictW {
	w := &dictW{nulls: n, inner: newWriter(valueType, col)}
	w.str, _ = w.inner.(*stringW)
	return w
}

func (w *dictW) bind(a arrow.Array) {
	w.bindNulls(a)
	w.d = a.(*array.Dictionary)
	dict := w.d.Dictionary()
	w.inner.bind(dict)
	w.idx32 = nil
	if ix, ok := w.d.Indices().(*array.Int32); ok {
		w.idx32 = ix.Int32Values()
	}
	// A dictionary much larger than the batch would cost more to clear
	// than caching saves.
	w.cache = w.str != nil && w.idx32 != nil && dict.Len() <= 4*a.Len()+64
	if w.cache {
		if cap(w.spans) < dict.Len() {
			w.spans = make([]span, dict.Len())
		}
		w.spans = w.spans[:dict.Len()]
		clear(w.spans)
		w.enc = w.enc[:0]
	}
}
func (w *dictW) key(i int) int {
	if w.idx32 != nil {
		return int(w.idx32[i])
	}
	return w.d.GetValueIndex(i)
}
func (w *dictW) null(i int) bool { return w.nulls.null(i) || w.inner.null(w.key(i)) }
func (w *dictW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	if w.cache {
		return append(dst, w.json(i)...), true
	}
	return w.inner.write(e, dst, w.key(i))
}

// json is row i's value as a JSON string (w.cache; row i not null).
func (w *dictW) json(i int) []byte {
	sp := w.spans[w.idx32[i]]
	if sp.end == 0 {
		sp = w.fill(i)
	}
	return w.enc[sp.start:sp.end]
}

// fill caches the JSON of row i's value (w.cache) and returns its span.
func (w *dictW) fill(i int) span {
	k := int(w.idx32[i])
	sp := &w.spans[k]
	if w.str.null(k) {
		sp.end = -1
	} else {
		sp.start = len(w.enc)
		w.enc = appendString(w.enc, w.str.text(k))
		sp.end = len(w.enc)
	}
	return *sp
}
func (w *dictW) text(i int) string { return w.inner.(texter).text(w.key(i)) }

// extW writes an extension column through its storage's writer.
type extW struct{ storage writer }

func (w *extW) bind(a arrow.Array) { w.storage.bind(a.(array.ExtensionArray).Storage()) }
func (w *extW) null(i int) bool    { return w.storage.null(i) }
func (w *extW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	return w.storage.write(e, dst, i)
}

// nullW is a column of the null type: always absent.
type nullW struct{}

func (nullW) bind(arrow.Array)                                   {}
func (nullW) null(int) bool                                      { return true }
func (nullW) write(_ *Encoder, dst []byte, _ int) ([]byte, bool) { return dst, true }

// strW writes any other type (time of day, duration, interval, union)
// through Arrow's own text form: a slower, allocating path for rare types.
// Decimals whose text is a JSON number are written as numbers.
type strW struct {
	nulls
	a      arrow.Array
	number bool
}

func (w *strW) bind(a arrow.Array) { w.bindNulls(a); w.a = a }
func (w *strW) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	s := w.a.ValueStr(i)
	if w.number && isNumber(s) {
		return append(dst, s...), true
	}
	return appendString(dst, s), true
}

// decimalW writes a decimal exactly, from its integer digits and scale:
// arrow/go v15's ValueStr divides in binary floating point, which would
// send a numeric(38,2) that is not exact in binary rounded.
type decimalW struct {
	nulls
	a     arrow.Array
	scale int32
}

func (w *decimalW) bind(a arrow.Array) { w.bindNulls(a); w.a = a }
func (w *decimalW) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	var digits string
	switch a := w.a.(type) {
	case *array.Decimal128:
		digits = a.Value(i).BigInt().String()
	case *array.Decimal256:
		digits = a.Value(i).BigInt().String()
	default:
		return appendString(dst, w.a.ValueStr(i)), true
	}
	return appendDecimalText(dst, digits, w.scale), true
}

// appendDecimalText writes the integer digits (a leading '-' for a
// negative) scaled down by scale as a JSON number.
func appendDecimalText(dst []byte, digits string, scale int32) []byte {
	if strings.HasPrefix(digits, "-") {
		dst = append(dst, '-')
		digits = digits[1:]
	}
	switch {
	case scale <= 0:
		dst = append(dst, digits...)
		if digits != "0" {
			for i := int32(0); i < -scale; i++ {
				dst = append(dst, '0')
			}
		}
	case len(digits) <= int(scale):
		dst = append(dst, "0."...)
		for i := len(digits); i < int(scale); i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		cut := len(digits) - int(scale)
		dst = append(dst, digits[:cut]...)
		dst = append(dst, '.')
		dst = append(dst, digits[cut:]...)
	}
	return dst
}

// constW writes a fixed JSON text (context.library).
type constW struct{ v []byte }

func (*constW) bind(arrow.Array) {}
func (*constW) null(int) bool    { return false }
func (w *constW) write(_ *Encoder, dst []byte, _ int) ([]byte, bool) {
	return append(dst, w.v...), true
}

// fallbackW writes its column's value, or a fixed JSON text where the
// column is null (the data's context.library, else this tool's).
type fallbackW struct {
	inner writer
	v     []byte
}

func (*fallbackW) bind(arrow.Array) {} // inner is bound by the plan's binding
func (*fallbackW) null(int) bool    { return false }
func (w *fallbackW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	if w.inner.null(i) {
		return append(dst, w.v...), true
	}
	return w.inner.write(e, dst, i)
}

// notObjectW stands for a column that must hold objects but cannot
// (properties as a string column): each non-null row is rejected.
type notObjectW struct {
	inner writer
	col   string
	typ   arrow.DataType
}

func (w *notObjectW) bind(a arrow.Array) { w.inner.bind(a) }
func (w *notObjectW) null(i int) bool    { return w.inner.null(i) }
func (w *notObjectW) write(e *Encoder, dst []byte, _ int) ([]byte, bool) {
	e.fail(w.col, fmt.Sprintf("%s is a %s column; Segment needs an object", w.col, w.typ))
	return dst, false
}

// idW writes an id field (userId, anonymousId, event, ...): an empty string
// counts as absent (Segment drops messages with empty ids after a 200),
// and integers are written as strings, as ids are.
type idW struct {
	inner writer
	t     texter          // inner as a texter, or nil
	d     decimalAppender // inner as an integer writer, or nil
	s     *stringW        // inner as a string writer, or nil
	tmp   []byte
}

func newIDW(inner writer) *idW {
	w := &idW{inner: inner}
	w.t, _ = asTexter(inner)
	w.s, _ = inner.(*stringW)
	w.d, _ = inner.(decimalAppender)
	return w
}

func (w *idW) bind(a arrow.Array) { w.inner.bind(a) }
func (w *idW) null(i int) bool {
	if w.inner.null(i) {
		return true
	}
	if w.s != nil && w.s.fast { // empty, without a call per row
		return w.s.offs[i] == w.s.offs[i+1]
	}
	return w.t != nil && len(w.t.text(i)) == 0
}
func (w *idW) text(i int) string {
	if w.t != nil {
		return w.t.text(i)
	}
	w.tmp = w.d.appendDecimal(w.tmp[:0], i)
	return b2s(w.tmp)
}
func (w *idW) write(_ *Encoder, dst []byte, i int) ([]byte, bool) {
	if w.t != nil {
		return appendString(dst, w.t.text(i)), true
	}
	dst = append(dst, '"')
	dst = w.d.appendDecimal(dst, i)
	return append(dst, '"'), true
}

// unsafeBytes views s as bytes without copying; the bytes must not be
// written.
func unsafeBytes(s string) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// newWriter chooses the writer of a column type; col names the column in
// reasons.
func newWriter(dt arrow.DataType, col string) writer {
	n := nulls{col: col}
	if record.IsJSON(dt) {
		return &jsonW{nulls: n}
	}
	switch t := dt.(type) {
	case *arrow.BooleanType:
		return &boolW{nulls: n}
	case *arrow.Int8Type:
		return &intW[int8]{nulls: n}
	case *arrow.Int16Type:
		return &intW[int16]{nulls: n}
	case *arrow.Int32Type:
		return &intW[int32]{nulls: n}
	case *arrow.Int64Type:
		return &intW[int64]{nulls: n}
	case *arrow.Uint8Type:
		return &uintW[uint8]{nulls: n}
	case *arrow.Uint16Type:
		return &uintW[uint16]{nulls: n}
	case *arrow.Uint32Type:
		return &uintW[uint32]{nulls: n}
	case *arrow.Uint64Type:
		return &uintW[uint64]{nulls: n}
	case *arrow.Float16Type, *arrow.Float32Type, *arrow.Float64Type:
		return &floatW{nulls: n}
	case *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType:
		return &stringW{nulls: n}
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType, *arrow.FixedSizeBinaryType:
		return &binaryW{nulls: n}
	case *arrow.TimestampType, *arrow.Date32Type, *arrow.Date64Type:
		return &timeW{nulls: n}
	case *arrow.StructType:
		w := &structW{nulls: n}
		for _, f := range t.Fields() {
			w.keys = append(w.keys, append(appendString(nil, f.Name), ':'))
			w.fields = append(w.fields, newWriter(f.Type, col+"."+f.Name))
		}
		return w
	case *arrow.MapType:
		return &mapW{nulls: n, keys: newWriter(t.KeyType(), col), vals: newWriter(t.ItemType(), col)}
	case *arrow.ListType, *arrow.LargeListType, *arrow.FixedSizeListType:
		return &listW{nulls: n, elem: newWriter(t.(arrow.ListLikeType).Elem(), col+"[]")}
	case *arrow.DictionaryType:
		return newDictW(n, t.ValueType, col)
	case *arrow.NullType:
		return nullW{}
	case arrow.ExtensionType:
		return &extW{storage: newWriter(t.StorageType(), col)}
	case *arrow.Decimal128Type:
		return &decimalW{nulls: n, scale: t.Scale}
	case *arrow.Decimal256Type:
		return &decimalW{nulls: n, scale: t.Scale}
	}
	return &strW{nulls: n}
}
