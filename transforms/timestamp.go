package transforms

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// TimestampType is the type the timestamp transform writes.
var TimestampType = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// Policies for a missing or invalid value.
const (
	PolicyReject = "reject"
	PolicySkip   = "skip"
	PolicyNow    = "now"
)

// namedLayouts are Go's layout constants, usable by name in `layouts`.
var namedLayouts = map[string]string{
	"RFC3339": time.RFC3339, "RFC3339Nano": time.RFC3339Nano, "DateTime": time.DateTime,
	"DateOnly": time.DateOnly, "RFC1123": time.RFC1123, "RFC1123Z": time.RFC1123Z,
	"RFC822": time.RFC822, "RFC822Z": time.RFC822Z, "RFC850": time.RFC850,
	"ANSIC": time.ANSIC, "UnixDate": time.UnixDate, "RubyDate": time.RubyDate,
}

// defaultLayouts read RFC 3339 and the common ISO-8601 variants. Go accepts
// a fractional second after the seconds even when the layout has none.
var defaultLayouts = []string{"RFC3339", "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05", "2006-01-02T15:04:05Z0700", "2006-01-02 15:04:05Z0700", "DateOnly"}

// layoutOf is a layout as configured: a name of Go's constants, or the
// layout itself.
func layoutOf(name string) string {
	if l, ok := namedLayouts[name]; ok {
		return l
	}
	return name
}

// isoLayouts are defaultLayouts resolved, once.
var isoLayouts = func() []string {
	out := make([]string, len(defaultLayouts))
	for i, n := range defaultLayouts {
		out[i] = layoutOf(n)
	}
	return out
}()

