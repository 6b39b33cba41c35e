package postgres

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/decimal128"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline/record"
	"github.com/backfillhq/backfill/sinks/message"
)

// Type OIDs the source decodes itself. Postgres and Redshift share them;
// SUPER is Redshift's.
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidTID         = 27
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidUnknown     = 705
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
	oidSuper       = 4000 // Redshift
)

// arrayElem maps the array types whose elements the source decodes to
// their element type. Other arrays are read as text[].
var arrayElem = map[uint32]uint32{
	1000: oidBool, 1003: oidName, 1005: oidInt2, 1007: oidInt4, 1009: oidText, 1014: oidBPChar,
	1015: oidVarchar, 1016: oidInt8, 1021: oidFloat4, 1022: oidFloat8, 1115: oidTimestamp,
	1182: oidDate, 1185: oidTimestamptz, 1231: oidNumeric, 2951: oidUUID, 199: oidJSON, 3807: oidJSONB,
}

type kind uint8

const (
	kText kind = iota // text, varchar, char(n), name, and anything cast to text
	kInt16
	kInt32
	kInt64
	kFloat32
	kFloat64
	kBool
	kUUID
	kDate
	kTimestamp   // without time zone: wall-clock time in the source's timezone
	kTimestamptz // an instant
	kNumeric
	kJSON
	kJSONB
	kArray
	kTID
)

// kindOf is the decoder for a type OID, and whether the source decodes
// it (else the column is read as text).
func kindOf(oid uint32) (kind, bool) {
	switch oid {
	case oidText, oidVarchar, oidBPChar, oidName, oidChar, oidUnknown:
		return kText, true
	case oidInt2:
		return kInt16, true
	case oidInt4:
		return kInt32, true
	case oidInt8:
		return kInt64, true
	case oidFloat4:
		return kFloat32, true
	case oidFloat8:
		return kFloat64, true
	case oidBool:
		return kBool, true
	case oidUUID:
		return kUUID, true
	case oidDate:
		return kDate, true
	case oidTimestamp:
		return kTimestamp, true
	case oidTimestamptz:
		return kTimestamptz, true
	case oidNumeric:
		return kNumeric, true
	case oidJSON, oidSuper:
		return kJSON, true
	case oidJSONB:
		return kJSONB, true
	case oidTID:
		return kTID, true
	}
	if _, ok := arrayElem[oid]; ok {
		return kArray, true
	}
	return kText, false
}

// Numeric modes.
const (
	numFloat   = "float64"
	numDecimal = "decimal"
	numString  = "string"
)

// Unconstrained numeric (no precision in the column's type) read as a
// decimal is decimal(38, 18).
const (
	unconstrainedPrecision = 38
	unconstrainedScale     = 18
)

// numericTypmod is numeric(p, s)'s precision and scale, ok false when
// unconstrained or wider than decimal128.
func numericTypmod(typmod int32) (p, s int32, ok bool) {
	if typmod < 4 {
		return 0, 0, false
	}
	t := typmod - 4
	p, s = (t>>16)&0xffff, t&0xffff
	if p < 1 || p > 38 || s > p {
		return 0, 0, false
	}
	return p, s, true
}

// decoder appends one column's wire values (binary, or text) to an Arrow
// builder. append returns a reason when a value does not fit the column's
// Arrow type: the row is rejected, and the decoder has appended a null in
// its place so that the columns stay aligned.
type decoder struct {
	name   string
	kind   kind
	elem   kind // arrays
	text   bool // text wire format
	numMod string
	prec   int32
	scale  int32
	loc    *time.Location // timestamp without time zone; nil: UTC
	dt     arrow.DataType

	b   array.Builder
	i16 *array.Int16Builder
	i32 *array.Int32Builder
	i64 *array.Int64Builder
	f32 *array.Float32Builder
	f64 *array.Float64Builder
	bl  *array.BooleanBuilder
	str *array.BinaryBuilder // utf8 storage (text, uuid, numeric strings, JSON)
	d32 *array.Date32Builder
	ts  *array.TimestampBuilder
	dec *array.Decimal128Builder

	scratch  []byte
	lastData int // string bytes of the last batch
}

