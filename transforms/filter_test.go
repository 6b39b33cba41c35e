package transforms

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

func TestFilter(t *testing.T) {
	tsCol := col{"timestamp", TimestampType, `["2023-12-31T23:59:59Z","2024-01-01T00:00:00Z","2024-06-30T00:00:00Z","2024-07-01T00:00:00Z",null]`}
	cols := []col{
		{"event", str, `["A","B","A","A","C"]`},
		{"properties.total", f64, `[1,2,3,null,5]`},
		{"userId", str, `["u1","test-1","u3",null,"u5"]`},
		{"context", record.JSON, `["{\"ip\":\"1\"}","{\"ip\":\"2\"}",null,"{}","{\"ip\":\"5\"}"]`},
		tsCol,
	}
	tests := []struct {
		conf     string
		want     []string // events kept (by row index)
		rejects  []string
		filtered int64
		err      string
	}{
		{conf: `expr: event == "A"`, want: []string{"0", "2", "3"}, filtered: 2},
		{conf: `drop: 'userId startsWith "test-"'`, want: []string{"0", "2", "3", "4"}, filtered: 1},
		{conf: `expr: properties.total >= 3`, want: []string{"2", "4"}, filtered: 2,
			rejects: []string{"3::filter: properties.total >= 3: invalid operation: <nil> >= int (1:18)  | properties.total >= 3  | .................^"}},
		{conf: `expr: context?.ip == "2" || userId == nil`, want: []string{"1", "3"}, filtered: 3},
		{conf: "after: 2024-01-01\nbefore: 2024-07-01", want: []string{"1", "2"}, filtered: 3},
		{conf: "after: 2024-01-01\nexpr: event == \"A\"", want: []string{"2", "3"}, filtered: 3},
		{conf: `expr: len(event) == 1 && event != nil`, want: []string{"0", "1", "2", "3", "4"}},
		{conf: `expr: evnt == "A"`, err: `filter: evnt == "A": column "evnt" is not in the data (did you mean "event"?)`},
		{conf: "after: 2024-01-01\nfield: event", err: `need "event" to be a timestamp column, not utf8: put the timestamp transform before filter`},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			b := applyTransform(t, "filter", tt.conf, tt.err, cols...)
			if b == nil {
				return
			}
			var kept []string
			for i := 0; i < int(b.NumRows()); i++ {
				kept = append(kept, fmt.Sprint(b.Row(i)))
			}
			if !equalStrings(kept, tt.want) || b.Filtered != tt.filtered {
				t.Errorf("kept rows %v filtered %d, want %v and %d", kept, b.Filtered, tt.want, tt.filtered)
			}
			if !equalStrings(reasons(b), tt.rejects) {
				t.Errorf("rejects = %q\nwant      %q", reasons(b), tt.rejects)
			}
		})
	}
}

func TestFilterConfigErrors(t *testing.T) {
	for conf, want := range map[string]string{
		"{}":                                    "filter needs expr, drop, after or before",
		"expr: a ==":                            "unexpected token EOF",
		"expr: '1 + 2'":                         "expected bool, but got int",
		"expr: a\ndrop: b":                      "not both",
		"after: soon":                           `"soon" is neither an RFC 3339 time nor a date`,
		"after: 2024-02-01\nbefore: 2024-01-01": "before is not later than after",
	} {
		_, err := buildTransform(memory.DefaultAllocator, "filter", conf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want %q", conf, err, want)
		}
	}
}

func TestFilterRequires(t *testing.T) {
	tr := mustTransform(t, memory.DefaultAllocator, "filter", "expr: len(event) > 0 && amount > 1\nafter: 2024-01-01")
	got := tr.(pipeline.Projector).Requires(pipeline.Columns{Names: []string{"userId"}})
	if fmt.Sprint(got) != "{false [amount event timestamp userId]}" {
		t.Errorf("Requires = %v", got)
	}
}
