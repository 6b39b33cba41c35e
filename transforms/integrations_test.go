package transforms

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

func TestIntegrations(t *testing.T) {
	tests := []struct {
		name    string
		conf    string
		cols    []col
		want    []string
		rejects []string
		err     string
	}{
		{name: "replace, file order kept", conf: "destinations: {All: false, Amplitude: true, Warehouses: {all: false}}",
			cols: []col{{"type", str, `["track","track"]`}, {"integrations", record.JSON, `["{\"Mixpanel\":true}",null]`}},
			want: []string{`type=track integrations={"All":false,"Amplitude":true,"Warehouses":{"all":false}}`,
				`type=track integrations={"All":false,"Amplitude":true,"Warehouses":{"all":false}}`}},
		{name: "written as Segment writes it", conf: "All: false\nVero: true\nWarehouses: {all: false}",
			cols: []col{{"type", str, `["track"]`}},
			want: []string{`type=track integrations={"All":false,"Vero":true,"Warehouses":{"all":false}}`}},
		{name: "both shapes together", conf: "mode: merge\nAll: false\ndestinations: {Vero: true}",
			cols: []col{{"type", str, `["track"]`}},
			want: []string{`type=track integrations={"Vero":true,"All":false}`}},
		{name: "merge with data", conf: "mode: merge\ndestinations: {Amplitude: {session_id: 1}, All: false}",
			cols: []col{{"integrations", record.JSON, `["{\"Mixpanel\":true,\"All\":true}",null,"[1]","{bad"]`}},
			want: []string{`integrations={"Mixpanel":true,"Amplitude":{"session_id":1},"All":false}`,
				`integrations={"Amplitude":{"session_id":1},"All":false}`},
			rejects: []string{`2:integrations:integrations: "[1]" is not a JSON object`, `3:integrations:integrations: "{bad" is not a JSON object`}},
		{name: "merge: spacing kept, replaced keys dropped, empty objects", conf: "from_column: d\ndestinations: {All: false}",
			cols: []col{{"d", record.JSON, `["{ \"All\" : true , \"x\" : 1 }","{\"All\":true}","{}","{\"y\":[1,{\"All\":1}]}"]`}},
			want: []string{`d={ "All" : true , "x" : 1 } integrations={"x" : 1,"All":false}`, `d={"All":true} integrations={"All":false}`,
				`d={} integrations={"All":false}`, `d={"y":[1,{"All":1}]} integrations={"y":[1,{"All":1}],"All":false}`}},
		{name: "merge with many keys", conf: "from_column: d\ndestinations: {A: true, B: true, C: true, D: true, E: true, F: true, G: true, H: true, I: true}",
			cols: []col{{"d", str, `["{\"I\":false,\"J\":false}"]`}},
			want: []string{`d={"I":false,"J":false} integrations={"J":false,"A":true,"B":true,"C":true,"D":true,"E":true,"F":true,"G":true,"H":true,"I":true}`}},
		{name: "merge without a column in the data", conf: "mode: merge\ndestinations: {All: false}",
			cols: []col{{"type", str, `["track"]`}},
			want: []string{`type=track integrations={"All":false}`}},
		{name: "from_column string", conf: "from_column: dest\ndestinations: {Warehouses: {all: false}}",
			cols: []col{{"dest", str, `["{\"Braze\":true}",""]`}},
			want: []string{`dest={"Braze":true} integrations={"Braze":true,"Warehouses":{"all":false}}`, `dest= integrations={"Warehouses":{"all":false}}`}},
		{name: "from_column missing", conf: "from_column: dst", cols: []col{{"dest", str, `["{}"]`}},
			err: `column "dst" is not in the data (did you mean "dest"?)`},
		{name: "from_column not text", conf: "from_column: dest", cols: []col{{"dest", i64, `[1]`}},
			err: `column "dest" is int64; want JSON text`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := applyTransform(t, "integrations", tt.conf, tt.err, tt.cols...)
			if b == nil {
				return
			}
			if !equalStrings(rows(b), tt.want) {
				t.Errorf("rows = %q\nwant   %q", rows(b), tt.want)
			}
			if !equalStrings(reasons(b), tt.rejects) {
				t.Errorf("rejects = %q\nwant      %q", reasons(b), tt.rejects)
			}
		})
	}
}

func TestIntegrationsConfig(t *testing.T) {
	tests := []struct{ conf, err, warn string }{
		{conf: "destinations: {Amplitude: yes please}", err: "Amplitude: want true, false or an options object, got yes please"},
		{conf: "destinations: {A: 1, B: [x]}", err: "B: want true"},
		{conf: "mode: merge", err: "integrations needs destinations or from_column"},
		{conf: "destinations: {}", err: "destinations is empty"},
		{conf: "Vero: true\ndestinations: {Vero: false}", err: "Vero is set twice"},
		{conf: "Amplitude: maybe", err: "Amplitude: want true, false or an options object"},
		{conf: "destinations: {all: false}", warn: `\"all\" is not a destination name Segment knows; did you mean \"All\"?`},
		{conf: "destinations: {Amplitdue: true}", warn: `did you mean \"Amplitude\"?`},
		{conf: "destinations: {Warehouses: {All: false}}", warn: `Warehouses takes \"all\" in lower case`},
		{conf: "destinations: {My Custom Webhook 7: true, All: false}"},
	}
	for _, tt := range tests {
		t.Run(tt.conf, func(t *testing.T) {
			var logs bytes.Buffer
			tr, err := buildTransformEnv(memory.DefaultAllocator, "integrations", tt.conf, slog.New(slog.NewTextHandler(&logs, nil)))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "test.yaml:") {
					t.Fatalf("error = %v, want %q at a position", err, tt.err)
				}
				return
			}
			if err != nil || tr == nil {
				t.Fatal(err)
			}
			if tt.warn == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.warn) {
				t.Errorf("logs = %q, want %q", logs.String(), tt.warn)
			}
			if tt.warn != "" && !strings.Contains(logs.String(), "test.yaml:") {
				t.Errorf("warning without position: %s", logs.String())
			}
		})
	}
}

func TestIntegrationsRequires(t *testing.T) {
	for conf, want := range map[string]string{
		"destinations: {All: false}":                 "{false [type]}",
		"mode: merge\ndestinations: {All: false}":    "{false [integrations type]}",
		"from_column: d\ndestinations: {All: false}": "{false [d type]}",
	} {
		tr := mustTransform(t, memory.DefaultAllocator, "integrations", conf)
		got := tr.(pipeline.Projector).Requires(pipeline.Columns{Names: []string{"type", "integrations"}})
		if fmt.Sprint(got) != want {
			t.Errorf("%q: Requires = %v, want %s", conf, got, want)
		}
	}
}
