package segment

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/acktest"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sinks/message"
	"go.uber.org/goleak"
)

// The sink starts senders, a flusher and HTTP connections; every test
// must leave none of them running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadLetters records what the sink says of each batch's rows: delivered
// counts, dead letters and acks.
type deadLetters = acktest.Recorder

// loadConf parses a sink config the way a pipeline file is parsed.
func loadConf(t *testing.T, sinkYAML string) (*config.Conf, error) {
	t.Helper()
	reg := config.NewRegistry()
	reg.Register(config.SourcePlugin("stub", config.NewSpec("a source that is never opened"),
		func(*config.Conf, *pipeline.Env) (pipeline.Source, error) { return nil, nil }))
	reg.Register(config.SinkPlugin("segment", spec(), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) { return nil, nil }))
	doc := "name: test\nsource:\n  stub: {}\nsink:\n  segment:\n" + indent(sinkYAML, "    ")
	cfg, err := config.Load("test.yaml", []byte(doc), config.LoadOptions{Registry: reg,
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		return nil, err
	}
	return cfg.Sink.Conf, nil
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = by + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// newSink builds a sink from YAML config against a receiver, and opens it.
func newSink(t *testing.T, url, extra string) *Sink {
	t.Helper()
	return newSinkEnv(t, url, extra, &pipeline.Env{Name: "test", Version: "1.2.3"})
}

// newSinkEnv is newSink with a whole Env (shards, say).
func newSinkEnv(t *testing.T, url, extra string, env *pipeline.Env) *Sink {
	t.Helper()
	c, err := loadConf(t, "endpoint: "+url+"\nwrite_key: KEY\n"+extra)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	opts, err := OptionsFromConf(c)
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	s, err := New(opts, env)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// sendAll writes the batches and closes the sink, failing t on an error.
func sendAll(t *testing.T, s *Sink, batches ...*pipeline.Batch) {
	t.Helper()
	for _, b := range batches {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// rowKind says what a generated row is.
type rowKind int

const (
	good     rowKind = iota
	noEvent          // a track without event: the encoder rejects it
	oversize         // a message over 32,000 bytes
	big              // a valid message of ~12 KB, to fill requests by bytes
)

// makeBatch builds rows [start, start+n) of split as a record whose columns
// are message paths. kind picks each row's shape.
func makeBatch(mem memory.Allocator, split string, start, n int, kind func(row int) rowKind) *pipeline.Batch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "type", Type: arrow.BinaryTypes.String},
		{Name: "userId", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "event", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "properties.n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "properties.s", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	bld := array.NewRecordBuilder(mem, schema)
	defer bld.Release()
	typ := bld.Field(0).(*array.StringBuilder)
	uid := bld.Field(1).(*array.StringBuilder)
	ev := bld.Field(2).(*array.StringBuilder)
	ts := bld.Field(3).(*array.TimestampBuilder)
	pn := bld.Field(4).(*array.Int64Builder)
	ps := bld.Field(5).(*array.StringBuilder)
	base := time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < n; i++ {
		row := start + i
		k := good
		if kind != nil {
			k = kind(row)
		}
		typ.Append("track")
		uid.Append(fmt.Sprintf("user-%d", row%977))
		if k == noEvent {
			ev.AppendNull()
		} else {
			ev.Append("Order Completed")
		}
		ts.Append(arrow.Timestamp(base + int64(row)*1000))
		pn.Append(int64(row))
		switch k {
		case oversize:
			ps.Append(strings.Repeat("x", 33_000))
		case big:
			ps.Append(strings.Repeat("b", 12_000))
		default:
			ps.Append("plan-pro")
		}
	}
	rec := bld.NewRecord()
	return pipeline.NewBatch(split, int64(start), rec)
}

func id(split string, row int) string { return message.DeriveID("test", split, int64(row)) }
