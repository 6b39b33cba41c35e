package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
)

// collectSink keeps the rows it is given, as JSON, with their split and
// offset; stopAt cancels the run once that many rows arrived.
type collectSink struct {
	mu     sync.Mutex
	rows   []string
	keys   map[string]int // split/offset -> times delivered
	stopAt int
	stop   context.CancelFunc
}

func (c *collectSink) Open(context.Context) error { return nil }
func (c *collectSink) Write(ctx context.Context, b *pipeline.Batch) error {
	c.mu.Lock()
	for i := 0; i < int(b.NumRows()); i++ {
		c.rows = append(c.rows, string(pipeline.RowValues(b.Record, i)))
		c.keys[fmt.Sprintf("%s/%d", b.Split, b.Row(i))]++
	}
	n := len(c.rows)
	c.mu.Unlock()
	b.Ack(nil)
	b.Release()
	if c.stopAt > 0 && n >= c.stopAt && c.stop != nil {
		c.stop()
	}
	return nil
}
func (c *collectSink) Close(context.Context) error { return nil }

func (c *collectSink) ids(t *testing.T, field string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.rows {
		var m map[string]any
		json.Unmarshal([]byte(r), &m)
		out = append(out, fmt.Sprint(m[field]))
	}
	sort.Strings(out)
	return out
}

// runPipeline runs a pipeline on the engine, with the source reading d and
// the state in dir, delivering to sink.
func runPipeline(t *testing.T, d db, dir, body string, sink *collectSink, ctx context.Context) (*engine.Report, error) {
	t.Helper()
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	reg.Register(config.SinkPlugin("collect", config.NewSpec("test sink"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) {
		return sink, nil
	}))
	var b strings.Builder
	fmt.Fprintf(&b, "name: pg-inc\nstate: %s\nbatch_rows: 100\nworkers: 2\nsource:\n  postgres:\n    url: %s\n", dir, d.url())
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		b.WriteString("    " + l + "\n")
	}
	b.WriteString("sink: {collect: {}}\n")
	cfg, err := config.Load("p.yaml", []byte(b.String()), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(cfg, engine.Options{Registry: reg}).Run(ctx)
}

// An incremental pipeline reads, in each run, the rows whose cursor is
// above the last completed run's bound and at most the bound its own
// snapshot saw; a stopped run commits nothing, and its resume keeps the
// window; a run with nothing new reads nothing.
func TestIncrementalCursorAcrossRuns(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE accounts (id int PRIMARY KEY, plan text, updated_at timestamptz NOT NULL)`,
		`INSERT INTO accounts SELECT g, 'free', timestamptz '2024-01-01' + g * interval '1 second' FROM generate_series(1, 1000) g`)
	dir := t.TempDir()
	body := "table: accounts\ncursor: {column: updated_at}\nmax_splits: 3\nrows_per_split: 200"

	first := &collectSink{keys: map[string]int{}}
	if _, err := runPipeline(t, d, dir, body, first, context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(first.rows); n != 1000 {
		t.Fatalf("first run read %d rows", n)
	}
	cp := loadCheckpoint(t, dir)
	var c committed
	json.Unmarshal([]byte(cp.SourceState[keyCursor]), &c)
	if c.Value != "2024-01-01 00:16:40+00" {
		t.Fatalf("cursor %+v after the first run", c)
	}

	// Changes: 5 updated, 10 new. A second run is stopped part way: it
	// commits no cursor, and its resume reads the same window.
	d.exec(t, `UPDATE accounts SET plan = 'pro', updated_at = timestamptz '2024-02-01' + id * interval '1 second' WHERE id <= 5`,
		`INSERT INTO accounts SELECT g, 'new', timestamptz '2024-03-01' + g * interval '1 second' FROM generate_series(1001, 1010) g`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := &collectSink{keys: map[string]int{}, stopAt: 1, stop: cancel}
	_, err := runPipeline(t, d, dir, body+"\nfetch_rows: 1", second, ctx)
	if !errors.Is(err, engine.ErrInterrupted) {
		t.Logf("stopped run: %v", err)
	}
	cp = loadCheckpoint(t, dir)
	json.Unmarshal([]byte(cp.SourceState[keyCursor]), &c)
	if c.Value != "2024-01-01 00:16:40+00" {
		t.Fatalf("a stopped run moved the cursor to %+v", c)
	}
	// Written after the window was planned: the next run's.
	d.exec(t, `UPDATE accounts SET plan = 'late', updated_at = timestamptz '2024-04-01' WHERE id = 6`)
	resumed := &collectSink{keys: map[string]int{}}
	if _, err := runPipeline(t, d, dir, body+"\nfetch_rows: 1", resumed, context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped run delivered %d rows, its resume %d", len(second.rows), len(resumed.rows))
	got := append(second.ids(t, "id"), resumed.ids(t, "id")...)
	sort.Strings(got)
	want := []string{"1", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010", "2", "3", "4", "5"}
	if fmt.Sprint(dedup(got)) != fmt.Sprint(want) {
		t.Fatalf("second run (stopped, resumed) read %v, want %v", got, want)
	}
	third := &collectSink{keys: map[string]int{}}
	if _, err := runPipeline(t, d, dir, body, third, context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(third.ids(t, "id")) != "[6]" {
		t.Fatalf("third run read %v, want [6] (the row changed during the second run)", third.ids(t, "id"))
	}
	fourth := &collectSink{keys: map[string]int{}}
	if _, err := runPipeline(t, d, dir, body, fourth, context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fourth.rows) != 0 {
		t.Fatalf("a run with nothing new read %v", fourth.ids(t, "id"))
	}
}

func dedup(l []string) []string {
	var out []string
	for i, s := range l {
		if i == 0 || s != l[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func loadCheckpoint(t *testing.T, dir string) *state.Checkpoint {
	t.Helper()
	cp, err := state.NewDirStore(dir, "pg-inc", 0, 1).Load(context.Background())
	if err != nil || cp == nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

// A finished pipeline without a cursor, run again, finds every split done
// and reads nothing (without connecting); --fresh would read it again.
func TestFinishedRunIsDone(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t SELECT g FROM generate_series(1, 500) g`)
	dir := t.TempDir()
	first := &collectSink{keys: map[string]int{}}
	if _, err := runPipeline(t, d, dir, "table: t\nmax_splits: 2\nrows_per_split: 100", first, context.Background()); err != nil {
		t.Fatal(err)
	}
	again := &collectSink{keys: map[string]int{}}
	rep, err := runPipeline(t, d, dir, "table: t\nmax_splits: 2\nrows_per_split: 100", again, context.Background())
	if err != nil || len(again.rows) != 0 || len(first.rows) != 500 {
		t.Fatalf("rerun: %v, read %d (first %d), %+v", err, len(again.rows), len(first.rows), rep)
	}
}
