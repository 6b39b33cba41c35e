package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

// genSource makes splits of generated rows: column "id" = "split:row".
// Rows whose index is in badRows come back as source rejects.
type genSource struct {
	splits, rows int
	badRows      map[int64]bool
	mem          memory.Allocator
	bytesOnly    bool  // splits say their size (100 bytes a row), not their rows
	estimate     int64 // with neither rows nor size: the source's estimate
	version      string
	onNext       func(ctx context.Context, split string) // called as each Next starts
	onClose      func(split string)                      // called as each reader closes
}

func (g genSource) EstimatedRows() int64 { return g.estimate }

func (g genSource) Splits(context.Context) ([]pipeline.Split, error) {
	out := make([]pipeline.Split, g.splits)
	for i := range out {
		out[i] = pipeline.Split{ID: fmt.Sprintf("s%02d", i), Rows: int64(g.rows), Bytes: -1, Version: g.version}
		if g.bytesOnly {
			out[i].Rows, out[i].Bytes = -1, int64(g.rows)*100
		}
		if g.estimate > 0 {
			out[i].Rows = -1
		}
	}
	return out, nil
}

func (g genSource) Open(ctx context.Context, s pipeline.Split, o pipeline.ReadOptions) (pipeline.RecordReader, error) {
	return &genReader{g: g, split: s.ID, next: o.Offset, batch: o.BatchRows}, nil
}

type genReader struct {
	g     genSource
	split string
	next  int64
	batch int
}

func (r *genReader) Next(ctx context.Context) (*pipeline.Batch, error) {
	if r.g.onNext != nil {
		r.g.onNext(ctx, r.split)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.next >= int64(r.g.rows) {
		return nil, io.EOF
	}
	end := min(r.next+int64(r.batch), int64(r.g.rows))
	bld := array.NewStringBuilder(r.g.mem)
	defer bld.Release()
	var rows []int64
	var rejects []pipeline.Reject
	for i := r.next; i < end; i++ {
		if r.g.badRows[i] {
			rejects = append(rejects, pipeline.Reject{Row: i, Stage: "source", Column: "id", Reason: "bad row"})
			continue
		}
		bld.Append(fmt.Sprintf("%s:%d", r.split, i))
		rows = append(rows, i)
	}
	arr := bld.NewArray()
	defer arr.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}}, nil)
	rec := array.NewRecord(schema, []arrow.Array{arr}, int64(arr.Len()))
	b := &pipeline.Batch{Split: r.split, Start: r.next, End: end, Record: rec, Rows: rows, Rejects: rejects}
	r.next = end
	return b, nil
}

func (r *genReader) Close() error {
	if r.g.onClose != nil {
		r.g.onClose(r.split)
	}
	return nil
}

// ackSink acknowledges batches from a goroutine, out of order, and records
// every row id it delivered. failAfter > 0 makes it fail for good after
// that many batches.
type ackSink struct {
	mu        sync.Mutex
	got       map[string]int
	queue     chan *pipeline.Batch
	done      chan struct{}
	failAfter int
	batches   int
	delay     time.Duration
	opened    bool
}

func newAckSink(failAfter int) *ackSink {
	return &ackSink{got: map[string]int{}, queue: make(chan *pipeline.Batch, 8), done: make(chan struct{}), failAfter: failAfter}
}

// Open starts the goroutine that acknowledges.
func (s *ackSink) Open(context.Context) error {
	s.opened = true
	go s.loop()
	return nil
}

func (s *ackSink) loop() {
	defer close(s.done)
	rng := rand.New(rand.NewSource(1))
	var held []*pipeline.Batch
	flush := func() {
		rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
		for _, b := range held {
			s.deliver(b)
		}
		held = held[:0]
	}
	for b := range s.queue {
		held = append(held, b)
		if len(held) >= 3 {
			flush()
		}
	}
	flush()
}

func (s *ackSink) deliver(b *pipeline.Batch) {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	s.batches++
	fail := s.failAfter > 0 && s.batches > s.failAfter
	if !fail {
		col := b.Record.Column(0).(*array.String)
		for i := 0; i < col.Len(); i++ {
			s.got[col.Value(i)]++
		}
	}
	s.mu.Unlock()
	b.Release()
	if fail {
		b.Ack(errors.New("destination refused"))
		return
	}
	b.Ack(nil)
}

func (s *ackSink) Write(ctx context.Context, b *pipeline.Batch) error {
	select {
	case s.queue <- b:
		return nil
	case <-ctx.Done():
		b.Release()
		return ctx.Err()
	}
}