var tsUTC = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// arrowType is the Arrow type a column of kind k arrives as.
func arrowType(k kind, numMod string, typmod int32) arrow.DataType {
	switch k {
	case kInt16:
		return arrow.PrimitiveTypes.Int16
	case kInt32:
		return arrow.PrimitiveTypes.Int32
	case kInt64:
		return arrow.PrimitiveTypes.Int64
	case kFloat32:
		return arrow.PrimitiveTypes.Float32
	case kFloat64:
		return arrow.PrimitiveTypes.Float64
	case kBool:
		return arrow.FixedWidthTypes.Boolean
	case kDate:
		return arrow.FixedWidthTypes.Date32
	case kTimestamp, kTimestamptz:
		return tsUTC
	case kNumeric:
		switch numMod {
		case numDecimal:
			p, s, ok := numericTypmod(typmod)
			if !ok {
				p, s = unconstrainedPrecision, unconstrainedScale
			}
			return &arrow.Decimal128Type{Precision: p, Scale: s}
		case numString:
			return arrow.BinaryTypes.String
		}
		return arrow.PrimitiveTypes.Float64
	case kJSON, kJSONB, kArray:
		return record.JSON
	}
	return arrow.BinaryTypes.String
}

func newDecoder(mem memory.Allocator, name string, k, elem kind, text bool, numMod string, typmod int32, loc *time.Location) *decoder {
	d := &decoder{name: name, kind: k, elem: elem, text: text, numMod: numMod, loc: loc}
	if loc == time.UTC {
		d.loc = nil
	}
	d.dt = arrowType(k, numMod, typmod)
	if dt, ok := d.dt.(*arrow.Decimal128Type); ok {
		d.prec, d.scale = dt.Precision, dt.Scale
	}
	d.reset(mem)
	return d
}

// reset gives the decoder a new, empty builder.
func (d *decoder) reset(mem memory.Allocator) {
	if d.b != nil {
		d.b.Release()
	}
	if record.IsJSON(d.dt) {
		eb := record.NewJSONBuilder(mem)
		d.b = eb
		d.str = eb.StorageBuilder().(*array.StringBuilder).BinaryBuilder
		return
	}
	d.b = array.NewBuilder(mem, d.dt)
	switch b := d.b.(type) {
	case *array.Int16Builder:
		d.i16 = b
	case *array.Int32Builder:
		d.i32 = b
	case *array.Int64Builder:
		d.i64 = b
	case *array.Float32Builder:
		d.f32 = b
	case *array.Float64Builder:
		d.f64 = b
	case *array.BooleanBuilder:
		d.bl = b
	case *array.StringBuilder:
		d.str = b.BinaryBuilder
	case *array.Date32Builder:
		d.d32 = b
	case *array.TimestampBuilder:
		d.ts = b
	case *array.Decimal128Builder:
		d.dec = b
	}
}

// reserve makes room for n values, and strings as long as the last
// batch's: one allocation a buffer, instead of growing it value by value.
func (d *decoder) reserve(n int) {
	d.b.Reserve(n)
	if d.str != nil && d.lastData > 0 {
		d.str.ReserveData(d.lastData + d.lastData/8)
	}
}

// finish returns the values appended as an array (the builder starts
// over).
func (d *decoder) finish() arrow.Array {
	if d.str != nil {
		d.lastData = d.str.DataLen()
	}
	return d.b.NewArray()
}

func (d *decoder) release() {
	if d.b != nil {
		d.b.Release()
		d.b = nil
	}
}

// Postgres counts days and microseconds from 2000-01-01.
const (
	pgEpochDays   = 10957
	pgEpochMicros = 946684800000000
)

