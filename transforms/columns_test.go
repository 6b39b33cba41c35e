package transforms

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

func TestSetRenameCast(t *testing.T) {
	cols := []col{{"a", str, `["1","x",null]`}, {"b", str, `["true","no","1"]`}, {"j", str, `["{\"k\":1}","{","[]"]`},
		{"t", str, `["2024-01-01T00:00:00Z","2024-01-01","2024-01-01T00:00:00.5+01:00"]`}, {"n", i64, `[1,2,3]`}}
	tests := []struct {
		name, conf string
		want       []string
		rejects    []string
		err        string
	}{
		{name: "set", conf: "fields: {properties.src: import, a: {x: 1}, n: 2.5}", want: []string{
			`a={"x":1} b=true j={"k":1} t=2024-01-01T00:00:00Z n=2.5 properties.src=import`,
			`a={"x":1} b=no j={ t=2024-01-01 n=2.5 properties.src=import`,
			`a={"x":1} b=1 j=[] t=2024-01-01T00:00:00.5+01:00 n=2.5 properties.src=import`}},
		{name: "rename", conf: "fields: {a: userId, n: properties.n}", want: []string{
			`userId=1 b=true j={"k":1} t=2024-01-01T00:00:00Z properties.n=1`,
			`userId=x b=no j={ t=2024-01-01 properties.n=2`,
			`b=1 j=[] t=2024-01-01T00:00:00.5+01:00 properties.n=3`}},
		{name: "rename missing", conf: "fields: {aa: x}", err: `rename: column "aa" is not in the data (did you mean "a"?)`},
		{name: "cast int and string", conf: "fields: {a: int64, n: string}", want: []string{
			`a=1 b=true j={"k":1} t=2024-01-01T00:00:00Z n=1`, `b=1 j=[] t=2024-01-01T00:00:00.5+01:00 n=3`},
			rejects: []string{`1:a:a: "x" is not a valid int64`}},
		{name: "cast bool json timestamp", conf: "fields: {b: bool, j: json, t: timestamp}", want: []string{
			`a=1 b=true j={"k":1} t=2024-01-01 00:00:00Z n=1`, `b=true j=[] t=2023-12-31 23:00:00.5Z n=3`},
			rejects: []string{`1:b:b: "no" is not a valid bool`}},
		{name: "cast timestamp, a date", conf: "fields: {t: timestamp}", want: []string{
			`a=1 b=true j={"k":1} t=2024-01-01 00:00:00Z n=1`, `a=x b=no j={ t=2024-01-01 00:00:00Z n=2`,
			`b=1 j=[] t=2023-12-31 23:00:00.5Z n=3`}},
		{name: "cast non-string", conf: "fields: {n: float64}", err: `cast: column "n" is int64; cast converts strings`},
		{name: "cast same type", conf: "fields: {n: int64, a: float64}", want: []string{
			`a=1 b=true j={"k":1} t=2024-01-01T00:00:00Z n=1`, `b=1 j=[] t=2024-01-01T00:00:00.5+01:00 n=3`},
			rejects: []string{`1:a:a: "x" is not a valid float64`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.SplitN(tt.name, " ", 2)[0]
			b := applyTransform(t, name, tt.conf, tt.err, cols...)
			if b == nil {
				return
			}
			got := rows(b)
			if !equalStrings(reasons(b), tt.rejects) {
				t.Errorf("rejects = %q\nwant      %q", reasons(b), tt.rejects)
			}
			if !equalStrings(got, tt.want) {
				t.Errorf("rows = %q\nwant   %q", got, tt.want)
			}
			if name == "cast" && strings.Contains(tt.conf, "json") && !record.IsJSON(b.Record.Column(2).DataType()) {
				t.Errorf("j is %s", b.Record.Column(2).DataType())
			}
		})
	}
}

func TestColumnsConfigErrors(t *testing.T) {
	for _, tt := range []struct{ name, conf, want string }{
		{"set", "fields: {a: null}", "a: a constant must not be null"},
		{"set", "fields: {}", "set sets nothing"},
		{"rename", "fields: {a: x, b: x}", "b: the new name is empty or used twice"},
		{"cast", "fields: {a: integer}", `"integer" is not an allowed value`},
		{"cast", "fields: {}", "cast converts nothing"},
	} {
		_, err := buildTransform(memory.DefaultAllocator, tt.name, tt.conf)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "test.yaml:") {
			t.Errorf("%s %q: error = %v, want %q", tt.name, tt.conf, err, tt.want)
		}
	}
	r := mustTransform(t, memory.DefaultAllocator, "rename", "fields: {user_id: userId}")
	if got := r.(pipeline.Projector).Requires(pipeline.Columns{Names: []string{"userId", "x"}}); fmt.Sprint(got) != "{false [user_id x]}" {
		t.Errorf("rename Requires = %v", got)
	}
}