// Stats counts the batches delivered, as a StatsSink.
func (s *ackSink) Stats() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]int64{"batches": int64(s.batches)}
}

func (s *ackSink) Close(ctx context.Context) error {
	if !s.opened {
		return nil
	}
	close(s.queue)
	<-s.done
	if s.failAfter > 0 && s.batches > s.failAfter {
		return errors.New("destination refused")
	}
	return nil
}

type fixture struct {
	t    *testing.T
	dir  string
	mem  *memory.CheckedAllocator
	src  genSource
	yaml string
}

func newFixture(t *testing.T, splits, rows int, extra string) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), mem: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	f.src = genSource{splits: splits, rows: rows, mem: f.mem}
	workers := "workers: 3\n"
	if strings.Contains(extra, "workers:") { // the test's own
		workers = ""
	}
	f.yaml = fmt.Sprintf("name: gen\nsource: {gen: {}}\nsink: {acks: {}}\nstate: %s\n%sbatch_rows: 7\ncheckpoint_interval: 10ms\n%s", f.dir, workers, extra)
	return f
}

func (f *fixture) registry(sink pipeline.Sink) *config.Registry {
	reg := config.NewRegistry()
	reg.Register(config.SourcePlugin("gen", config.NewSpec("generated rows"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) { return f.src, nil }))
	reg.Register(config.SinkPlugin("acks", config.NewSpec("acks out of order"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) { return sink, nil }))
	return reg
}

