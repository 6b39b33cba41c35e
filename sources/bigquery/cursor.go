package bigquery

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
)

// cursorValue is one value of the cursor column, typed so that it can be
// compared and written back as a SQL literal.
type cursorValue struct {
	Kind string  `json:"kind"` // int64, float64, string, timestamp, datetime, date
	I    int64   `json:"i,omitempty"`
	F    float64 `json:"f,omitempty"`
	S    string  `json:"s,omitempty"`
}

func cursorKind(t arrow.DataType) (string, error) {
	switch t := t.(type) {
	case *arrow.Int64Type:
		return "int64", nil
	case *arrow.Float64Type:
		return "float64", nil
	case *arrow.StringType:
		return "string", nil
	case *arrow.Date32Type:
		return "date", nil
	case *arrow.TimestampType:
		if t.TimeZone == "" {
			return "datetime", nil
		}
		return "timestamp", nil
	}
	return "", fmt.Errorf("a %s column cannot be a cursor (use TIMESTAMP, DATETIME, DATE, INT64, FLOAT64 or STRING)", t)
}

func (c cursorValue) less(o cursorValue) bool {
	switch c.Kind {
	case "float64":
		return c.F < o.F
	case "string":
		return c.S < o.S
	}
	return c.I < o.I
}

// literal is the value as BigQuery SQL.
func (c cursorValue) literal() string {
	switch c.Kind {
	case "float64":
		return strconv.FormatFloat(c.F, 'g', -1, 64)
	case "string":
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(c.S) + "'"
	case "timestamp":
		return `TIMESTAMP "` + time.UnixMicro(c.I).UTC().Format("2006-01-02 15:04:05.999999-07:00") + `"`
	case "datetime":
		return `DATETIME "` + time.UnixMicro(c.I).UTC().Format("2006-01-02T15:04:05.999999") + `"`
	case "date":
		return `DATE "` + time.Unix(c.I*86400, 0).UTC().Format("2006-01-02") + `"`
	}
	return strconv.FormatInt(c.I, 10)
}

// maxCursor is the highest non-null value of a cursor column.
func maxCursor(a arrow.Array) (cursorValue, bool) {
	kind, err := cursorKind(a.DataType())
	if err != nil {
		return cursorValue{}, false
	}
	var best cursorValue
	found := false
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			continue
		}
		v := cursorValue{Kind: kind}
		switch a := a.(type) {
		case *array.Int64:
			v.I = a.Value(i)
		case *array.Float64:
			v.F = a.Value(i)
		case *array.String:
			v.S = a.Value(i)
		case *array.Date32:
			v.I = int64(a.Value(i))
		case *array.Timestamp:
			unit := a.DataType().(*arrow.TimestampType).Unit
			v.I = a.Value(i).ToTime(unit).UnixMicro()
		}
		if !found || best.less(v) {
			best, found = v, true
		}
	}
	return best, found
}

// observeCursor raises the run's pending high-water mark. It becomes the
// next run's lower bound only in Finish, once every row is acknowledged:
// streams are read in parallel, so the highest value read so far may sit
// above rows of other streams not yet delivered.
func (s *Source) observeCursor(v cursorValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		if stored := s.get(keyCursorPending); stored != "" {
			var p cursorValue
			if json.Unmarshal([]byte(stored), &p) == nil && p.Kind == v.Kind {
				s.pending = &p
			}
		}
	}
	if s.pending != nil && !s.pending.less(v) {
		return
	}
	s.pending = &v
	b, _ := json.Marshal(v)
	s.env.State.Set(keyCursorPending, string(b))
}