// append appends one value (nil: NULL).
func (d *decoder) append(v []byte) string {
	if v == nil {
		d.b.AppendNull()
		return ""
	}
	if d.text {
		return d.appendText(v)
	}
	switch d.kind {
	case kText:
		d.str.Append(v)
	case kInt16:
		if len(v) != 2 {
			return d.bad("a 2-byte int2", len(v))
		}
		d.i16.Append(int16(binary.BigEndian.Uint16(v)))
	case kInt32:
		if len(v) != 4 {
			return d.bad("a 4-byte int4", len(v))
		}
		d.i32.Append(int32(binary.BigEndian.Uint32(v)))
	case kInt64:
		if len(v) != 8 {
			return d.bad("an 8-byte int8", len(v))
		}
		d.i64.Append(int64(binary.BigEndian.Uint64(v)))
	case kFloat32:
		if len(v) != 4 {
			return d.bad("a 4-byte float4", len(v))
		}
		d.f32.Append(math.Float32frombits(binary.BigEndian.Uint32(v)))
	case kFloat64:
		if len(v) != 8 {
			return d.bad("an 8-byte float8", len(v))
		}
		d.f64.Append(math.Float64frombits(binary.BigEndian.Uint64(v)))
	case kBool:
		if len(v) != 1 {
			return d.bad("a 1-byte bool", len(v))
		}
		d.bl.Append(v[0] != 0)
	case kUUID:
		if len(v) != 16 {
			return d.bad("a 16-byte uuid", len(v))
		}
		d.scratch = appendUUID(d.scratch[:0], v)
		d.str.Append(d.scratch)
	case kDate:
		if len(v) != 4 {
			return d.bad("a 4-byte date", len(v))
		}
		days, reason := dateDays(int32(binary.BigEndian.Uint32(v)))
		if reason != "" {
			return d.reject(reason)
		}
		d.d32.Append(arrow.Date32(days))
	case kTimestamp, kTimestamptz:
		if len(v) != 8 {
			return d.bad("an 8-byte timestamp", len(v))
		}
		us, reason := d.micros(int64(binary.BigEndian.Uint64(v)))
		if reason != "" {
			return d.reject(reason)
		}
		d.ts.Append(arrow.Timestamp(us))
	case kNumeric:
		var ok bool
		d.scratch, ok = numericText(d.scratch[:0], v)
		if !ok {
			return d.bad("a numeric", len(v))
		}
		return d.appendNumeric(d.scratch)
	case kJSON:
		d.str.Append(v)
	case kJSONB:
		if len(v) < 1 || v[0] != 1 {
			return d.reject("jsonb in an unknown binary version")
		}
		d.str.Append(v[1:])
	case kArray:
		out, reason := appendArrayJSON(d.scratch[:0], v, d.elem, d.loc)
		d.scratch = out
		if reason != "" {
			return d.reject(reason)
		}
		d.str.Append(out)
	default:
		d.str.Append(v)
	}
	return ""
}

func (d *decoder) bad(want string, n int) string {
	return d.reject(fmt.Sprintf("expected %s value, got %d bytes", want, n))
}

// reject appends a null in place of the value and returns the reason.
func (d *decoder) reject(reason string) string {
	d.b.AppendNull()
	return reason
}

// dateDays turns Postgres days into Arrow's (since 1970), or says why not.
func dateDays(pg int32) (int32, string) {
	switch pg {
	case math.MaxInt32:
		return 0, "date is infinity, which has no Arrow date"
	case math.MinInt32:
		return 0, "date is -infinity, which has no Arrow date"
	}
	return pg + pgEpochDays, ""
}

// micros turns Postgres microseconds into Unix microseconds (UTC). A
// timestamp without time zone is a wall-clock time in the source's
// timezone.
func (d *decoder) micros(pg int64) (int64, string) {
	switch pg {
	case math.MaxInt64:
		return 0, "timestamp is infinity, which has no Arrow timestamp"
	case math.MinInt64:
		return 0, "timestamp is -infinity, which has no Arrow timestamp"
	}
	if pg > math.MaxInt64-pgEpochMicros {
		return 0, "timestamp out of range"
	}
	us := pg + pgEpochMicros
	if d.kind == kTimestamp && d.loc != nil {
		us = wallToUTC(us, d.loc)
	}
	return us, ""
}

