package config

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
)

// testRegistry has small plugins with the field kinds the loader handles.
func testRegistry() *Registry {
	reg := NewRegistry()
	reg.Register(SourcePlugin("s3", NewSpec("test s3",
		String("bucket", "the bucket").Example("acme"),
		String("prefix", "key prefix").Default(""),
		String("format", "file format").Default("").Enum("", "parquet", "csv", "ndjson"),
		Int("max_keys", "page size").Default(1000),
		Duration("timeout", "per request").Default(0),
		Strings("keys", "explicit keys").Optional(),
	), func(c *Conf, env *pipeline.Env) (pipeline.Source, error) {
		if c.Int("max_keys") > 1000 {
			return nil, c.Errorf("max_keys", "max_keys %d is over S3's 1000", c.Int("max_keys"))
		}
		return stubSource{}, nil
	}))
	reg.Register(TransformPlugin("strip", NewSpec("test strip",
		Strings("fields", "paths to remove").Optional(),
		String("preset", "a preset").Optional().Enum("segment-replay"),
	), func(c *Conf, env *pipeline.Env) (pipeline.Transform, error) { return nopTransform{}, nil }))
	reg.Register(SinkPlugin("segment", NewSpec("test segment",
		String("write_key", "the source's write key").Secret(),
		Bool("gzip", "compress").Default(true),
		Object("batch", "batching",
			Int("max_events", "per request").Default(2500),
		),
	), func(c *Conf, env *pipeline.Env) (pipeline.Sink, error) { return stubSink{}, nil }))
	return reg
}

type nopTransform struct{}

type stubSource struct{}

func (stubSource) Splits(context.Context) ([]pipeline.Split, error) { return nil, nil }
func (stubSource) Open(context.Context, pipeline.Split, pipeline.ReadOptions) (pipeline.RecordReader, error) {
	return nil, nil
}

type stubSink struct{}

func (stubSink) Open(context.Context) error                   { return nil }
func (stubSink) Write(context.Context, *pipeline.Batch) error { return nil }
func (stubSink) Close(context.Context) error                  { return nil }