// parseISO reads s in one of defaultLayouts; a time without a zone is UTC.
func parseISO(s string) (time.Time, error) {
	var err error
	for _, l := range isoLayouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

var unitNanos = map[string]int64{"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}

func timestampSpec() *config.Spec {
	policy := func(name, desc string) *config.Field {
		return config.String(name, desc).Default(PolicyReject).Enum(PolicyReject, PolicySkip, PolicyNow)
	}
	return config.NewSpec("parse a column of any type into the message timestamp (timestamp[ms, UTC])",
		config.String("field", "the column to read").Default(record.Timestamp).Example("created_at"),
		config.String("to", "the column to write").Default(record.Timestamp),
		config.Strings("layouts", "Go time layouts tried in order for string values, or the names of Go's layout constants (RFC3339, DateTime, DateOnly, RFC1123, ...); default: RFC3339 and ISO-8601 with or without zone, 'T' or space, and date only").
			Optional().Example([]string{"02/01/2006 15:04", "RFC3339"}),
		config.String("unit", "unix time unit of numbers and numeric strings; required for a numeric column").
			Optional().Enum("s", "ms", "us", "ns"),
		config.String("timezone", "IANA zone of values without one (zone-less strings, timestamps without zone, dates)").
			Default("UTC").Example("Europe/Paris").Check(func(v any) error {
			_, err := time.LoadLocation(v.(string))
			return err
		}),
		policy("on_missing", "a null or empty value: reject it (dead letter), skip it (filtered) or use the current time"),
		policy("on_invalid", "a value that does not parse or is out of bounds: reject, skip or now"),
		config.String("not_before", "earliest accepted time: RFC 3339 or a date").Optional().Example("2015-01-01"),
		config.String("not_after", `latest accepted time: RFC 3339, a date, "now" (when the batch is processed) or "none"`).
			Default("now"),
	).WithDescription(`Keeps the event's own time: a message without a timestamp would land in
Segment as "now". Reads Arrow timestamps and dates, strings (RFC 3339 and
ISO-8601 by default, or the given layouts) and unix numbers (unit), with
timezone for values that carry no zone. By default a time in the future is
invalid (not_after: now).`).WithExample("a CSV column in local time", `field: created_at
layouts: ["2006-01-02 15:04:05"]
timezone: America/New_York`).
		WithExample("unix milliseconds, dropping rows without a time", `field: ts_ms
unit: ms
on_missing: skip`)
}

// Timestamp is the timestamp transform.
type Timestamp struct {
	field, to            string
	layouts, layoutNames []string
	unit                 int64 // nanoseconds per unit, 0 when unset
	unitName             string
	loc                  *time.Location
	onMissing, onInvalid string
	notBefore, notAfter  int64 // ms; notAfter used when !afterNow
	afterNow             bool
	mem                  memory.Allocator
	now                  func() time.Time
	lastLayout           atomic.Int32 // the layout that matched last: tried first
	namedColumns
}

func newTimestamp(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	t := &Timestamp{
		field: conf.String("field"), to: conf.String("to"), unitName: conf.String("unit"),
		onMissing: conf.String("on_missing"), onInvalid: conf.String("on_invalid"),
		notBefore: math.MinInt64, notAfter: math.MaxInt64, mem: env.Alloc, now: time.Now,
	}
	var errs []error
	t.unit = unitNanos[t.unitName]
	t.loc, _ = time.LoadLocation(conf.String("timezone"))
	if t.loc == nil {
		t.loc = time.UTC
	}
	names := conf.Strings("layouts")
	if !conf.IsSet("layouts") {
		names = defaultLayouts
	} else if len(names) == 0 {
		errs = append(errs, conf.Errorf("layouts", "layouts is empty"))
	}
	for _, n := range names {
		l := layoutOf(n)
		if _, named := namedLayouts[n]; !named && !strings.ContainsAny(n, "0123456789") {
			errs = append(errs, conf.Errorf("layouts", "%q is not a Go time layout (written with the reference time 2006-01-02 15:04:05) nor a layout name (%s)", n, "RFC3339, DateTime, DateOnly, ..."))
		}
		t.layouts, t.layoutNames = append(t.layouts, l), append(t.layoutNames, n)
	}
	if s := conf.String("not_before"); s != "" {
		ms, err := parseBound(s)
		if err != nil {
			errs = append(errs, conf.Errorf("not_before", "%v", err))
		}
		t.notBefore = ms
	}
	switch s := conf.String("not_after"); s {
	case "now":
		t.afterNow = true
	case "none":
	default:
		ms, err := parseBound(s)
		if err != nil {
			errs = append(errs, conf.Errorf("not_after", "%v", err))
		}
		t.notAfter = ms
	}
	if t.notBefore != math.MinInt64 && !t.afterNow && t.notAfter < t.notBefore {
		errs = append(errs, conf.Errorf("not_after", "not_after is before not_before"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if t.onMissing != PolicyNow { // with now, a missing column is every row missing
		t.nameField(conf, "field")
	}
	return t, nil
}

// Requires reads field and writes to.
func (t *Timestamp) Requires(out pipeline.Columns) pipeline.Columns {
	return requireNames(withoutName(out, t.to), t.field)
}

func parseBound(s string) (int64, error) {
	for _, l := range []string{time.RFC3339Nano, time.DateOnly} {
		if tm, err := time.Parse(l, s); err == nil {
			return tm.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%q is neither an RFC 3339 time nor a date (2006-01-02)", s)
}

// row outcomes while converting.
const (
	tsOK uint8 = iota
	tsMissing
	tsInvalid
)

// Apply converts the column, then rejects or filters the rows that failed.
func (t *Timestamp) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	b.DecodeDictionaries(t.mem, named(t.field))
	rec := b.Record
	idx := colIndex(rec.Schema(), t.field)
	if idx < 0 {
		if t.onMissing == PolicyReject || t.onMissing == PolicySkip {
			return missingColumn("timestamp", t.field, rec.Schema())
		}
	}
	n := int(rec.NumRows())
	nowMs := t.now().UnixMilli()
	upper := t.notAfter
	if t.afterNow {
		upper = nowMs
	}

	buf := memory.NewResizableBuffer(t.mem)
	defer buf.Release()
	buf.Resize(n * 8)
	vals := arrow.Int64Traits.CastFromBytes(buf.Bytes())
	state := make([]uint8, n)
	var why []string // reason per invalid row, allocated on the first one
	invalid := func(i int, format string, args ...any) {
		if why == nil {
			why = make([]string, n)
		}
		state[i], why[i] = tsInvalid, fmt.Sprintf(format, args...)
	}

	var in arrow.Array
	if idx < 0 {
		for i := range state {
			state[i] = tsMissing
		}
	} else {
		in = rec.Column(idx)
		if err := t.convert(in, vals, state, invalid); err != nil {
			return err
		}
	}

	var fates map[int]pipeline.RowFate
	nulls := 0
	for i := 0; i < n; i++ {
		st := state[i]
		if st == tsOK && (vals[i] < t.notBefore || vals[i] > upper) {
			if vals[i] < t.notBefore {
				invalid(i, "%s: %s is before not_before %s", t.field, fmtMs(vals[i]), fmtMs(t.notBefore))
			} else {
				invalid(i, "%s: %s is after not_after %s (future times are refused: set not_after to allow them)", t.field, fmtMs(vals[i]), fmtMs(upper))
			}
			st = tsInvalid
		}
		if st == tsOK {
			continue
		}
		policy, reason := t.onInvalid, ""
		if st == tsMissing {
			policy, reason = t.onMissing, t.field+": missing (null or empty)"
		} else {
			reason = why[i]
		}
		switch policy {
		case PolicyNow:
			vals[i], state[i] = nowMs, tsOK
			continue
		case PolicySkip:
			if fates == nil {
				fates = map[int]pipeline.RowFate{}
			}
			fates[i] = pipeline.RowFate{Filter: true}
		default:
			if fates == nil {
				fates = map[int]pipeline.RowFate{}
			}
			fates[i] = reject("timestamp", t.field, "%s", reason)
		}
		nulls++
	}

	var out arrow.Array
	if in != nil && nulls == 0 && in.NullN() == 0 && arrow.TypeEqual(in.DataType(), TimestampType) && !t.rewrote(in, vals) {
		in.Retain() // already right: keep the input array
		out = in
	} else {
		var validity *memory.Buffer
		if nulls > 0 {
			validity = memory.NewResizableBuffer(t.mem)
			validity.Resize(int(bitutil.BytesForBits(int64(n))))
			bits := validity.Bytes()
			for i := 0; i < n; i++ {
				bitutil.SetBitTo(bits, i, state[i] == tsOK)
			}
			defer validity.Release()
		}
		data := array.NewData(TimestampType, n, []*memory.Buffer{validity, buf}, nil, nulls, 0)
		out = array.MakeFromData(data)
		data.Release()
	}
	newRec := replaceColumns(rec, []string{t.to}, []arrow.Array{out})
	out.Release()
	return replaceAndDrop(b, t.mem, newRec, fates)
}

// rewrote reports whether vals differ from a timestamp[ms] input (a "now"
// substitution).
func (t *Timestamp) rewrote(in arrow.Array, vals []int64) bool {
	src := in.(*array.Timestamp).TimestampValues()
	for i, v := range src {
		if int64(v) != vals[i] {
			return true
		}
	}
	return false
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// convert fills vals with unix milliseconds, column at a time per type.
func (t *Timestamp) convert(in arrow.Array, vals []int64, state []uint8, invalid func(int, string, ...any)) error {
	n := in.Len()
	missing := func() {
		for i := 0; i < n; i++ {
			if in.IsNull(i) {
				state[i] = tsMissing
			}
		}
	}
	switch a := in.(type) {
	case *array.Timestamp:
		tt := a.DataType().(*arrow.TimestampType)
		per := int64(tt.Unit.Multiplier()) // nanoseconds per unit
		raw := a.TimestampValues()
		wall := tt.TimeZone == "" && t.loc != time.UTC
		for i, v := range raw {
			ms := unitToMs(int64(v), per)
			if wall {
				ms = wallToUTC(ms, t.loc)
			}
			vals[i] = ms
		}
		missing()
	case *array.Date32:
		for i, d := range a.Date32Values() {
			vals[i] = wallToUTC(int64(d)*86400000, t.loc)
		}
		missing()
	case *array.Date64:
		for i, d := range a.Date64Values() {
			vals[i] = wallToUTC(int64(d), t.loc)
		}
		missing()
	case *array.Null:
		missing()
	default:
		if isStringLike(in.DataType()) {
			t.convertStrings(in, vals, state, invalid)
			return nil
		}
		if !arrow.IsInteger(in.DataType().ID()) && !arrow.IsFloating(in.DataType().ID()) {
			return fmt.Errorf("timestamp: column %q is %s; want a timestamp, a date, a string or a number (with unit)", t.field, in.DataType())
		}
		if t.unit == 0 {
			return fmt.Errorf("timestamp: column %q holds numbers (%s): set unit (s, ms, us or ns) to read them as unix time", t.field, in.DataType())
		}
		for i := 0; i < n; i++ {
			if in.IsNull(i) {
				state[i] = tsMissing
				continue
			}
			var ok bool
			if arrow.IsFloating(in.DataType().ID()) {
				vals[i], ok = floatToMs(numAsFloat(in, i), t.unit)
			} else {
				vals[i], ok = intToMs(numAsInt(in, i), t.unit)
			}
			if !ok {
				invalid(i, "%s: %s is out of range as unix %s", t.field, in.ValueStr(i), t.unitName)
			}
		}
	}
	return nil
}

func (t *Timestamp) convertStrings(in arrow.Array, vals []int64, state []uint8, invalid func(int, string, ...any)) {
	last := int(t.lastLayout.Load())
	for i := 0; i < in.Len(); i++ {
		if in.IsNull(i) {
			state[i] = tsMissing
			continue
		}
		s, _ := stringAt(in, i)
		if s == "" {
			state[i] = tsMissing
			continue
		}
		if t.unit != 0 && looksNumeric(s) {
			var ok bool
			if iv, err := strconv.ParseInt(s, 10, 64); err == nil {
				vals[i], ok = intToMs(iv, t.unit)
			} else if fv, err := strconv.ParseFloat(s, 64); err == nil {
				vals[i], ok = floatToMs(fv, t.unit)
			}
			if !ok {
				invalid(i, "%s: %q is not a unix time in %s", t.field, s, t.unitName)
			}
			continue
		}
		ms, k, ok := t.parse(s, last)
		if !ok {
			invalid(i, "%s: %q is not a time in any of the layouts [%s]", t.field, s, strings.Join(t.layoutNames, ", "))
			continue
		}
		vals[i], last = ms, k
	}
	t.lastLayout.Store(int32(last))
}

// parse tries the layout that matched last, then the others in order.
func (t *Timestamp) parse(s string, last int) (int64, int, bool) {
	if last < len(t.layouts) {
		if tm, err := time.ParseInLocation(t.layouts[last], s, t.loc); err == nil {
			return tm.UnixMilli(), last, true
		}
	}
	for k, l := range t.layouts {
		if k == last {
			continue
		}
		if tm, err := time.ParseInLocation(l, s, t.loc); err == nil {
			return tm.UnixMilli(), k, true
		}
	}
	return 0, last, false
}

func looksNumeric(s string) bool {
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+' {
			return false
		}
	}
	return s[0] >= '0' && s[0] <= '9' || s[0] == '.'
}

// unitToMs converts a count of units of per nanoseconds to ms, flooring
// so times before 1970 round the same way as after.
func unitToMs(v, per int64) int64 {
	switch {
	case per == 1e6:
		return v
	case per > 1e6:
		return v * (per / 1e6)
	}
	d := 1e6 / per
	q := v / d
	if v%d < 0 {
		q--
	}
	return q
}

func intToMs(v, perNs int64) (int64, bool) {
	if perNs >= 1e6 {
		m := perNs / 1e6
		if v > math.MaxInt64/m || v < math.MinInt64/m {
			return 0, false
		}
		return v * m, true
	}
	return unitToMs(v, perNs), true
}

func floatToMs(f float64, perNs int64) (int64, bool) {
	ms := math.Floor(f * float64(perNs) / 1e6)
	if math.IsNaN(ms) || ms > 9.2e18 || ms < -9.2e18 {
		return 0, false
	}
	return int64(ms), true
}

// wallToUTC reads ms as a wall-clock time in loc.
func wallToUTC(ms int64, loc *time.Location) int64 {
	if loc == time.UTC {
		return ms
	}
	w := time.UnixMilli(ms).UTC()
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), loc).UnixMilli()
}

func numAsInt(a arrow.Array, i int) int64 {
	switch x := a.(type) {
	case *array.Int8:
		return int64(x.Value(i))
	case *array.Int16:
		return int64(x.Value(i))
	case *array.Int32:
		return int64(x.Value(i))
	case *array.Int64:
		return x.Value(i)
	case *array.Uint8:
		return int64(x.Value(i))
	case *array.Uint16:
		return int64(x.Value(i))
	case *array.Uint32:
		return int64(x.Value(i))
	case *array.Uint64:
		v := x.Value(i)
		if v > math.MaxInt64 {
			return math.MaxInt64
		}
		return int64(v)
	}
	return 0
}

func numAsFloat(a arrow.Array, i int) float64 {
	switch x := a.(type) {
	case *array.Float32:
		return float64(x.Value(i))
	case *array.Float64:
		return x.Value(i)
	}
	return 0
}
