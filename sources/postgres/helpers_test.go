package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"go.uber.org/goleak"

	"github.com/backfillhq/backfill/internal/testkit/acktest"
	"github.com/backfillhq/backfill/internal/testkit/pgtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// The tests run a real PostgreSQL (one cluster for the package, a database
// per test) and MinIO for the UNLOAD manifest; goleak checks the pool,
// the COPY goroutines and the servers' clients are all gone at the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(s3test.Report(m))) }

func testRegistry() *config.Registry {
	r := config.NewRegistry()
	r.Register(Plugins()...)
	r.Register(acktest.DiscardPlugin("nop", nil))
	return r
}

// load parses the body of `source: postgres:`.
func load(body string) (*config.Conf, error) {
	var b strings.Builder
	b.WriteString("name: pg-test\nsource:\n  postgres:\n")
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		b.WriteString("    " + l + "\n")
	}
	b.WriteString("sink:\n  nop: {}\n")
	cfg, err := config.Load("test.yaml", []byte(b.String()), config.LoadOptions{Registry: testRegistry(),
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, err
	}
	return cfg.Source.Conf, nil
}

// db is a test's database on the shared server.
type db struct {
	srv  *pgtest.Server
	name string
}

func newDB(t *testing.T) db {
	t.Helper()
	srv := pgtest.Shared(t)
	return db{srv: srv, name: srv.NewDatabase(t)}
}

func (d db) exec(t *testing.T, sql ...string) { t.Helper(); d.srv.Exec(t, d.name, sql...) }
func (d db) url() string                      { return d.srv.URL(d.name) }

type testEnv struct {
	state *pipeline.MemoryState
	mem   *memory.CheckedAllocator
	logs  *logBuffer
}

func newEnv(t *testing.T) *testEnv {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return &testEnv{state: pipeline.NewMemoryState(nil, nil), mem: mem, logs: &logBuffer{}}
}

// source builds the source on d from a config body (url added).
func (d db) source(t *testing.T, env *testEnv, body string) *Source {
	t.Helper()
	conf, err := load("url: " + d.url() + "\n" + body)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	src, err := New(conf, &pipeline.Env{Name: "pg-test", Alloc: env.mem, State: env.state,
		Logger: slog.New(slog.NewTextHandler(env.logs, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s := src.(*Source)
	s.backoff = func(int) time.Duration { return 10 * time.Millisecond }
	t.Cleanup(func() { s.Close() })
	return s
}

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// row is one row read: its offset and its values as JSON.
type row struct {
	off  int64
	json string
}

// readSplit reads a split from opts.Offset to its end (or limit batches),
// checking that batches are contiguous, and returns the rows and rejects.
func readSplit(t *testing.T, src pipeline.Source, sp pipeline.Split, opts pipeline.ReadOptions, limit int) ([]row, []pipeline.Reject, error) {
	t.Helper()
	if opts.Columns.Names == nil && !opts.Columns.All {
		opts.Columns = pipeline.AllColumns
	}
	rd, err := src.Open(context.Background(), sp, opts)
	if err != nil {
		return nil, nil, err
	}
	defer rd.Close()
	var rows []row
	var rejects []pipeline.Reject
	next := opts.Offset
	for n := 0; limit <= 0 || n < limit; n++ {
		b, err := rd.Next(context.Background())
		if err == io.EOF {
			return rows, rejects, nil
		}
		if err != nil {
			return rows, rejects, err
		}
		if b.Start != next {
			t.Errorf("split %s: batch [%d,%d) after offset %d", sp.ID, b.Start, b.End, next)
		}
		if opts.BatchRows > 0 && b.End-b.Start > int64(opts.BatchRows) {
			t.Errorf("batch of %d rows, more than BatchRows %d", b.End-b.Start, opts.BatchRows)
		}
		if got := b.NumRows() + int64(len(b.Rejects)) + b.Filtered; got != b.End-b.Start {
			t.Errorf("batch [%d,%d) accounts for %d rows", b.Start, b.End, got)
		}
		next = b.End
		for i := 0; i < int(b.NumRows()); i++ {
			rows = append(rows, row{off: b.Row(i), json: string(pipeline.RowValues(b.Record, i))})
		}
		rejects = append(rejects, b.Rejects...)
		b.Ack(nil)
		b.Release()
	}
	return rows, rejects, nil
}

// readAll plans and reads every split in parallel from offsets[id].
func readAll(t *testing.T, src pipeline.Source, offsets map[string]int64, batch int) (map[string][]row, []pipeline.Reject) {
	t.Helper()
	if cs, ok := src.(pipeline.ColumnSetter); ok {
		cs.SetColumns(pipeline.AllColumns)
	}
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatalf("Splits: %v", err)
	}
	var mu sync.Mutex
	out := map[string][]row{}
	var rejects []pipeline.Reject
	var wg sync.WaitGroup
	for _, sp := range splits {
		wg.Add(1)
		go func(sp pipeline.Split) {
			defer wg.Done()
			rows, rej, err := readSplit(t, src, sp, pipeline.ReadOptions{Offset: offsets[sp.ID], Columns: pipeline.AllColumns, BatchRows: batch}, 0)
			if err != nil {
				t.Errorf("split %s: %v", sp.ID, err)
			}
			mu.Lock()
			out[sp.ID] = rows
			rejects = append(rejects, rej...)
			mu.Unlock()
		}(sp)
	}
	wg.Wait()
	return out, rejects
}

// ids are the "id" values of rows, sorted.
func ids(t *testing.T, rows map[string][]row) []int64 {
	t.Helper()
	var out []int64
	for _, l := range rows {
		for _, r := range l {
			var m map[string]any
			if err := json.Unmarshal([]byte(r.json), &m); err != nil {
				t.Fatalf("row %s: %v", r.json, err)
			}
			out = append(out, int64(m["id"].(float64)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func sameIDs(t *testing.T, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d ids, want %d (first %v)", len(got), len(want), got[:min(10, len(got))])
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("id #%d is %d, want %d", i, got[i], want[i])
		}
	}
}

func fmtRows(rows []row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%d %s\n", r.off, r.json)
	}
	return b.String()
}
