package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/transforms"
)

// peekSource names its columns without rows, remotely or not.
type peekSource struct {
	names  []string
	remote bool
	err    error
	peeks  int
}

func (s *peekSource) Splits(context.Context) ([]pipeline.Split, error) { return nil, nil }
func (s *peekSource) Open(context.Context, pipeline.Split, pipeline.ReadOptions) (pipeline.RecordReader, error) {
	return nil, errors.New("not read")
}
func (s *peekSource) PeekColumns(context.Context) ([]string, string, error) {
	s.peeks++
	return s.names, "the data file", s.err
}
func (s *peekSource) PeekRemote() bool { return s.remote }

// plainSource cannot name its columns.
type plainSource struct{ peekSource }

func (s *plainSource) PeekColumns() {}

func buildWith(t *testing.T, src pipeline.Source, transforms string) *engine.Built {
	t.Helper()
	reg := config.NewRegistry()
	for _, p := range config.Default.All() {
		if p.Kind != config.SourceKind {
			reg.Register(*p)
		}
	}
	reg.Register(config.SourcePlugin("peek", config.NewSpec("test"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) { return src, nil }))
	doc := "name: p\nsource: {peek: {}}\nsink: {file: {path: out.ndjson}}\ntransforms:\n" + transforms
	cfg, err := config.Load("p.yaml", []byte(doc), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	b, err := engine.Build(cfg, &pipeline.Env{Name: "p"}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background(), nil) })
	return b
}

// The columns checked are the projection, exactly the source columns the
// pipeline reads: a missing one is blamed on the first transform reading
// it (amont: filter, not map), a column an earlier transform makes is not
// looked for in the data (customer_id, renamed from cust), and neither is
// a message path after map (timestamp, userId).
func TestCheckColumnsBlamesTheFirstReader(t *testing.T) {
	src := &peekSource{names: []string{"id", "customer_id", "created_at", "amount"}}
	b := buildWith(t, src, `  - rename: {fields: {cust: customer_id}}
  - filter: {expr: 'customer_id != nil && amont > 0'}
  - map: {type: track, event: {const: x}, userId: customer_id, timestamp: created, properties: {total: amont}}
  - timestamp: {field: timestamp}
  - message_id: {key: [userId, properties.total]}
`)
	c, err := engine.CheckColumns(context.Background(), b, false)
	ces := config.AsConfigErrors(err)
	got := make([]string, len(ces))
	for i, e := range ces {
		got[i] = e.Error()
	}
	want := []string{
		`p.yaml:5:23: /transforms/0/rename/fields/cust: column "cust" is not in the data file (did you mean "customer_id"?)`,
		`p.yaml:6:43: /transforms/1/filter/expr: column "amont" is not in the data file (did you mean "amount"?)`,
		`p.yaml:7:75: /transforms/2/map/timestamp: column "created" is not in the data file (did you mean "created_at"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c.Where != "the data file" || c.Skipped != "" || strings.Join(c.Columns, ",") != "amont,created,cust" {
		t.Fatalf("check %+v", c)
	}
}

// What is not checked, and why: every column read, a source that cannot
// peek, a remote peek not allowed, a peek that fails.
func TestCheckColumnsSkips(t *testing.T) {
	ctx := context.Background()
	mapping := "  - map: {type: track, event: {const: x}, userId: uid}\n"

	all := buildWith(t, &peekSource{}, "  - map: {type: track, event: {const: x}, userId: uid, properties: \"*\"}\n")
	if c, err := engine.CheckColumns(ctx, all, true); err != nil || !strings.Contains(c.Skipped, "every column") {
		t.Fatalf("all: %+v %v", c, err)
	}
	if c, err := engine.CheckColumns(ctx, buildWith(t, &plainSource{}, mapping), true); err != nil || !strings.Contains(c.Skipped, "cannot name") {
		t.Fatalf("no peeker: %+v %v", c, err)
	}
	remote := &peekSource{remote: true}
	b := buildWith(t, remote, mapping)
	if c, err := engine.CheckColumns(ctx, b, false); err != nil || !c.Remote || remote.peeks != 0 {
		t.Fatalf("remote: %+v %v, %d peeks", c, err, remote.peeks)
	}
	if _, err := engine.CheckColumns(ctx, b, true); len(config.AsConfigErrors(err)) != 1 || remote.peeks != 1 {
		t.Fatalf("remote allowed: %v, %d peeks", err, remote.peeks)
	}
	failing := &peekSource{err: errors.New("no such file")}
	c, err := engine.CheckColumns(ctx, buildWith(t, failing, mapping), false)
	if err == nil || len(config.AsConfigErrors(err)) != 0 || !strings.Contains(c.Skipped, "no such file") {
		t.Fatalf("failing peek: %+v %v", c, err)
	}
	// timestamp with on_missing: now does without its column: not an error.
	ok := &peekSource{names: []string{"uid"}}
	if _, err := engine.CheckColumns(ctx, buildWith(t, ok, "  - timestamp: {field: ts, on_missing: now}\n"+mapping), false); err != nil {
		t.Fatalf("on_missing now: %v", err)
	}
}
