package config_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	_ "github.com/backfillhq/backfill/internal/plugins"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// fuzzEnv is the environment of FuzzLoad: a few variables set, one set
// empty; the fuzzer adds its own.
func fuzzEnv(extra string) func(string) (string, bool) {
	m := map[string]string{"SEGMENT_WRITE_KEY": "wk", "BUCKET": "acme", "N": "4", "EMPTY": "", "DOLLAR": "$$", "REF": "${N}"}
	for _, kv := range strings.Split(extra, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// fileLevel are the codes of errors about a whole file, which may have no
// line: it cannot be read, or it is empty.
func fileLevel(e *config.ConfigError) bool {
	return e.Code == config.CodeUnreadable || e.Code == config.CodeSyntax && e.Msg == "the pipeline file is empty"
}

// FuzzLoad loads arbitrary pipeline files, YAML and ${VAR} references,
// against the registry of the real plugins, and checks: Load returns a
// pipeline or errors, not both, never panics or hangs; each error has a
// code, a message, and a line and column in the file, unless it is about
// the whole file; errors come in file order, the same on every load; and
// a pipeline it returns has a valid name, a source and a sink, and
// transforms and file plugins whose constructors return a plugin or
// errors positioned the same way.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "", false)
		f.Add(data, "SEGMENT_WRITE_KEY=", true)
	}
	for _, s := range []string{
		"name: x\nsource:\n  s3:\n    bucket: acme\n    prefx: exports/\ntransforms:\n  - stirp: {}\nsink:\n  segment:\n    write_key: ${SEGMENT_WRITE_KEY}\n",
		"name: x\nsource: {file: {path: 'a/*.csv', csv: {delimiter: '|', null: '', columns: {n: int64}}}}\nsink: {file: {path: out.ndjson}}\nworkers: ${N}\n",
		"name: x\nsource: {file: {path: d.txt, max_line_bytes: 4096, csv: {postgres_text: true, header: false}}}\ntransforms:\n  - filter: {expr: 'event == \"A\" && properties.total > 1', after: 2024-01-01}\n  - expand: {column: message, keep: [_key]}\nsink: {file: {path: o}}\n",
		"name: ${NAME:-a$$b}\nsource: &s {file: {path: ${MISSING}}}\nsink: *s\n",
		"a: [1, {b: 2\n",
		"\tname: x\n",
		"name: 'open\n",
		"---\n---\n",
		"",
		"# only a comment\n",
		"name: x\nsource: {file: {path: a.ndjson}}\ntransforms: [strip, {map: {type: track, event: e}}, {timestamp: {field: timestamp}}]\nsink: {segment: {write_key: k, request: {rate_limit: 10}}}\nmax_rejects: 5%\non_error: stop\n",
		"x: &a [*a]\n",
		"x: &a [1,2]\ny: [*a, *a, *a]\nz: [*y, *y]\n",
	} {
		f.Add([]byte(s), "NAME=n", false)
	}
	f.Fuzz(func(t *testing.T, data []byte, env string, secretsOptional bool) {
		if len(data) > 16<<10 {
			return
		}
		opts := config.LoadOptions{LookupEnv: fuzzEnv(env), SecretsOptional: secretsOptional}
		cfg, err := load(data, opts)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("pipeline %v and error %v", cfg != nil, err)
		}
		if err != nil {
			ces, ok := err.(config.ConfigErrors)
			if !ok || len(ces) == 0 {
				t.Fatalf("error of type %T: %v", err, err)
			}
			checkErrors(t, ces)
			_, again := load(data, opts)
			if again == nil || again.Error() != err.Error() {
				t.Fatalf("a second load says\n%v\nthe first said\n%v", again, err)
			}
			return
		}
		if cfg.Name == "" || cfg.Source == nil || cfg.Sink == nil || cfg.BatchRows <= 0 || cfg.Workers <= 0 {
			t.Fatalf("loaded %+v", cfg)
		}
		checkErrors(t, cfg.Warnings)
		build(t, cfg)
	})
}

func load(data []byte, opts config.LoadOptions) (cfg *config.Pipeline, err error) {
	timer := time.AfterFunc(time.Minute, func() { panic(fmt.Sprintf("loading %q takes over a minute", data)) })
	defer timer.Stop()
	return config.Load("p.yaml", data, opts)
}

func checkErrors(t *testing.T, ces config.ConfigErrors) {
	t.Helper()
	for i, e := range ces {
		if e.Code == "" || e.Msg == "" || e.File != "p.yaml" {
			t.Fatalf("error without a code, a message or the file: %#v", e)
		}
		if (e.Line <= 0 || e.Col <= 0) && !fileLevel(e) {
			t.Fatalf("error without a position: %#v", e)
		}
		if e.Path != "" && !strings.HasPrefix(e.Path, "/") {
			t.Fatalf("path %q is not a JSON pointer: %v", e.Path, e)
		}
		if i > 0 && (e.Line < ces[i-1].Line || e.Line == ces[i-1].Line && e.Col < ces[i-1].Col) {
			t.Fatalf("errors out of order:\n%v", ces)
		}
	}
}

// build runs the constructors that read only the config (transforms, the
// file source and sink); the others may look for credentials.
func build(t *testing.T, cfg *config.Pipeline) {
	env := &pipeline.Env{Name: cfg.Name, Version: "fuzz", Alloc: memory.NewGoAllocator(), Logger: slog.New(slog.DiscardHandler),
		State: pipeline.NewMemoryState(nil, nil)}
	check := func(what string, err error) {
		if err == nil {
			return
		}
		for _, e := range config.AsConfigErrors(err) {
			if e.Line <= 0 && !fileLevel(e) {
				t.Fatalf("%s: error without a position: %#v", what, e)
			}
		}
	}
	for i, tc := range cfg.Transforms {
		p, ok := config.Default.Lookup(config.TransformKind, tc.Name)
		if !ok {
			t.Fatalf("transform %q loaded but not registered", tc.Name)
		}
		tr, err := p.NewTransform(tc.Conf, env)
		check(fmt.Sprintf("transform #%d %s", i+1, tc.Name), err)
		if (tr == nil) == (err == nil) {
			t.Fatalf("transform #%d %s: %v and %v", i+1, tc.Name, tr, err)
		}
	}
	if cfg.Source.Name == "file" {
		p, _ := config.Default.Lookup(config.SourceKind, "file")
		src, err := p.NewSource(cfg.Source.Conf, env)
		check("source file", err)
		if (src == nil) == (err == nil) {
			t.Fatalf("source file: %v and %v", src, err)
		}
	}
	if cfg.Sink.Name == "file" {
		p, _ := config.Default.Lookup(config.SinkKind, "file")
		sink, err := p.NewSink(cfg.Sink.Conf, env)
		check("sink file", err)
		if (sink == nil) == (err == nil) {
			t.Fatalf("sink file: %v and %v", sink, err)
		}
	}
}