// wallToUTC reads Unix microseconds of a wall-clock time as that time in
// loc, as Postgres does (AT TIME ZONE): a time that does not exist (the
// hour skipped in spring) or exists twice (the hour repeated in autumn)
// takes the later of its two readings.
func wallToUTC(us int64, loc *time.Location) int64 {
	sec := us / 1e6
	if us%1e6 < 0 {
		sec--
	}
	rest := us - sec*1e6
	offset := func(at int64) int64 { _, o := time.Unix(at, 0).In(loc).Zone(); return int64(o) }
	before, after := offset(sec-18*3600), offset(sec+18*3600)
	if before == after {
		if o := offset(sec - before); o == before {
			return (sec-before)*1e6 + rest
		}
	}
	best, found := int64(0), false
	cands := []int64{before, after, offset(sec)}
	for _, o := range cands {
		if inst := sec - o; offset(inst) == o && (!found || inst > best) {
			best, found = inst, true
		}
	}
	if !found { // in a gap: the reading with the offset before it, the later
		for _, o := range cands {
			if inst := sec - o; !found || inst > best {
				best, found = inst, true
			}
		}
	}
	return best*1e6 + rest
}

// appendNumeric appends a numeric given as decimal text ("-12.50", "NaN").
func (d *decoder) appendNumeric(txt []byte) string {
	switch d.numMod {
	case numString:
		d.str.Append(txt)
		return ""
	case numDecimal:
		n, reason := decimalFromText(txt, d.prec, d.scale)
		if reason != "" {
			return d.reject(reason)
		}
		d.dec.Append(n)
		return ""
	}
	f, reason := floatFromNumeric(txt)
	if reason != "" {
		return d.reject(reason)
	}
	d.f64.Append(f)
	return ""
}

func floatFromNumeric(txt []byte) (float64, string) {
	if isNaNOrInf(txt) {
		return 0, fmt.Sprintf("numeric %s has no float64 value JSON can carry", txt)
	}
	f, err := strconv.ParseFloat(b2s(txt), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			if math.IsInf(f, 0) {
				return 0, fmt.Sprintf("numeric %s is beyond the float64 range (read it with numeric: string or decimal)", abbreviate(txt))
			}
			return f, "" // underflow: the nearest float64 (0 or a subnormal)
		}
		return 0, fmt.Sprintf("numeric %q is not a number", abbreviate(txt))
	}
	return f, ""
}

func isNaNOrInf(txt []byte) bool {
	s := b2s(txt)
	return s == "NaN" || s == "Infinity" || s == "-Infinity" || s == "inf" || s == "-inf"
}

func abbreviate(b []byte) string {
	if len(b) > 40 {
		return string(b[:20]) + "..." + string(b[len(b)-10:])
	}
	return string(b)
}

var ten = decimal128.FromI64(10)

// decimalFromText is an exact decimal(prec, scale) from decimal text;
// digits beyond scale are rounded half away from zero.
func decimalFromText(txt []byte, prec, scale int32) (decimal128.Num, string) {
	if isNaNOrInf(txt) {
		return decimal128.Num{}, fmt.Sprintf("numeric %s has no decimal value", txt)
	}
	s := txt
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var n decimal128.Num
	digits := int32(0) // significant digits accumulated
	frac := int32(-1)  // digits after the point so far; -1 before the point
	roundUp := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if frac >= 0 {
				return decimal128.Num{}, fmt.Sprintf("numeric %q is not a number", abbreviate(txt))
			}
			frac = 0
			continue
		}
		if c < '0' || c > '9' {
			return decimal128.Num{}, fmt.Sprintf("numeric %q is not a number", abbreviate(txt))
		}
		if frac >= 0 {
			if frac == scale {
				roundUp = c >= '5'
				break
			}
			frac++
		}
		if digits > 0 || c != '0' {
			digits++
			if digits > prec {
				return decimal128.Num{}, fmt.Sprintf("numeric %s does not fit decimal(%d, %d) (read it with numeric: string)", abbreviate(txt), prec, scale)
			}
		}
		n = n.Mul(ten).Add(decimal128.FromU64(uint64(c - '0')))
	}
	if frac < 0 {
		frac = 0
	}
	for ; frac < scale; frac++ {
		if digits > 0 {
			digits++
			if digits > prec {
				return decimal128.Num{}, fmt.Sprintf("numeric %s does not fit decimal(%d, %d) (read it with numeric: string)", abbreviate(txt), prec, scale)
			}
		}
		n = n.Mul(ten)
	}
	if roundUp {
		n = n.Add(decimal128.FromU64(1))
		if !n.FitsInPrecision(prec) {
			return decimal128.Num{}, fmt.Sprintf("numeric %s does not fit decimal(%d, %d) (read it with numeric: string)", abbreviate(txt), prec, scale)
		}
	}
	if neg {
		n = n.Negate()
	}
	return n, ""
}