func (f *fixture) run(ctx context.Context, sink pipeline.Sink, opts Options) (*Report, error) {
	f.t.Helper()
	reg := f.registry(sink)
	cfg, err := config.Load("gen.yaml", []byte(f.yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		f.t.Fatal(err)
	}
	opts.Registry, opts.Alloc = reg, f.mem
	rep, err := New(cfg, opts).Run(ctx)
	checkRows(f.t, rep)
	return rep, err
}

func (f *fixture) checkpoint() *state.Checkpoint {
	c, err := state.NewDirStore(f.dir, "gen", 0, 1).Load(context.Background())
	if err != nil || c == nil {
		f.t.Fatalf("checkpoint: %v %v", c, err)
	}
	return c
}

func TestRunDeliversEveryRowOnceAndResumesNothing(t *testing.T) {
	f := newFixture(t, 5, 100, "")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	rep, err := f.run(context.Background(), sink, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 500 || rep.RowsRead != 500 || rep.RowsDelivered != 500 || rep.SplitsDone != 5 {
		t.Fatalf("delivered %d distinct rows; report %+v", len(sink.got), rep)
	}
	for id, n := range sink.got {
		if n != 1 {
			t.Fatalf("row %s delivered %d times", id, n)
		}
	}
	for id, st := range f.checkpoint().Splits {
		if !st.Done || st.Offset != 100 {
			t.Errorf("split %s: %+v", id, st)
		}
	}
	// A second run finds every split done.
	again := newAckSink(0)
	rep, err = f.run(context.Background(), again, Options{})
	if err != nil || len(again.got) != 0 || rep.SplitsSkipped != 5 || rep.RowsSkipped != 500 {
		t.Fatalf("rerun delivered %d rows, report %+v, err %v", len(again.got), rep, err)
	}
	// --fresh starts over.
	fresh := newAckSink(0)
	if _, err := f.run(context.Background(), fresh, Options{Fresh: true}); err != nil || len(fresh.got) != 500 {
		t.Fatalf("fresh run delivered %d rows, err %v", len(fresh.got), err)
	}
}

// Splits that know their size but not their rows (gzip, S3) get a total
// estimated from the rows per byte of the splits finished so far.
func TestRunEstimatesTotalFromBytes(t *testing.T) {
	f := newFixture(t, 6, 300, "")
	defer f.mem.AssertSize(t, 0)
	f.src.bytesOnly = true
	var mu sync.Mutex
	var seen []Progress
	_, err := f.run(context.Background(), newAckSink(0), Options{ProgressEvery: time.Millisecond,
		Progress: func(p Progress) { mu.Lock(); seen = append(seen, p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	estimated := 0
	for _, p := range seen {
		switch {
		case p.Estimated && p.TotalRows != 1800:
			t.Errorf("estimated total %d, want 1800 (%+v)", p.TotalRows, p)
		case p.Estimated && p.Read < 300:
			// Rows per byte come from a split read whole (300 rows); a
			// split is done only once its rows are acknowledged too.
			t.Errorf("an estimate before any split was read whole: %+v", p)
		case !p.Estimated && p.TotalRows != -1:
			t.Errorf("total %d without rows to count: %+v", p.TotalRows, p)
		case p.Estimated:
			estimated++
		}
	}
	if estimated == 0 || !seen[len(seen)-1].Estimated {
		t.Errorf("no estimate in %d progress updates", len(seen))
	}
	// The sink's own counters ride along (the metrics show them).
	if last := seen[len(seen)-1]; !last.Final || last.Sink["batches"] == 0 {
		t.Errorf("final progress without the sink's counters: %+v", last)
	}
}

// A source that estimates its rows (BigQuery's read session) gives the
// total from the start; a shard gets its share.
func TestRunUsesTheSourceEstimate(t *testing.T) {
	for _, shards := range []int{1, 2} {
		f := newFixture(t, 6, 300, "")
		f.src.estimate = 2000
		var first Progress
		var once sync.Once
		_, err := f.run(context.Background(), newAckSink(0), Options{ProgressEvery: time.Millisecond, Shards: shards,
			Progress: func(p Progress) { once.Do(func() { first = p }) }})
		if err != nil {
			t.Fatal(err)
		}
		want := int64(2000)
		if shards == 2 {
			n := 0
			for i := 0; i < 6; i++ {
				if pipeline.ShardOf(fmt.Sprintf("s%02d", i), 2) == 0 {
					n++
				}
			}
			want = int64(2000 * float64(n) / 6)
		}
		if !first.Estimated || first.TotalRows != max(want, first.Read) {
			t.Errorf("%d shards: first progress %+v, want an estimated total of %d", shards, first, want)
		}
		f.mem.AssertSize(t, 0)
	}
}

func TestRunInterruptedThenResumedDeliversEachRowOnce(t *testing.T) {
	f := newFixture(t, 6, 200, "")
	defer f.mem.AssertSize(t, 0)
	first := newAckSink(0)
	first.delay = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			first.mu.Lock()
			n := len(first.got)
			first.mu.Unlock()
			if n >= 300 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	rep, err := f.run(ctx, first, Options{})
	if !errors.Is(err, ErrInterrupted) || rep.Status != "interrupted" {
		t.Fatalf("want interrupted, got %v (%+v)", err, rep)
	}
	if len(first.got) >= 1200 {
		t.Fatal("the interruption came too late to test anything")
	}
	cp := f.checkpoint()
	var saved int64
	for _, st := range cp.Splits {
		saved += st.Offset
	}
	if saved != int64(len(first.got)) {
		t.Fatalf("checkpoint holds %d rows but %d were delivered and acknowledged", saved, len(first.got))
	}
	second := newAckSink(0)
	rep, err = f.run(context.Background(), second, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RowsSkipped != saved || !rep.Resumed {
		t.Errorf("report %+v, want %d skipped", rep, saved)
	}
	for id := range first.got {
		if second.got[id] > 0 {
			t.Fatalf("row %s delivered by both runs", id)
		}
	}
	if len(first.got)+len(second.got) != 1200 {
		t.Fatalf("delivered %d + %d rows, want 1200", len(first.got), len(second.got))
	}
}

func TestRunSinkFailureCheckpointsOnlyAcknowledgedRows(t *testing.T) {
	f := newFixture(t, 1, 100, "workers: 1\n")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(4)
	_, err := f.run(context.Background(), sink, Options{})
	if err == nil {
		t.Fatal("want the sink's error")
	}
	st := f.checkpoint().Splits["s00"]
	if st.Done {
		t.Fatal("a split with failed batches is marked done")
	}
	if int(st.Offset) > len(sink.got) {
		t.Fatalf("checkpoint offset %d beyond the %d rows delivered", st.Offset, len(sink.got))
	}
}

func TestRunRejectsGoToDeadLetters(t *testing.T) {
	f := newFixture(t, 2, 50, "")
	f.src.badRows = map[int64]bool{3: true, 17: true, 49: true}
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	rep, err := f.run(context.Background(), sink, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.RowsRejected != 6 || rep.RowsDelivered != 94 || len(sink.got) != 94 {
		t.Fatalf("report %+v, delivered %d", rep, len(sink.got))
	}
	lines := readLines(t, rep.DeadLetters)
	if len(lines) != 6 {
		t.Fatalf("%d dead letters, want 6", len(lines))
	}
	var dl map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &dl); err != nil || dl["reason"] != "bad row" || dl["stage"] != "source" || dl["column"] != "id" {
		t.Fatalf("dead letter %s (%v)", lines[0], err)
	}
	for id, st := range f.checkpoint().Splits {
		if !st.Done || st.Offset != 50 {
			t.Errorf("split %s %+v: rejected rows must count as handled", id, st)
		}
	}
}

func TestRunOnErrorStopAndMaxRejects(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"on_error: stop\n", "on_error: stop"},
		{"max_rejects: \"2\"\n", "too many rejected rows"},
		{"max_rejects: 5%\n", "4 of 50 rows rejected, over max_rejects 5%"},
	} {
		f := newFixture(t, 1, 50, tc.extra)
		f.src.badRows = map[int64]bool{3: true, 17: true, 30: true, 40: true}
		sink := newAckSink(0)
		_, err := f.run(context.Background(), sink, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.extra, err, tc.want)
		}
		f.mem.AssertSize(t, 0)
	}
}

func TestRunShardsPartitionSplits(t *testing.T) {
	f := newFixture(t, 12, 10, "")
	defer f.mem.AssertSize(t, 0)
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		sink := newAckSink(0)
		if _, err := f.run(context.Background(), sink, Options{Shard: i, Shards: 3}); err != nil {
			t.Fatal(err)
		}
		for id := range sink.got {
			seen[id]++
		}
		if _, err := os.Stat(filepath.Join(f.dir, "gen", fmt.Sprintf("checkpoint-shard-%d-of-3.json", i))); err != nil {
			t.Error(err)
		}
	}
	if len(seen) != 120 {
		t.Fatalf("shards delivered %d distinct rows, want 120", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("row %s delivered by %d shards", id, n)
		}
	}
}

// Shards sharing a state directory each keep their own dead letters: one
// starting afresh must not truncate the rows another set aside.
func TestRunShardsKeepTheirOwnDeadLetters(t *testing.T) {
	f := newFixture(t, 12, 10, "max_rejects: none\n")
	defer f.mem.AssertSize(t, 0)
	f.src.badRows = map[int64]bool{3: true, 7: true}
	paths := map[string]bool{}
	for i := 0; i < 3; i++ {
		rep, err := f.run(context.Background(), newAckSink(0), Options{Shard: i, Shards: 3})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("dead-letters-shard-%d-of-3.ndjson", i); filepath.Base(rep.DeadLetters) != want {
			t.Fatalf("shard %d dead letters in %s, want %s", i, rep.DeadLetters, want)
		}
		paths[rep.DeadLetters] = true
	}
	seen := map[string]int{}
	for p := range paths {
		for _, line := range readLines(t, p) {
			var dl struct {
				Split string
				Row   int64
			}
			if err := json.Unmarshal([]byte(line), &dl); err != nil {
				t.Fatal(err)
			}
			seen[fmt.Sprintf("%s#%d", dl.Split, dl.Row)]++
		}
	}
	if len(paths) != 3 || len(seen) != 24 {
		t.Fatalf("%d files hold %d distinct dead letters, want 3 files and 24 (2 per split)", len(paths), len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s dead-lettered %d times", k, n)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// A second run of a pipeline refuses to start while the first holds the
// state's lock (a cron job firing again too soon), and starts once it ends.
func TestRunRefusesToOverlapAnotherRun(t *testing.T) {
	f := newFixture(t, 2, 10, "")
	defer f.mem.AssertSize(t, 0)
	unlock, err := state.LockFile(state.NewDirStore(f.dir, "gen", 0, 1).Path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.run(context.Background(), newAckSink(0), Options{})
	var locked *state.LockedError
	if !errors.As(err, &locked) || !strings.Contains(locked.Holder, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("overlapping run: got %v, want a LockedError naming the holder", err)
	}
	// Another shard has its own lock.
	if _, err := f.run(context.Background(), newAckSink(0), Options{Shard: 1, Shards: 2}); err != nil {
		t.Fatalf("another shard: %v", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	sink := newAckSink(0)
	if _, err := f.run(context.Background(), sink, Options{}); err != nil || len(sink.got) != 20 {
		t.Fatalf("after the first run ended: %v, %d rows", err, len(sink.got))
	}
}

// Progress saved on one version of an input does not hold for another:
// the run reads a changed split again from its start (the rows already
// sent keep their ids), so nothing the new content holds is skipped.
func TestRunRereadsChangedInputs(t *testing.T) {
	f := newFixture(t, 3, 10, "") // 2 batches a split
	defer f.mem.AssertSize(t, 0)
	f.src.version = "v1"
	first := newAckSink(0)
	if _, err := f.run(context.Background(), first, Options{}); err != nil {
		t.Fatal(err)
	}
	if v := f.checkpoint().Splits["s01"].Version; v != "v1" {
		t.Fatalf("saved version %q, want v1", v)
	}
	// The same input: nothing to read again.
	rep, err := f.run(context.Background(), newAckSink(0), Options{})
	if err != nil || rep.RowsRead != 0 || len(rep.SplitsChanged) != 0 {
		t.Fatalf("unchanged input: %v, %+v", err, rep)
	}
	f.src.version = "v2"
	again := newAckSink(0)
	rep, err = f.run(context.Background(), again, Options{})
	if err != nil || len(rep.SplitsChanged) != 3 || rep.RowsRead != 30 || len(again.got) != 30 {
		t.Fatalf("changed input: %v, %+v, %d rows sent", err, rep, len(again.got))
	}
	for id := range first.got {
		if again.got[id] != 1 {
			t.Fatalf("row %s sent %d times by the reread, want once", id, again.got[id])
		}
	}
	cp := f.checkpoint()
	if st := cp.Splits["s02"]; st.Version != "v2" || !st.Done || st.Offset != 10 {
		t.Fatalf("checkpoint after the reread: %+v", st)
	}

	// A reread that stops part-way must not let the old content's progress
	// come back: the next run still reads every row the new content has.
	f.src.version = "v3"
	failing := newAckSink(1)
	if _, err := f.run(context.Background(), failing, Options{}); err == nil {
		t.Fatal("a run whose sink refused batches succeeded")
	}
	last := newAckSink(0)
	if _, err := f.run(context.Background(), last, Options{}); err != nil {
		t.Fatal(err)
	}
	for id := range first.got {
		if failing.got[id]+last.got[id] == 0 {
			t.Fatalf("row %s of the new content was never delivered", id)
		}
	}
}

// A run killed mid-way through a dead-letter line leaves it cut short; the
// resumed run cuts it off before appending, so every line stays JSON and
// every rejected row is in the file (its row was never checkpointed, so it
// is rejected and written again).
func TestResumeCutsAPartialDeadLetterLine(t *testing.T) {
	f := newFixture(t, 3, 20, "")
	defer f.mem.AssertSize(t, 0)
	f.src.badRows = map[int64]bool{2: true, 11: true}
	rep, err := f.run(context.Background(), newAckSink(2), Options{})
	if err == nil {
		t.Fatal("a run whose sink refused batches succeeded")
	}
	dl, err := os.OpenFile(rep.DeadLetters, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	dl.WriteString(`{"time":"2026-11-30T10:00:00Z","split":"s02","row":1`) // what SIGKILL left
	dl.Close()
	if _, err := f.run(context.Background(), newAckSink(0), Options{}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range readLines(t, rep.DeadLetters) {
		var l struct {
			Split string
			Row   int64
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("dead-letter line %q: %v", line, err)
		}
		seen[fmt.Sprintf("%s#%d", l.Split, l.Row)] = true
	}
	if len(seen) != 6 {
		t.Fatalf("%d distinct dead letters, want 6 (2 in each of 3 splits): %v", len(seen), seen)
	}
}

// slowStore is a DirStore whose saves take a while, counted.
type slowStore struct {
	*state.DirStore
	delay time.Duration
	saves atomic.Int64
}

func (s *slowStore) Save(ctx context.Context, c *state.Checkpoint) error {
	time.Sleep(s.delay)
	s.saves.Add(1)
	return s.DirStore.Save(ctx, c)
}

// Periodic saves back off when a save is slow (a checkpoint of very many
// splits): at most one per 20 times a save's duration, however long the
// run takes on a loaded machine, where a 10 ms checkpoint_interval would
// save every 50 ms. The final save still records everything.
func TestSlowCheckpointsAreSavedLessOften(t *testing.T) {
	f := newFixture(t, 4, 100, "")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	sink.delay = 5 * time.Millisecond // ~60 batches: 300 ms or more
	const delay = 40 * time.Millisecond
	store := &slowStore{DirStore: state.NewDirStore(f.dir, "gen", 0, 1), delay: delay}
	start := time.Now()
	if _, err := f.run(context.Background(), sink, Options{Store: store}); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if n, most := store.saves.Load(), int64(elapsed/(20*delay))+2; n > most {
		t.Errorf("%d saves of %v in %v, want at most %d", n, delay, elapsed, most)
	}
	for id, st := range f.checkpoint().Splits {
		if !st.Done || st.Offset != 100 {
			t.Fatalf("split %s saved as %+v", id, st)
		}
	}
}

// The checkpoint's hand-written splits decode to what was encoded, tricky
// split IDs included, and the file stays one split per line.
func TestCheckpointEncodingRoundTrips(t *testing.T) {
	for _, splits := range []map[string]state.SplitState{
		{},
		{
			"s3://b/k.parquet":          {Offset: 100, Done: true, Version: "etag abc"},
			`C:\data\"quoted" file.csv`: {Offset: 7},
			"café/日本/\u2028\x01.ndjson": {Offset: 0, Version: `size "12"`},
		},
	} {
		cp := &state.Checkpoint{Version: 1, Name: "p", Splits: splits,
			SourceState: map[string]string{"note": `"splits": null`}, DeadLetterParts: 3}
		data, err := state.Encode(cp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := state.Decode(data, "test")
		if err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		if !reflect.DeepEqual(got.Splits, splits) || got.SourceState["note"] != `"splits": null` || got.DeadLetterParts != 3 {
			t.Fatalf("decoded %+v from\n%s", got, data)
		}
		if n := bytes.Count(data, []byte(`"offset"`)); n != len(splits) || (len(splits) > 0 && bytes.Count(data, []byte("\n  \"")) < len(splits)) {
			t.Fatalf("layout:\n%s", data)
		}
	}
}

// aheadSink's Write of a split's first batch returns only once the source
// has been asked for the batch after it: it passes only when the runner
// reads ahead, decoding the next batch while the sink encodes this one.
type aheadSink struct {
	*ackSink
	asked chan struct{} // closed when the reader's second Next starts
	once  sync.Once
	late  atomic.Bool
}

func (s *aheadSink) Write(ctx context.Context, b *pipeline.Batch) error {
	s.once.Do(func() {
		select {
		case <-s.asked:
		case <-time.After(5 * time.Second):
			s.late.Store(true)
		}
	})
	return s.ackSink.Write(ctx, b)
}

func TestRunReadsTheNextBatchWhileTheSinkWrites(t *testing.T) {
	f := newFixture(t, 1, 100, "")
	defer f.mem.AssertSize(t, 0)
	asked := make(chan struct{})
	var calls atomic.Int64
	f.src.onNext = func(context.Context, string) {
		if calls.Add(1) == 2 {
			close(asked)
		}
	}
	sink := &aheadSink{ackSink: newAckSink(0), asked: asked}
	rep, err := f.run(context.Background(), sink, Options{})
	if err != nil || rep.RowsDelivered != 100 || len(sink.got) != 100 {
		t.Fatalf("delivered %d, report %+v, err %v", len(sink.got), rep, err)
	}
	if sink.late.Load() {
		t.Fatal("the second batch was read only after the first was written: no read-ahead")
	}
}

// A run stopped by --limit releases the batch it read ahead and does not
// count it: rows read stop at the first batch boundary past the limit.
func TestRunLimitReleasesTheBatchReadAhead(t *testing.T) {
	f := newFixture(t, 1, 100, "")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	rep, err := f.run(context.Background(), sink, Options{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	// batch_rows is 7: two batches reach the limit.
	if rep.RowsRead != 14 || len(sink.got) != 14 {
		t.Fatalf("read %d, delivered %d; want 14", rep.RowsRead, len(sink.got))
	}
	if st := f.checkpoint().Splits["s00"]; st.Done || st.Offset != 14 {
		t.Fatalf("checkpoint %+v, want offset 14 and not done", st)
	}
}

// warnSignal is a log handler that closes warned at the first warning
// whose message holds want.
type warnSignal struct {
	want   string
	warned chan struct{}
	once   sync.Once
}

func (h *warnSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnSignal) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && strings.Contains(r.Message, h.want) {
		h.once.Do(func() { close(h.warned) })
	}
	return nil
}
func (h *warnSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *warnSignal) WithGroup(string) slog.Handler      { return h }

// breakCheckpoint makes checkpoint saves fail for real: the checkpoint at
// path becomes an empty directory, which a save's final rename cannot
// replace. It returns the func that undoes it (the next save writes the
// file again).
func breakCheckpoint(t *testing.T, path string) func() {
	t.Helper()
	// A save in progress may put the file back between the two calls:
	// try again until the directory stands (a handful of tries at most).
	for i := 0; ; i++ {
		err := os.Remove(path)
		if err == nil || os.IsNotExist(err) {
			if err = os.Mkdir(path, 0o755); err == nil {
				break
			}
		}
		if i == 1000 {
			t.Fatalf("breaking the checkpoint: %v", err)
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Error(err)
		}
	}
}

// gateSink acknowledges each batch as it is written. At the batch
// numbered at it calls first before acknowledging it, then after, which
// returns once the test has seen what it waits for; the batches after it
// go through. Acknowledging the batch between the two gives the next
// checkpoint something new to save.
type gateSink struct {
	at    int
	first func()
	then  func(run context.Context) // run: Open's context, which ends when the run stops or fails
	n     int
	got   int64
	run   context.Context
}

func (s *gateSink) Open(ctx context.Context) error { s.run = ctx; return nil }

func (s *gateSink) Write(ctx context.Context, b *pipeline.Batch) error {
	s.n++ // one worker: writes come one at a time
	if s.n == s.at && s.first != nil {
		s.first()
	}
	s.got += b.NumRows()
	b.Release()
	b.Ack(nil)
	if s.n == s.at {
		s.then(s.run)
	}
	return nil
}

func (s *gateSink) Close(context.Context) error { return nil }

// A multi-hour run must not die of one failed checkpoint save (an S3
// error, a full disk): delivery goes on, the save is retried at the next
// interval, and the final checkpoint records everything. The sink holds
// the run at its fifth batch, with the checkpoint broken, until a periodic
// save has failed; so the test does not depend on the machine's speed.
func TestRunRidesOutFailedCheckpointSaves(t *testing.T) {
	f := newFixture(t, 5, 100, "workers: 1\n")
	defer f.mem.AssertSize(t, 0)
	h := &warnSignal{want: "saving the checkpoint failed", warned: make(chan struct{})}
	path := state.NewDirStore(f.dir, "gen", 0, 1).Path
	var restore func()
	sink := &gateSink{at: 5, first: func() { restore = breakCheckpoint(t, path) }, then: func(context.Context) {
		<-h.warned
		restore()
	}}
	var last Progress // the final progress, which the metrics show
	rep, err := f.run(context.Background(), sink, Options{Logger: slog.New(h),
		Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatalf("the run stopped: %v", err)
	}
	if rep.CheckpointSaveFailures == 0 {
		t.Fatal("no save failed")
	}
	if sink.got != 500 || rep.RowsDelivered != 500 {
		t.Fatalf("delivered %d, report %+v", sink.got, rep)
	}
	if !last.Final || last.CheckpointSaveFailures != rep.CheckpointSaveFailures || time.Since(last.LastCheckpoint) > time.Minute {
		t.Fatalf("final progress %+v", last)
	}
	for id, st := range f.checkpoint().Splits {
		if !st.Done || st.Offset != 100 {
			t.Fatalf("split %s saved as %+v", id, st)
		}
	}
}

// Saves that keep failing past checkpoint_failure_timeout stop the run,
// naming the setting and the cause. The sink holds the run, with the
// checkpoint broken, until the run fails.
func TestRunStopsWhenCheckpointSavesKeepFailing(t *testing.T) {
	f := newFixture(t, 5, 100, "checkpoint_failure_timeout: 50ms\nworkers: 1\n")
	defer f.mem.AssertSize(t, 0)
	var restore func()
	sink := &gateSink{at: 5, first: func() { restore = breakCheckpoint(t, state.NewDirStore(f.dir, "gen", 0, 1).Path) },
		then: func(ctx context.Context) { <-ctx.Done() }} // the run failing ends delivery
	_, err := f.run(context.Background(), sink, Options{})
	restore()
	if err == nil || !strings.Contains(err.Error(), "checkpoint_failure_timeout 50ms") ||
		!strings.Contains(err.Error(), "writing checkpoint") {
		t.Fatalf("err = %v, want the timeout and the cause", err)
	}
}

// failingStore is a DirStore whose saves after the first ok fail after a
// delay, as an S3 PUT does once the SDK's retries run out.
type failingStore struct {
	*state.DirStore
	ok       int64
	delay    time.Duration
	attempts atomic.Int64
}

func (s *failingStore) Save(ctx context.Context, c *state.Checkpoint) error {
	if s.attempts.Add(1) <= s.ok {
		return s.DirStore.Save(ctx, c)
	}
	time.Sleep(s.delay)
	return errors.New("InternalError: we encountered an internal error, please try again")
}

// A state store that cannot be written stops the run before it reads
// anything: it would deliver what it cannot record, for
// checkpoint_failure_timeout.
func TestRunStopsBeforeReadingWhenTheStateCannotBeSaved(t *testing.T) {
	f := newFixture(t, 2, 50, "")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	store := &failingStore{DirStore: state.NewDirStore(f.dir, "gen", 0, 1)}
	rep, err := f.run(context.Background(), sink, Options{Store: store})
	if err == nil || !strings.Contains(err.Error(), "cannot be saved, so nothing is read") {
		t.Fatalf("err = %v", err)
	}
	if rep.RowsRead != 0 || len(sink.got) != 0 {
		t.Fatalf("read %d rows, delivered %d", rep.RowsRead, len(sink.got))
	}
}

// A slow failing save does not push the next attempt back as a slow
// successful save does (20 times its duration): it is tried again at the
// next tick, until checkpoint_failure_timeout. The sink holds the run
// until it fails.
func TestFailedSavesAreRetriedEachInterval(t *testing.T) {
	f := newFixture(t, 5, 100, "checkpoint_failure_timeout: 600ms\nworkers: 1\n")
	defer f.mem.AssertSize(t, 0)
	sink := &gateSink{at: 5, then: func(ctx context.Context) { <-ctx.Done() }}
	store := &failingStore{DirStore: state.NewDirStore(f.dir, "gen", 0, 1), ok: 1, delay: 30 * time.Millisecond}
	_, err := f.run(context.Background(), sink, Options{Store: store})
	if err == nil || !strings.Contains(err.Error(), "checkpoint_failure_timeout") {
		t.Fatalf("err = %v", err)
	}
	// 600 ms of 30 ms saves, each at the next tick (every 10 ms) after
	// the last: about 15 on an idle machine. Backing off 20 times the
	// first's duration would make 2 (and no final save: the run failed).
	if n := store.attempts.Load(); n < 4 {
		t.Fatalf("%d save attempts before the run stopped, want several", n)
	}
}

// flakyStore is a DirStore whose next failNext saves fail.
type flakyStore struct {
	*state.DirStore
	failNext atomic.Int64
}

func (s *flakyStore) Save(ctx context.Context, c *state.Checkpoint) error {
	if s.failNext.Add(-1) >= 0 {
		return errors.New("SlowDown: please reduce your request rate")
	}
	return s.DirStore.Save(ctx, c)
}

// closeHookSink runs onClose as the run closes its sink, just before the
// final checkpoint save.
type closeHookSink struct {
	*ackSink
	onClose func()
}

func (s *closeHookSink) Close(ctx context.Context) error {
	s.onClose()
	return s.ackSink.Close(ctx)
}

// The final save records the whole run: a failure or two there (S3
// throttling at the wrong moment) is retried, not reported as a failed run
// whose rerun would resend everything since the last periodic save.
func TestFinalCheckpointSaveIsRetried(t *testing.T) {
	f := newFixture(t, 2, 50, "")
	defer f.mem.AssertSize(t, 0)
	store := &flakyStore{DirStore: state.NewDirStore(f.dir, "gen", 0, 1)}
	sink := &closeHookSink{ackSink: newAckSink(0), onClose: func() { store.failNext.Store(2) }}
	rep, err := f.run(context.Background(), sink, Options{Store: store})
	if err != nil {
		t.Fatalf("the run failed: %v", err)
	}
	if rep.CheckpointSaveFailures == 0 || store.failNext.Load() >= 0 {
		t.Fatalf("the final save never failed: report %+v", rep)
	}
	for id, st := range f.checkpoint().Splits {
		if !st.Done || st.Offset != 50 {
			t.Fatalf("split %s saved as %+v", id, st)
		}
	}
}

// refuseSink fails every Write of one split, as a sink does on a fatal
// error (a revoked write key).
type refuseSink struct {
	*ackSink
	split string
}

func (s *refuseSink) Write(ctx context.Context, b *pipeline.Batch) error {
	if b.Split == s.split {
		b.Release()
		return errors.New("write key revoked")
	}
	return s.ackSink.Write(ctx, b)
}

// A fatal sink error stops the whole run at once, even while the split's
// reader is in the middle of reading ahead (a slow S3 GET): other splits
// must not go on delivering until that read ends.
func TestRunStopsAtOnceWhileReadingAhead(t *testing.T) {
	f := newFixture(t, 2, 1000, "")
	defer f.mem.AssertSize(t, 0)
	var s00calls atomic.Int64
	released := make(chan struct{}) // ends the read when the run waited for it
	f.src.onNext = func(ctx context.Context, split string) {
		if split == "s00" && s00calls.Add(1) == 2 {
			select { // a read that only a cancel cuts short
			case <-ctx.Done():
			case <-released:
			}
		}
	}
	sink := &refuseSink{ackSink: newAckSink(0), split: "s00"}
	sink.delay = time.Millisecond // s01 alone takes 143 ms or more
	var err error
	done := make(chan struct{})
	go func() { _, err = f.run(context.Background(), sink, Options{}); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute): // a watchdog: the run is waiting for the read
		close(released)
		<-done
		t.Fatal("the run waited for the read ahead to end before it stopped")
	}
	if err == nil || !strings.Contains(err.Error(), "write key revoked") {
		t.Fatalf("err = %v", err)
	}
	if n := len(sink.got); n == 1000 {
		t.Fatalf("s01 delivered all %d rows after the run failed", n)
	}
}
