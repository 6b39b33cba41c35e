package transforms

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

type stubSource struct{}

func (stubSource) Splits(context.Context) ([]pipeline.Split, error) { return nil, nil }
func (stubSource) Open(context.Context, pipeline.Split, pipeline.ReadOptions) (pipeline.RecordReader, error) {
	return nil, nil
}

type stubSink struct{}

func (stubSink) Write(context.Context, *pipeline.Batch) error { return nil }
func (stubSink) Open(context.Context) error                   { return nil }
func (stubSink) Close(context.Context) error                  { return nil }

// testRegistry holds a stub source and sink and this package's transforms.
func testRegistry() *config.Registry {
	reg := config.NewRegistry()
	reg.Register(config.SourcePlugin("stub", config.NewSpec("stub"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) {
		return stubSource{}, nil
	}))
	reg.Register(config.SinkPlugin("stub", config.NewSpec("stub"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) {
		return stubSink{}, nil
	}))
	for _, p := range config.Default.All() {
		if p.Kind == config.TransformKind {
			reg.Register(*p)
		}
	}
	return reg
}

// buildTransform parses `name: body` as a pipeline's one transform and
// constructs it; body is the YAML of the config object.
func buildTransform(mem memory.Allocator, name, body string) (pipeline.Transform, error) {
	return buildTransformEnv(mem, name, body, slog.New(slog.DiscardHandler))
}

func buildTransformEnv(mem memory.Allocator, name, body string, logger *slog.Logger) (pipeline.Transform, error) {
	var ind strings.Builder
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		ind.WriteString("      " + l + "\n")
	}
	doc := fmt.Sprintf("name: test\nsource: {stub: {}}\nsink: {stub: {}}\ntransforms:\n  - %s:\n%s", name, ind.String())
	reg := testRegistry()
	cfg, err := config.Load("test.yaml", []byte(doc), config.LoadOptions{Registry: reg, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, err
	}
	pc := cfg.Transforms[0]
	p, _ := reg.Lookup(config.TransformKind, pc.Name)
	return p.NewTransform(pc.Conf, &pipeline.Env{Name: "test", Version: "dev", Alloc: mem, Logger: logger})
}

func mustTransform(t testing.TB, mem memory.Allocator, name, body string) pipeline.Transform {
	t.Helper()
	tr, err := buildTransform(mem, name, body)
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return tr
}

// col is one test column: a name, a type and its values as JSON.
type col struct {
	name string
	typ  arrow.DataType
	json string
}

// mkRecord builds a record from columns given as JSON arrays.
func mkRecord(t testing.TB, mem memory.Allocator, cols ...col) arrow.Record {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	arrs := make([]arrow.Array, len(cols))
	n := -1
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
		var arr arrow.Array
		var err error
		if record.IsJSON(c.typ) {
			arr = jsonArray(t, mem, c.json)
		} else {
			arr, _, err = array.FromJSON(mem, c.typ, strings.NewReader(c.json))
			if err != nil {
				t.Fatalf("column %s: %v", c.name, err)
			}
		}
		if n >= 0 && arr.Len() != n {
			t.Fatalf("column %s has %d rows, want %d", c.name, arr.Len(), n)
		}
		n = arr.Len()
		arrs[i] = arr
		defer arr.Release()
	}
	if n < 0 {
		n = 0
	}
	return array.NewRecord(arrow.NewSchema(fields, nil), arrs, int64(n))
}

// jsonArray builds a record.JSON column from a JSON list of JSON texts
// (strings) or nulls: `["{\"a\":1}", null]`.
func jsonArray(t testing.TB, mem memory.Allocator, list string) arrow.Array {
	t.Helper()
	s, _, err := array.FromJSON(mem, arrow.BinaryTypes.String, strings.NewReader(list))
	if err != nil {
		t.Fatalf("json column: %v", err)
	}
	defer s.Release()
	return array.NewExtensionArrayWithStorage(record.JSON, s)
}

// rows renders a batch's record as one string per row, "col=value" joined
// by spaces (nulls omitted), for table-driven comparisons.
func rows(b *pipeline.Batch) []string {
	if b.Record == nil {
		return nil
	}
	rec := b.Record
	out := make([]string, rec.NumRows())
	for i := range out {
		var parts []string
		for j, f := range rec.Schema().Fields() {
			c := rec.Column(j)
			if c.IsNull(i) {
				continue
			}
			if s, ok := c.(*record.JSONArray); ok {
				parts = append(parts, f.Name+"="+s.Value(i)) // JSONArray has no ValueStr
				continue
			}
			parts = append(parts, f.Name+"="+c.ValueStr(i))
		}
		out[i] = strings.Join(parts, " ")
	}
	return out
}

func columnNames(rec arrow.Record) []string {
	var out []string
	for _, f := range rec.Schema().Fields() {
		out = append(out, f.Name)
	}
	return out
}

// reasons lists a batch's rejects as "row:column:reason".
func reasons(b *pipeline.Batch) []string {
	var out []string
	for _, r := range b.Rejects {
		out = append(out, fmt.Sprintf("%d:%s:%s", r.Row, r.Column, r.Reason))
	}
	return out
}

// checkAccounting asserts every input row ended exactly once.
func checkAccounting(t testing.TB, b *pipeline.Batch) {
	t.Helper()
	if got := b.NumRows() + int64(len(b.Rejects)) + b.Filtered; got != b.End-b.Start {
		t.Errorf("rows kept %d + rejected %d + filtered %d != %d read", b.NumRows(), len(b.Rejects), b.Filtered, b.End-b.Start)
	}
}

// applyTransform runs transform name (config conf) over a batch of cols,
// with a checked allocator asserted empty when the test ends. When wantErr
// is set, Apply must fail with it and nil comes back; otherwise the batch
// comes back with its row accounting checked.
func applyTransform(t *testing.T, name, conf, wantErr string, cols ...col) *pipeline.Batch {
	t.Helper()
	mem := newMem(t)
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return apply(t, mem, mustTransform(t, mem, name, conf), wantErr, cols...)
}

// apply runs tr on a batch of cols and checks its row accounting; it
// returns nil when tr failed with wantErr, as wanted.
func apply(t *testing.T, mem memory.Allocator, tr pipeline.Transform, wantErr string, cols ...col) *pipeline.Batch {
	t.Helper()
	b := pipeline.NewBatch("s", 0, mkRecord(t, mem, cols...))
	t.Cleanup(b.Release)
	err := tr.Apply(context.Background(), b)
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want %q", err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	return b
}

func newMem(t testing.TB) *memory.CheckedAllocator {
	return memory.NewCheckedAllocator(memory.NewGoAllocator())
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