// numericText writes a binary numeric as decimal text, as Postgres prints
// it (dscale digits after the point; NaN, Infinity, -Infinity).
func numericText(dst, v []byte) ([]byte, bool) {
	if len(v) < 8 {
		return dst, false
	}
	ndigits := int(int16(binary.BigEndian.Uint16(v[0:])))
	weight := int(int16(binary.BigEndian.Uint16(v[2:])))
	sign := binary.BigEndian.Uint16(v[4:])
	dscale := int(int16(binary.BigEndian.Uint16(v[6:])))
	if ndigits < 0 || len(v) != 8+2*ndigits || dscale < 0 {
		return dst, false
	}
	switch sign {
	case 0xC000:
		return append(dst, "NaN"...), true
	case 0xD000:
		return append(dst, "Infinity"...), true
	case 0xF000:
		return append(dst, "-Infinity"...), true
	case 0x4000:
		dst = append(dst, '-')
	case 0x0000:
	default:
		return dst, false
	}
	digit := func(i int) int {
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(v[8+2*i:]))
	}
	if weight < 0 {
		dst = append(dst, '0')
	} else {
		for i := 0; i <= weight; i++ {
			g := digit(i)
			if g > 9999 {
				return dst, false
			}
			if i == 0 {
				dst = strconv.AppendInt(dst, int64(g), 10)
			} else {
				dst = append(dst, byte('0'+g/1000), byte('0'+g/100%10), byte('0'+g/10%10), byte('0'+g%10))
			}
		}
	}
	if dscale > 0 {
		dst = append(dst, '.')
		written := 0
		for i := weight + 1; written < dscale; i++ {
			g := digit(i)
			if g > 9999 {
				return dst, false
			}
			four := [4]byte{byte('0' + g/1000), byte('0' + g/100%10), byte('0' + g/10%10), byte('0' + g%10)}
			for _, c := range four {
				if written == dscale {
					break
				}
				dst = append(dst, c)
				written++
			}
		}
	}
	return dst, true
}

const hexDigits = "0123456789abcdef"