func (nopTransform) Apply(context.Context, *pipeline.Batch) error { return nil }

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadValid(t *testing.T) {
	src := `
name: orders-2024
source:
  s3: {bucket: acme, prefix: "exports/", format: parquet, timeout: 30s}
transforms:
  - strip: {preset: segment-replay}
  - strip
sink:
  segment:
    write_key: ${KEY}
    batch:
      max_events: ${MAX:-500}
workers: 3
max_rejects: 2%
`
	cfg, err := Load("p.yaml", []byte(src), LoadOptions{Registry: testRegistry(), LookupEnv: env("KEY", "sekret")})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "orders-2024" || cfg.Workers != 3 || cfg.Source.Name != "s3" || len(cfg.Transforms) != 2 {
		t.Fatalf("unexpected config %+v", cfg)
	}
	if got := cfg.Source.Conf.String("prefix"); got != "exports/" {
		t.Errorf("prefix = %q", got)
	}
	if got := cfg.Source.Conf.Int("max_keys"); got != 1000 {
		t.Errorf("default max_keys = %d", got)
	}
	if got := cfg.Sink.Conf.String("write_key"); got != "sekret" {
		t.Errorf("write_key from env = %q", got)
	}
	if got := cfg.Sink.Conf.Object("batch").Int("max_events"); got != 500 {
		t.Errorf("env default re-typed as int: got %d", got)
	}
	if !cfg.Sink.Conf.Bool("gzip") {
		t.Error("default gzip should be true")
	}
	if cfg.MaxRejects == nil || cfg.MaxRejects.Fraction != 0.02 {
		t.Errorf("max_rejects = %+v", cfg.MaxRejects)
	}
	if cfg.State != ".backfill/state" || cfg.OnError != OnErrorDeadLetter || cfg.BatchRows != 8192 {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	type want struct {
		pos, code, msg string
	}
	cases := []struct {
		name string
		yaml string
		env  []string
		want []want
	}{
		{
			name: "several errors at once, in file order",
			yaml: `name: x
source:
  s3:
    bucket: acme
    prefx: exports/
    max_keys: many
transforms:
  - stirp: {}
sink:
  segment:
    write_key: ${SEGMENT_WRITE_KEY}
worker: 4
`,
			want: []want{
				{"5:5", "unknown_field", `/source/s3/prefx: unknown field "prefx" (did you mean "prefix"?)`},
				{"6:15", "wrong_type", `/source/s3/max_keys: expected an integer, got a string`},
				{"8:5", "unknown_plugin", `unknown transform "stirp" (did you mean "strip"?)`},
				{"11:16", "unset_env", `environment variable SEGMENT_WRITE_KEY is not set (export SEGMENT_WRITE_KEY, or write ${SEGMENT_WRITE_KEY:-default})`},
				{"12:1", "unknown_field", `unknown field "worker" (did you mean "workers"?)`},
			},
		},
		{
			name: "missing required fields",
			yaml: `source:
  s3: {}
sink: {segment: {write_key: k}}
`,
			want: []want{
				{"1:1", "required", `missing required field "name"`},
				{"2:7", "required", `/source/s3/bucket: missing required field "bucket"`},
			},
		},
		{
			name: "enum near miss and bad duration",
			yaml: `name: x
source: {s3: {bucket: b, format: parquett, timeout: 30}}
sink: {segment: {write_key: k}}
on_error: stopp
`,
			want: []want{
				{"2:34", "invalid_value", `"parquett" is not an allowed value (did you mean "parquet"?`},
				{"2:53", "invalid_value", `"30" is not a duration`},
				{"4:11", "invalid_value", `"stopp" is not an allowed value (did you mean "stop"?`},
			},
		},
		{
			name: "plugin item with two keys, unknown sink, wrong types",
			yaml: `name: x
source:
  s3: {bucket: b}
  file: {path: x}
transforms: {strip: {}}
sink: {segmnt: {}}
workers: -1
`,
			want: []want{
				{"3:3", "one_key", `a source is an object with exactly one key`},
				{"5:13", "wrong_type", `/transforms: expected a list, got an object`},
				{"6:8", "unknown_plugin", `unknown sink "segmnt" (did you mean "segment"?)`},
				{"7:10", "invalid_value", `/workers: must not be negative`},
			},
		},
		{
			name: "bad name and max_rejects",
			yaml: `name: "orders 2024/all"
source: {s3: {bucket: b}}
sink: {segment: {write_key: k}}
max_rejects: lots
`,
			want: []want{
				{"1:7", "invalid_value", `may hold only letters`},
				{"4:14", "invalid_value", `neither a count, a percentage`},
			},
		},
		{
			// A zero interval used to reach time.NewTicker and panic.
			name: "checkpoint durations",
			yaml: `name: x
source: {s3: {bucket: b}}
sink: {segment: {write_key: k}}
checkpoint_interval: 0s
checkpoint_failure_timeout: -1m
`,
			want: []want{
				{"4:22", "invalid_value", `/checkpoint_interval: must be positive`},
				{"5:29", "invalid_value", `/checkpoint_failure_timeout: must not be negative`},
			},
		},
		{
			name: "syntax error has a line",
			yaml: "name: x\nsource: [\n",
			want: []want{{"3:1", "syntax", ""}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("p.yaml", []byte(tc.yaml), LoadOptions{Registry: testRegistry(), LookupEnv: env(tc.env...)})
			if err == nil {
				t.Fatal("expected errors")
			}
			got := AsConfigErrors(err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				g := got[i]
				if pos := fmt.Sprintf("%d:%d", g.Line, g.Col); w.pos != "" && pos != w.pos && !(w.code == "syntax" && g.Line > 0) {
					t.Errorf("error %d at %s, want %s: %v", i, pos, w.pos, g)
				}
				if g.Code != w.code {
					t.Errorf("error %d code %q, want %q: %v", i, g.Code, w.code, g)
				}
				if !strings.Contains(g.Error(), w.msg) {
					t.Errorf("error %d = %q, want it to contain %q", i, g.Error(), w.msg)
				}
				if !strings.HasPrefix(g.Error(), "p.yaml:") {
					t.Errorf("error %d does not name the file: %q", i, g.Error())
				}
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	src := "name: x\nsource: {s3: {bucket: b}}\nsink: {segment: {write_key: [${KEY}]}}\n"
	_, err := Load("p.yaml", []byte(src), LoadOptions{Registry: testRegistry(), LookupEnv: env("KEY", "topsecret")})
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("want an error without the secret, got %v", err)
	}
}

func TestRegistryDuplicatePanics(t *testing.T) {
	reg := NewRegistry()
	spec := NewSpec("x")
	ctor := func(*Conf, *pipeline.Env) (pipeline.Transform, error) { return nopTransform{}, nil }
	reg.Register(TransformPlugin("t", spec, ctor))
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate registration did not panic")
		}
	}()
	reg.Register(TransformPlugin("t", spec, ctor))
}

func TestParseMaxRejects(t *testing.T) {
	for in, want := range map[string]MaxRejects{"10": {Count: 10}, "0": {}, "2.5%": {Fraction: 0.025}, DefaultMaxRejects: {Fraction: 0.1}} {
		got, err := ParseMaxRejects(in)
		if err != nil || got == nil || *got != want {
			t.Errorf("%q: got %+v, %v", in, got, err)
		}
	}
	if got, err := ParseMaxRejects("none"); got != nil || err != nil {
		t.Errorf("none: got %+v, %v; want no budget", got, err)
	}
	for _, bad := range []string{"", "x", "-1", "120%"} {
		if _, err := ParseMaxRejects(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestObjectWithExtraKeys(t *testing.T) {
	reg := testRegistry()
	reg.Register(TransformPlugin("integrations", NewSpec("test",
		String("mode", "replace or merge").Default("replace").Enum("replace", "merge"),
	).WithExtra(Any("", "a destination: true, false or options")),
		func(c *Conf, env *pipeline.Env) (pipeline.Transform, error) { return nopTransform{}, nil }))
	src := "name: x\nsource: {s3: {bucket: b}}\ntransforms:\n  - integrations: {All: false, Vero: true, mode: merge, Warehouses: {all: false}}\nsink: {segment: {write_key: k}}\n"
	cfg, err := Load("p.yaml", []byte(src), LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Transforms[0].Conf
	var keys []string
	for _, e := range c.Extra() {
		keys = append(keys, e.Key)
	}
	if c.String("mode") != "merge" || strings.Join(keys, ",") != "All,Vero,Warehouses" {
		t.Fatalf("mode %q, extra %v", c.String("mode"), keys)
	}
	// A near miss of an option in another case is caught, not taken.
	src = strings.Replace(src, "mode: merge", "Mode: merge", 1)
	_, err = Load("p.yaml", []byte(src), LoadOptions{Registry: reg})
	if ces := AsConfigErrors(err); len(ces) != 1 || !strings.Contains(ces[0].Error(), `did you mean "mode"?`) {
		t.Fatalf("got %v", err)
	}
}
