package postgres

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	_ "github.com/backfillhq/backfill/transforms" // the configs' transforms
)

// Mistakes are reported when the pipeline loads, before any connection.
func TestConfigErrors(t *testing.T) {
	for body, want := range map[string]string{
		"url: postgres://h/db":                                                                                       "set table (schema.table) or query",
		"url: postgres://h/db\ntable: a\nquery: SELECT 1":                                                            "not both",
		"url: postgres://h/db\ntable: a\nparams: [1]":                                                                "params go with query",
		"url: postgres://h/db\nquery: SELECT 1\nsplit_by: id":                                                        "split_by cuts a table",
		"url: postgres://h/db\nhost: x\ntable: a":                                                                    "set url or host",
		"url: postgres://h/db\ntable: a\nunload: {s3: s3://b/p}":                                                     "unload is Redshift's",
		"dialect: redshift\nurl: postgres://h/db\ntable: a\nstream: copy":                                            "no COPY TO STDOUT",
		"url: mysql://h/db\ntable: a":                                                                                "url must be postgres://",
		"url: postgres://h/db\ntable: a.b.c":                                                                         "is not schema.table",
		"url: postgres://h/db\ntable: a\ntimezone: Mars/Olympus":                                                     "unknown time zone",
		"url: postgres://h/db\ntable: a\ncursor: {}":                                                                 "cursor needs a column",
		"dialect: redshift\nurl: postgres://h/db\ntable: a\nunload: {s3: bucket}":                                    "s3://bucket/prefix/",
		"dialect: redshift\nurl: postgres://h/db\ntable: a\nunload: {s3: s3://b/p, iam_role: r, max_file_size: big}": "max_file_size",
		"url: postgres://h/db\nquery: SELECT $1\nparams: [{a: 1}]":                                                   "must be a string",
		"url: postgres://h/db\ntable: a\nnumeric: exact":                                                             "one of",
	} {
		conf, err := load(body)
		if err == nil {
			_, err = New(conf, &pipeline.Env{Name: "x", State: pipeline.NewMemoryState(nil, nil)})
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	conf, _ := load("url: postgres://h/db\ntable: a")
	if _, err := New(conf, &pipeline.Env{Name: "x", Shards: 2, State: pipeline.NewMemoryState(nil, nil)}); err == nil ||
		!strings.Contains(err.Error(), "cannot be sharded") {
		t.Errorf("sharded: %v", err)
	}
}

// The shipped example pipelines load and build (offline).
func TestExampleConfigs(t *testing.T) {
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	for _, p := range config.Default.All() {
		if p.Kind == config.TransformKind {
			reg.Register(*p)
		}
	}
	for _, sink := range []string{"file", "segment"} {
		reg.Register(acktest.DiscardPlugin(sink, config.NewSpec("stand-in", config.String("path", "").Optional(), config.String("endpoint", "").Optional(),
			config.String("write_key", "").Optional().Secret(), config.Any("request", "").Optional())))
	}
	for _, name := range []string{"postgres-events.yaml", "redshift-unload.yaml"} {
		cfg, err := config.LoadFile(filepath.Join("..", "..", "configs", name), config.LoadOptions{
			Registry: reg, LookupEnv: func(string) (string, bool) { return "", false }, SecretsOptional: true,
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := New(cfg.Source.Conf, &pipeline.Env{Name: cfg.Name, State: pipeline.NewMemoryState(nil, nil)}); err != nil {
			t.Errorf("%s: source: %v", name, err)
		}
	}
	for _, p := range Plugins() {
		if err := p.CheckExamples(); err != nil {
			t.Error(err)
		}
	}
}

// validate --source names the relation's columns from the server.
func TestPeekColumns(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE p (id int, "Mixed Case" text)`)
	src := d.source(t, newEnv(t), "table: p")
	names, where, err := src.PeekColumns(context.Background())
	if err != nil || strings.Join(names, ",") != "id,Mixed Case" || where != "table p" || !src.PeekRemote() {
		t.Fatalf("%v %q %v", names, where, err)
	}
}