func appendUUID(dst, v []byte) []byte {
	for i, c := range v {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// appendText decodes a value in the text wire format (Redshift, or a test).
func (d *decoder) appendText(v []byte) string {
	s := b2s(v)
	switch d.kind {
	case kInt16, kInt32, kInt64:
		bits := map[kind]int{kInt16: 16, kInt32: 32, kInt64: 64}[d.kind]
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return d.reject(fmt.Sprintf("%q is not an integer", abbreviate(v)))
		}
		switch d.kind {
		case kInt16:
			d.i16.Append(int16(n))
		case kInt32:
			d.i32.Append(int32(n))
		default:
			d.i64.Append(n)
		}
	case kFloat32, kFloat64:
		bits := 64
		if d.kind == kFloat32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil && !math.IsInf(f, 0) {
			return d.reject(fmt.Sprintf("%q is not a number", abbreviate(v)))
		}
		if d.kind == kFloat32 {
			d.f32.Append(float32(f))
		} else {
			d.f64.Append(f)
		}
	case kBool:
		switch s {
		case "t", "true", "1":
			d.bl.Append(true)
		case "f", "false", "0":
			d.bl.Append(false)
		default:
			return d.reject(fmt.Sprintf("%q is not a boolean", abbreviate(v)))
		}
	case kDate:
		days, reason := parseDateText(s)
		if reason != "" {
			return d.reject(reason)
		}
		pg, reason := dateDays(days)
		if reason != "" {
			return d.reject(reason)
		}
		d.d32.Append(arrow.Date32(pg))
	case kTimestamp, kTimestamptz:
		pg, reason := parseTimestampText(s, d.kind == kTimestamptz)
		if reason != "" {
			return d.reject(reason)
		}
		us, reason := d.micros(pg)
		if reason != "" {
			return d.reject(reason)
		}
		d.ts.Append(arrow.Timestamp(us))
	case kNumeric:
		return d.appendNumeric(v)
	default: // text, uuid, json (and jsonb, arrays, SUPER serialized as text)
		d.str.Append(v)
	}
	return ""
}

// parseDateText reads an ISO date ("2024-01-31", "0044-03-15 BC",
// "infinity") as Postgres days since 2000-01-01.
func parseDateText(s string) (int32, string) {
	switch s {
	case "infinity":
		return math.MaxInt32, ""
	case "-infinity":
		return math.MinInt32, ""
	}
	t, rest, ok := parseYMD(s)
	if !ok || rest != "" {
		return 0, fmt.Sprintf("%q is not a date", s)
	}
	return int32(t.Unix()/86400) - pgEpochDays, ""
}

// parseYMD reads YYYY-MM-DD (a year of 4 or more digits) and a trailing
// " BC" wherever it is; rest is what follows the date.
func parseYMD(s string) (time.Time, string, bool) {
	bc := false
	if n := len(s); n > 3 && s[n-3:] == " BC" {
		bc, s = true, s[:n-3]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i < 4 || len(s) < i+6 || s[i] != '-' || s[i+3] != '-' {
		return time.Time{}, "", false
	}
	y, err1 := strconv.Atoi(s[:i])
	m, err2 := strconv.Atoi(s[i+1 : i+3])
	d, err3 := strconv.Atoi(s[i+4 : i+6])
	if err1 != nil || err2 != nil || err3 != nil || m < 1 || m > 12 || d < 1 || d > 31 {
		return time.Time{}, "", false
	}
	if bc {
		y = 1 - y
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), s[i+6:], true
}

// parseTimestampText reads "2024-01-31 12:34:56.123456[+05:30]" (ISO, as
// DateStyle ISO prints) as Postgres microseconds since 2000-01-01. A zone
// offset is applied when tz (timestamptz).
func parseTimestampText(s string, tz bool) (int64, string) {
	switch s {
	case "infinity":
		return math.MaxInt64, ""
	case "-infinity":
		return math.MinInt64, ""
	}
	bad := func() (int64, string) { return 0, fmt.Sprintf("%q is not a timestamp", s) }
	t, rest, ok := parseYMD(s)
	if !ok || len(rest) < 9 || (rest[0] != ' ' && rest[0] != 'T') || rest[3] != ':' || rest[6] != ':' {
		return bad()
	}
	h, e1 := strconv.Atoi(rest[1:3])
	mi, e2 := strconv.Atoi(rest[4:6])
	se, e3 := strconv.Atoi(rest[7:9])
	if e1 != nil || e2 != nil || e3 != nil {
		return bad()
	}
	rest = rest[9:]
	var frac int64
	if len(rest) > 0 && rest[0] == '.' {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		digits := rest[1:j]
		if len(digits) > 6 {
			digits = digits[:6]
		}
		f, _ := strconv.ParseInt(digits, 10, 64)
		for k := len(digits); k < 6; k++ {
			f *= 10
		}
		frac, rest = f, rest[j:]
	}
	us := t.Unix()*1e6 + int64(h)*3600e6 + int64(mi)*60e6 + int64(se)*1e6 + frac
	if rest != "" {
		if !tz || (rest[0] != '+' && rest[0] != '-') {
			return bad()
		}
		sign := int64(1)
		if rest[0] == '-' {
			sign = -1
		}
		var parts [3]int64
		p := 0
		for _, f := range splitColons(rest[1:]) {
			if p == 3 {
				return bad()
			}
			n, err := strconv.Atoi(f)
			if err != nil {
				return bad()
			}
			parts[p] = int64(n)
			p++
		}
		off := parts[0]*3600 + parts[1]*60 + parts[2]
		us -= sign * off * 1e6
	}
	return us - pgEpochMicros, ""
}

func splitColons(s string) []string {
	var out []string
	for {
		i := 0
		for i < len(s) && s[i] != ':' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			return out
		}
		s = s[i+1:]
	}
}

// appendArrayJSON writes a binary array as JSON (nested for more than one
// dimension).
func appendArrayJSON(dst, v []byte, elem kind, loc *time.Location) ([]byte, string) {
	if len(v) < 12 {
		return dst, "malformed array"
	}
	ndim := int(int32(binary.BigEndian.Uint32(v)))
	v = v[12:] // ndim, has-null flag, element oid
	if ndim == 0 {
		return append(dst, "[]"...), ""
	}
	if ndim < 0 || ndim > 6 || len(v) < 8*ndim {
		return dst, "malformed array"
	}
	dims := make([]int, ndim)
	total := 1
	for i := range dims {
		dims[i] = int(int32(binary.BigEndian.Uint32(v[8*i:])))
		if dims[i] < 0 {
			return dst, "malformed array"
		}
		total *= dims[i]
	}
	v = v[8*ndim:]
	var reason string
	var walk func(dim int) bool
	walk = func(dim int) bool {
		dst = append(dst, '[')
		for i := 0; i < dims[dim]; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dim+1 < ndim {
				if !walk(dim + 1) {
					return false
				}
				continue
			}
			if len(v) < 4 {
				reason = "malformed array"
				return false
			}
			n := int(int32(binary.BigEndian.Uint32(v)))
			v = v[4:]
			if n < 0 {
				dst = append(dst, "null"...)
				continue
			}
			if len(v) < n {
				reason = "malformed array"
				return false
			}
			dst, reason = appendElemJSON(dst, v[:n], elem, loc)
			if reason != "" {
				return false
			}
			v = v[n:]
		}
		dst = append(dst, ']')
		return true
	}
	walk(0)
	return dst, reason
}

