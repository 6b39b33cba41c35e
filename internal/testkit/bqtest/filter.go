package bqtest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
)

// The row restriction forms the tests use: conjuncts joined by AND, each
// `column OP literal` (optionally in parentheses), where a literal is a
// number, a quoted string, or TIMESTAMP/DATETIME/DATE "...".
var (
	andSplit  = regexp.MustCompile(`(?i)\s+AND\s+`)
	condition = regexp.MustCompile(`^` + "`?" + `([A-Za-z_][A-Za-z0-9_]*)` + "`?" + `\s*(>=|<=|!=|<>|=|>|<)\s*(.+)$`)
	typedLit  = regexp.MustCompile(`(?i)^(TIMESTAMP|DATETIME|DATE)\s*["'](.*)["']$`)
)

type cond struct {
	col, op string
	lit     any // int64, float64, string
}

func parseRestriction(s string) ([]cond, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []cond
	for _, part := range andSplit.Split(s, -1) {
		part = strings.TrimSpace(part)
		for strings.HasPrefix(part, "(") && strings.HasSuffix(part, ")") {
			part = strings.TrimSpace(part[1 : len(part)-1])
		}
		part = strings.TrimLeft(part, "(")
		part = strings.TrimRight(part, ")")
		m := condition.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("bqtest cannot evaluate %q", part)
		}
		lit, err := parseLiteral(strings.TrimSpace(m[3]))
		if err != nil {
			return nil, err
		}
		out = append(out, cond{col: m[1], op: m[2], lit: lit})
	}
	return out, nil
}

func parseLiteral(s string) (any, error) {
	if m := typedLit.FindStringSubmatch(s); m != nil {
		switch strings.ToUpper(m[1]) {
		case "TIMESTAMP":
			t, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil {
				t, err = time.Parse("2006-01-02 15:04:05.999999Z07:00", m[2])
			}
			if err != nil { // BigQuery also takes a bare date: midnight UTC
				t, err = time.Parse("2006-01-02", m[2])
			}
			if err != nil {
				return nil, fmt.Errorf("timestamp literal %q: %v", m[2], err)
			}
			return t.UnixMicro(), nil
		case "DATETIME":
			t, err := time.Parse("2006-01-02T15:04:05.999999", m[2])
			if err != nil {
				return nil, fmt.Errorf("datetime literal %q: %v", m[2], err)
			}
			return t.UnixMicro(), nil
		default:
			t, err := time.Parse("2006-01-02", m[2])
			if err != nil {
				return nil, fmt.Errorf("date literal %q: %v", m[2], err)
			}
			return t.Unix() / 86400, nil
		}
	}
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return strings.ReplaceAll(s[1:len(s)-1], `\'`, `'`), nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, nil
	}
	return nil, fmt.Errorf("bqtest cannot read literal %q", s)
}

func compare[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func holds(c int, op string) bool {
	switch op {
	case "=":
		return c == 0
	case "!=", "<>":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

// value reads row i of a column as int64, float64 or string.
func value(a arrow.Array, i int) (any, bool) {
	if a.IsNull(i) {
		return nil, false
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i), true
	case *array.Float64:
		return a.Value(i), true
	case *array.String:
		return a.Value(i), true
	case *array.Timestamp:
		return int64(a.Value(i)), true
	case *array.Date32:
		return int64(a.Value(i)), true
	}
	return nil, false
}

func filter(mem memory.Allocator, rec arrow.Record, restriction string) (arrow.Record, error) {
	conds, err := parseRestriction(restriction)
	if err != nil {
		return nil, err
	}
	if len(conds) == 0 {
		rec.Retain()
		return rec, nil
	}
	cols := make([]arrow.Array, len(conds))
	for j, c := range conds {
		idx := rec.Schema().FieldIndices(c.col)
		if len(idx) == 0 {
			return nil, fmt.Errorf("unrecognized name: %s", c.col)
		}
		cols[j] = rec.Column(idx[0])
	}
	// The engine's row drop, not arrow's FilterRecordBatch: v15's kernel is
	// quadratic on string columns (see pipeline.Batch.DropMask).
	mask := make([]uint8, rec.NumRows())
	for i := range mask {
		keep := true
		for j, c := range conds {
			v, ok := value(cols[j], i)
			if !ok {
				keep = false // NULL compares to nothing
				break
			}
			var r int
			switch lv := c.lit.(type) {
			case int64:
				switch vv := v.(type) {
				case int64:
					r = compare(vv, lv)
				case float64:
					r = compare(vv, float64(lv))
				default:
					return nil, fmt.Errorf("column %s is not a number", c.col)
				}
			case float64:
				switch vv := v.(type) {
				case int64:
					r = compare(float64(vv), lv)
				case float64:
					r = compare(vv, lv)
				default:
					return nil, fmt.Errorf("column %s is not a number", c.col)
				}
			case string:
				vv, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("column %s is not a string", c.col)
				}
				r = compare(vv, lv)
			}
			if !holds(r, c.op) {
				keep = false
				break
			}
		}
		if !keep {
			mask[i] = pipeline.FateFilter
		}
	}
	rec.Retain()
	b := pipeline.NewBatch("", 0, rec)
	if err := b.DropMask(mem, mask, nil); err != nil {
		b.Release()
		return nil, err
	}
	out := b.Record
	b.Record = nil // handed to the caller
	return out, nil
}
