package postgres

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"
)

// A split key is an integer, date or timestamp column. Its values are kept
// as int64 in the server's own terms: the integer, days or microseconds
// since 2000-01-01 (a timestamp without time zone as its wall-clock
// value), so that bounds and resume keys go back into SQL unchanged.

func splitKind(k kind) bool {
	switch k {
	case kInt16, kInt32, kInt64, kDate, kTimestamp, kTimestamptz:
		return true
	}
	return false
}

// keyValue decodes a key column's value (binary or text).
func keyValue(k kind, v []byte, text bool) (int64, error) {
	if text {
		s := b2s(v)
		switch k {
		case kDate:
			d, reason := parseDateText(s)
			if reason != "" {
				return 0, fmt.Errorf("%s", reason)
			}
			return int64(d), nil
		case kTimestamp, kTimestamptz:
			us, reason := parseTimestampText(s, k == kTimestamptz)
			if reason != "" {
				return 0, fmt.Errorf("%s", reason)
			}
			return us, nil
		}
		return strconv.ParseInt(s, 10, 64)
	}
	switch {
	case k == kInt16 && len(v) == 2:
		return int64(int16(binary.BigEndian.Uint16(v))), nil
	case (k == kInt32 || k == kDate) && len(v) == 4:
		return int64(int32(binary.BigEndian.Uint32(v))), nil
	case (k == kInt64 || k == kTimestamp || k == kTimestamptz) && len(v) == 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, fmt.Errorf("key value of %d bytes", len(v))
}

// keyLiteral is a key value as SQL.
func keyLiteral(k kind, v int64) string {
	switch k {
	case kDate:
		return "'" + formatPGDate(v) + "'::date"
	case kTimestamp:
		return "'" + formatPGTimestamp(v) + "'::timestamp"
	case kTimestamptz:
		return "'" + formatPGTimestamp(v) + "+00'::timestamptz"
	}
	return strconv.FormatInt(v, 10)
}

func formatPGDate(days int64) string {
	t := time.Unix((days+pgEpochDays)*86400, 0).UTC()
	return isoDate(t)
}

func formatPGTimestamp(us int64) string {
	t := time.UnixMicro(us + pgEpochMicros).UTC()
	s := fmt.Sprintf("%02d:%02d:%02d.%06d", t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1000)
	d := isoDate(t)
	if n := len(d); n > 3 && d[n-3:] == " BC" {
		return d[:n-3] + " " + s + " BC"
	}
	return d + " " + s
}

// isoDate prints a date as Postgres reads it, with BC for years before 1.
func isoDate(t time.Time) string {
	y := t.Year()
	if y <= 0 {
		return fmt.Sprintf("%04d-%02d-%02d BC", 1-y, int(t.Month()), t.Day())
	}
	return fmt.Sprintf("%04d-%02d-%02d", y, int(t.Month()), t.Day())
}

// keyRange is one split's share of the key: lo <= key < hi, or key <= hi
// for the last (hiIncl); nulls reads the rows whose key is NULL instead.
type keyRange struct {
	Lo     int64 `json:"lo"`
	Hi     int64 `json:"hi"`
	HiIncl bool  `json:"hi_incl,omitempty"`
	Nulls  bool  `json:"nulls,omitempty"`
}

// splitRange cuts [lo, hi] into at most n ranges of equal width.
func splitRange(lo, hi int64, n int) []keyRange {
	if hi < lo {
		return nil
	}
	// The width in uint64: hi-lo may overflow int64.
	span := uint64(hi) - uint64(lo)
	if n < 1 {
		n = 1
	}
	if uint64(n-1) > span {
		n = int(span + 1)
	}
	step := span/uint64(n) + 1
	if span == ^uint64(0) {
		step = span / uint64(n)
	}
	var out []keyRange
	cur := lo
	for i := 0; i < n; i++ {
		if i == n-1 || uint64(cur)-uint64(lo)+step > span {
			out = append(out, keyRange{Lo: cur, Hi: hi, HiIncl: true})
			break
		}
		next := int64(uint64(cur) + step)
		out = append(out, keyRange{Lo: cur, Hi: next})
		cur = next
	}
	return out
}

// conds are the range's conditions on quoted key column col.
func (r keyRange) conds(col string, k kind) []string {
	if r.Nulls {
		return []string{col + " IS NULL"}
	}
	hiOp := " < "
	if r.HiIncl {
		hiOp = " <= "
	}
	return []string{col + " >= " + keyLiteral(k, r.Lo), col + hiOp + keyLiteral(k, r.Hi)}
}