// appendElemJSON writes one array element (binary) as a JSON value.
func appendElemJSON(dst, v []byte, k kind, loc *time.Location) ([]byte, string) {
	switch k {
	case kInt16:
		if len(v) == 2 {
			return strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(v))), 10), ""
		}
	case kInt32:
		if len(v) == 4 {
			return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(v))), 10), ""
		}
	case kInt64:
		if len(v) == 8 {
			return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(v)), 10), ""
		}
	case kFloat32, kFloat64:
		var f float64
		bits := 64
		if k == kFloat32 && len(v) == 4 {
			f, bits = float64(math.Float32frombits(binary.BigEndian.Uint32(v))), 32
		} else if k == kFloat64 && len(v) == 8 {
			f = math.Float64frombits(binary.BigEndian.Uint64(v))
		} else {
			break
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Sprintf("array element %v has no JSON value", f)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits), ""
	case kBool:
		if len(v) == 1 {
			if v[0] != 0 {
				return append(dst, "true"...), ""
			}
			return append(dst, "false"...), ""
		}
	case kUUID:
		if len(v) == 16 {
			dst = append(dst, '"')
			dst = appendUUID(dst, v)
			return append(dst, '"'), ""
		}
	case kDate:
		if len(v) == 4 {
			days, reason := dateDays(int32(binary.BigEndian.Uint32(v)))
			if reason != "" {
				return dst, "array element: " + reason
			}
			dst = append(dst, '"')
			dst = time.Unix(int64(days)*86400, 0).UTC().AppendFormat(dst, "2006-01-02")
			return append(dst, '"'), ""
		}
	case kTimestamp, kTimestamptz:
		if len(v) == 8 {
			d := decoder{kind: k, loc: loc}
			us, reason := d.micros(int64(binary.BigEndian.Uint64(v)))
			if reason != "" {
				return dst, "array element: " + reason
			}
			dst = append(dst, '"')
			dst = time.UnixMicro(us).UTC().AppendFormat(dst, time.RFC3339Nano)
			return append(dst, '"'), ""
		}
	case kNumeric:
		start := len(dst)
		out, ok := numericText(dst, v)
		if ok {
			if isNaNOrInf(out[start:]) {
				return dst[:start], "array element: numeric " + string(out[start:]) + " has no JSON value"
			}
			return out, ""
		}
	case kJSON:
		return append(dst, v...), ""
	case kJSONB:
		if len(v) >= 1 && v[0] == 1 {
			return append(dst, v[1:]...), ""
		}
	default: // text
		return message.AppendJSONString(dst, b2s(v)), ""
	}
	return dst, "malformed array element"
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
