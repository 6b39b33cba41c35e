package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/ndjsontest"

	"github.com/backfillhq/backfill/internal/testkit/acktest"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sinks/message"
	"go.uber.org/goleak"
)

// The sink runs a periodic fsync goroutine; every test must leave none
// running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadLetters records what the sink says of each batch's rows.
type deadLetters = acktest.Recorder

// makeBatch builds n track rows from start; every row i with i%7 == 3 has
// no event, so the encoder rejects it.
func makeBatch(mem memory.Allocator, split string, start int64, n int) *pipeline.Batch {
	s := arrow.NewSchema([]arrow.Field{
		{Name: "type", Type: arrow.BinaryTypes.String},
		{Name: "userId", Type: arrow.BinaryTypes.String},
		{Name: "event", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "properties.n", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(mem, s)
	defer b.Release()
	for i := 0; i < n; i++ {
		row := start + int64(i)
		b.Field(0).(*array.StringBuilder).Append("track")
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("u%d", row%13))
		if row%7 == 3 {
			b.Field(2).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(2).(*array.StringBuilder).Append("Viewed \"page\"\n")
		}
		b.Field(3).(*array.Int64Builder).Append(row)
	}
	return pipeline.NewBatch(split, start, b.NewRecord())
}

// acks gives batches accounts that record into a Recorder.
type acks struct{ *deadLetters }

func (a acks) install(b *pipeline.Batch) *pipeline.Batch { return a.Watch(b) }

func (a acks) get() (int, []error) { return a.Acks() }

// openSink makes a sink and opens it.
func openSink(t *testing.T, opts Options) *Sink {
	t.Helper()
	s, err := New(opts, &pipeline.Env{Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConcurrentWritesAccountForEveryRow(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	path := filepath.Join(t.TempDir(), "out", "messages.ndjson")
	dl := &deadLetters{}
	s := openSink(t, Options{Path: path, SyncInterval: 5 * time.Millisecond})
	a := acks{dl}
	const workers, batches, rows = 4, 10, 100
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < batches; i++ {
				b := a.install(makeBatch(mem, fmt.Sprintf("split-%d", w), int64(i*rows), rows))
				if err := s.Write(context.Background(), b); err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, errs := a.get()
	if n != workers*batches || len(errs) > 0 {
		t.Fatalf("%d acks (want %d), errors %v", n, workers*batches, errs)
	}
	a.Check(t, workers*batches)
	lines := ndjsontest.Read(t, path)
	if dl.Delivered() != int64(len(lines)) {
		t.Fatalf("%d rows reported delivered, %d lines written", dl.Delivered(), len(lines))
	}
	if got := len(lines) + dl.Count(); got != workers*batches*rows {
		t.Fatalf("%d lines + %d dead letters != %d rows", len(lines), dl.Count(), workers*batches*rows)
	}
	if want := workers * batches * rows / 7; dl.Count() < want || dl.Count() > want+workers*batches {
		t.Fatalf("%d dead letters", dl.Count())
	}
	ids := map[string]bool{}
	for _, m := range lines {
		ids[m["messageId"].(string)] = true
		if m["event"] != "Viewed \"page\"\n" {
			t.Fatalf("event %q", m["event"])
		}
	}
	if len(ids) != len(lines) {
		t.Fatalf("%d distinct messageIds for %d lines", len(ids), len(lines))
	}
	for _, r := range dl.All() {
		if r.Row%7 != 3 || r.Reason != "track message has no event" || r.Stage != "sink" {
			t.Fatalf("unexpected reject %+v", r)
		}
	}
}

func TestLinesAreWhatTheEncoderSends(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	path := filepath.Join(t.TempDir(), "m.ndjson")
	s := openSink(t, Options{Path: path, Message: message.Options{Version: "9.9"}})
	b := makeBatch(mem, "s", 0, 20)
	var want strings.Builder
	e := message.NewEncoder(message.Options{Pipeline: "p", Version: "9.9"})
	if _, err := e.Encode(b, func(_ int, msg []byte) error { want.Write(msg); want.WriteByte('\n'); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), (&deadLetters{}).Watch(b)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != want.String() {
		t.Fatalf("file:\n%s\nencoder:\n%s", got, want.String())
	}
}

func TestAckOnlyAfterSync(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	dir := t.TempDir()

	// A long interval: nothing is acked until Close syncs.
	s := openSink(t, Options{Path: filepath.Join(dir, "slow.ndjson"), SyncInterval: time.Hour})
	a := acks{&deadLetters{}}
	for i := 0; i < 3; i++ {
		if err := s.Write(context.Background(), a.install(makeBatch(mem, "s", int64(i*10), 10))); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := a.get(); n != 0 {
		t.Fatalf("%d batches acked before any fsync", n)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, errs := a.get(); n != 3 || errs != nil {
		t.Fatalf("after Close: %d acks, %v", n, errs)
	}

	// Interval 0: Write returns with its batch synced and acked.
	s = openSink(t, Options{Path: filepath.Join(dir, "each.ndjson")})
	b := acks{&deadLetters{}}
	if err := s.Write(context.Background(), b.install(makeBatch(mem, "s", 0, 10))); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.get(); n != 1 {
		t.Fatalf("%d acks after a synchronous write", n)
	}
	// The ticker acks without more writes. Rows 0-2 have events, so the
	// batch has no dead letters (which Notify refuses).
	s2 := openSink(t, Options{Path: filepath.Join(dir, "tick.ndjson"), SyncInterval: time.Millisecond})
	tb := makeBatch(mem, "s", 0, 3)
	acked := acktest.Notify(tb)
	if err := s2.Write(context.Background(), tb); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-acked:
		if err != nil {
			t.Fatalf("periodic sync acked with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("batch never acked by the periodic sync")
	}
	for _, x := range []*Sink{s, s2} {
		if err := x.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Write after Close is refused, acked with the error and released.
	d := acks{&deadLetters{}}
	if err := s.Write(context.Background(), d.install(makeBatch(mem, "s", 0, 5))); !errors.Is(err, errClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if n, errs := d.get(); n != 1 || len(errs) != 1 {
		t.Fatalf("refused batch: %d acks %v", n, errs)
	}
}

func TestAppendKeepsCompleteLinesTruncateStartsOver(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	for _, c := range []struct {
		name     string
		truncate bool
		prefix   string
	}{
		{"append cuts the torn line", false, "{\"a\":1}\n{\"b\":2}\n"},
		{"truncate", true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.ndjson")
			if err := os.WriteFile(path, []byte("{\"a\":1}\n{\"b\":2}\n{\"torn"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := openSink(t, Options{Path: path, Truncate: c.truncate})
			if err := s.Write(context.Background(), makeBatch(mem, "s", 0, 3)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(got), c.prefix) || strings.Count(string(got), "\n") != strings.Count(c.prefix, "\n")+3 {
				t.Fatalf("file:\n%s", got)
			}
			ndjsontest.Read(t, path)
		})
	}
	// A file without any newline is cut to nothing in append mode.
	path := filepath.Join(t.TempDir(), "m.ndjson")
	os.WriteFile(path, []byte(strings.Repeat("x", 70000)), 0o644)
	s := openSink(t, Options{Path: path})
	s.Close(context.Background())
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatalf("size %d", st.Size())
	}
}

func TestFailuresAckWithError(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	dl := &deadLetters{Err: errors.New("too many rejects")}
	s := openSink(t, Options{Path: filepath.Join(t.TempDir(), "m.ndjson")})
	defer s.Close(context.Background())
	a := acks{dl}
	if err := s.Write(context.Background(), a.install(makeBatch(mem, "s", 0, 10))); err == nil || err.Error() != "too many rejects" {
		t.Fatalf("dead-letter error: %v", err)
	}
	// A schema the encoder cannot take (two columns for one path).
	rb := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{
		{Name: "type", Type: arrow.BinaryTypes.String}, {Name: "type", Type: arrow.BinaryTypes.String}}, nil))
	rb.Field(0).(*array.StringBuilder).Append("track")
	rb.Field(1).(*array.StringBuilder).Append("track")
	rec := rb.NewRecord()
	rb.Release()
	if err := s.Write(context.Background(), a.install(pipeline.NewBatch("s", 0, rec))); err == nil || !strings.Contains(err.Error(), "two columns write type") {
		t.Fatalf("schema error: %v", err)
	}
	// A panic while encoding: a dictionary index past its dictionary.
	bad := makeBatch(mem, "s", 0, 3)
	events := arrowtest.CorruptDictionary(t, mem, 3)
	bad.ReplaceRecord(arrowtest.WithColumn(bad.Record, "event", events))
	events.Release()
	var pe *pipeline.PanicError
	if err := s.Write(context.Background(), a.install(bad)); !errors.As(err, &pe) || !strings.Contains(err.Error(), "s[0:3]: encoding messages panicked: runtime error: index out of range") {
		t.Fatalf("panic: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, a.install(makeBatch(mem, "s", 0, 1))); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if n, errs := a.get(); n != 4 || len(errs) != 4 {
		t.Fatalf("%d acks, %d errors", n, len(errs))
	}
}

func TestConfig(t *testing.T) {
	reg := config.NewRegistry()
	// A source is required by the pipeline file; it is never built here.
	reg.Register(config.SourcePlugin("none", config.NewSpec("no rows"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) {
		return nil, errors.New("not built in this test")
	}))
	reg.Register(Plugins()...)
	load := func(sink string) (*config.Pipeline, error) {
		return config.Load("p.yaml", []byte("name: p\nsource: {none: {}}\nsink:\n  file:\n"+sink), config.LoadOptions{Registry: reg})
	}
	dir := t.TempDir()
	cfg, err := load("    path: " + filepath.Join(dir, "o.ndjson") + "\n")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Sink.Conf
	if c.Duration("sync_interval") != time.Second || c.String("mode") != ModeAuto || c.Int("max_message_bytes") != 32000 {
		t.Fatalf("defaults: %v %q %d", c.Duration("sync_interval"), c.String("mode"), c.Int("max_message_bytes"))
	}
	sk, err := NewFromConf(c, &pipeline.Env{Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"    mode: overwrite\n    path: x\n", "mode"},
		{"    sync_interval: -1s\n    path: x\n", "sync_interval"},
		{"    max_message_bytes: 0\n    path: x\n", "max_message_bytes"},
		{"    sync_interval: 1s\n", "path"},
	} {
		_, err := load(bad.yaml)
		if err == nil || !strings.Contains(err.Error(), "/sink/file/"+bad.want) {
			t.Fatalf("%q: %v", bad.yaml, err)
		}
	}
}

// TestModeAutoFollowsTheRun checks that the default mode starts the file
// over on a new run and keeps it when resuming, and that a sink built but
// never opened (validate) never touches it.
func TestModeAutoFollowsTheRun(t *testing.T) {
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	reg.Register(config.SourcePlugin("none", config.NewSpec("no rows"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) { return nil, nil }))
	path := filepath.Join(t.TempDir(), "o.ndjson")
	cfg, err := config.Load("p.yaml", []byte("name: p\nsource: {none: {}}\nsink:\n  file:\n    path: "+path+"\n"), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		open, resumed bool
		want          string
	}{
		{false, false, "old\n"},
		{true, true, "old\n"},
		{true, false, ""},
	} {
		if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		sk, err := NewFromConf(cfg.Sink.Conf, &pipeline.Env{Name: "p", Resumed: tc.resumed})
		if err != nil {
			t.Fatal(err)
		}
		if tc.open {
			if err := sk.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := sk.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != tc.want {
			t.Errorf("opened=%v resumed=%v: file %q, want %q", tc.open, tc.resumed, got, tc.want)
		}
	}
}

// Each shard of a sharded run writes its own file next to the configured
// one, so a shard starting afresh never truncates another's output.
func TestShardsWriteTheirOwnFiles(t *testing.T) {
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	reg.Register(config.SourcePlugin("none", config.NewSpec("no rows"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) { return nil, nil }))
	dir := t.TempDir()
	cfg, err := config.Load("p.yaml", []byte("name: p\nsource: {none: {}}\nsink:\n  file:\n    path: "+dir+"/o.ndjson\n"), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	mem := arrowtest.CheckedMem(t)
	for shard := 0; shard < 2; shard++ {
		sk, err := NewFromConf(cfg.Sink.Conf, &pipeline.Env{Name: "p", Shard: shard, Shards: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := sk.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := sk.Write(context.Background(), makeBatch(mem, "s", int64(shard), 1)); err != nil { // userId u<shard>
			t.Fatal(err)
		}
		if err := sk.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for shard := 0; shard < 2; shard++ {
		msgs := ndjsontest.Read(t, filepath.Join(dir, fmt.Sprintf("o-shard-%d-of-2.ndjson", shard)))
		if len(msgs) != 1 || msgs[0]["userId"] != fmt.Sprint("u", shard) {
			t.Fatalf("shard %d's file holds %v, want its one message", shard, msgs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "o.ndjson")); !os.IsNotExist(err) {
		t.Fatalf("a sharded run wrote the unsharded path: %v", err)
	}
}

// The file sink's lines keep the data's context.library unless library:
// backfill, and carry no sentAt but the data's: a file is not sent.
func TestLibraryAndSentAt(t *testing.T) {
	reg := config.NewRegistry()
	reg.Register(Plugins()...)
	reg.Register(config.SourcePlugin("none", config.NewSpec("no rows"), func(*config.Conf, *pipeline.Env) (pipeline.Source, error) { return nil, nil }))
	mem := arrowtest.CheckedMem(t)
	for _, tc := range []struct{ conf, want string }{
		{"", "analytics.js"},
		{"    library: backfill\n", "backfill"},
	} {
		path := filepath.Join(t.TempDir(), "o.ndjson")
		cfg, err := config.Load("p.yaml", []byte("name: p\nsource: {none: {}}\nsink:\n  file:\n    path: "+path+"\n"+tc.conf), config.LoadOptions{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		sk, err := NewFromConf(cfg.Sink.Conf, &pipeline.Env{Name: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if err := sk.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := arrow.NewSchema([]arrow.Field{
			{Name: "type", Type: arrow.BinaryTypes.String},
			{Name: "userId", Type: arrow.BinaryTypes.String},
			{Name: "event", Type: arrow.BinaryTypes.String},
			{Name: "context.library.name", Type: arrow.BinaryTypes.String},
			{Name: "sentAt", Type: arrow.BinaryTypes.String, Nullable: true},
		}, nil)
		b := array.NewRecordBuilder(mem, s)
		for i := 0; i < 2; i++ {
			b.Field(0).(*array.StringBuilder).Append("track")
			b.Field(1).(*array.StringBuilder).Append("u")
			b.Field(2).(*array.StringBuilder).Append("E")
			b.Field(3).(*array.StringBuilder).Append("analytics.js")
		}
		b.Field(4).(*array.StringBuilder).Append("2024-01-01T00:00:00Z")
		b.Field(4).(*array.StringBuilder).AppendNull()
		batch := pipeline.NewBatch("s", 0, b.NewRecord())
		b.Release()
		dl := &deadLetters{}
		if err := sk.Write(context.Background(), dl.Watch(batch)); err != nil {
			t.Fatal(err)
		}
		if err := sk.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		lines := ndjsontest.Read(t, path)
		if len(lines) != 2 {
			t.Fatalf("%d lines", len(lines))
		}
		for i, m := range lines {
			lib := m["context"].(map[string]any)["library"].(map[string]any)
			if lib["name"] != tc.want {
				t.Errorf("%q line %d: library %v", tc.conf, i, lib)
			}
		}
		if lines[0]["sentAt"] != "2024-01-01T00:00:00.000Z" {
			t.Errorf("the data's sentAt: %v", lines[0]["sentAt"])
		}
		if _, ok := lines[1]["sentAt"]; ok {
			t.Errorf("a sentAt the data does not have: %v", lines[1])
		}
	}
}
