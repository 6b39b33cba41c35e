package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// A source that panics on one split's data fails that split with the
// panic's value; the others are delivered and the process goes on.
func TestRunSourcePanicFailsItsSplit(t *testing.T) {
	f := newFixture(t, 4, 30, "")
	defer f.mem.AssertSize(t, 0)
	calls := 0
	f.src.onNext = func(_ context.Context, split string) {
		if split == "s02" {
			calls++
			if calls == 2 {
				panic("decoder bug")
			}
		}
	}
	sink := newAckSink(0)
	var logs syncBuffer
	rep, err := f.run(context.Background(), sink, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || !strings.Contains(err.Error(), "1 split(s) failed: [s02]") {
		t.Fatalf("run error: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "reading panicked: decoder bug") || !strings.Contains(l, "the panic's stack") || !strings.Contains(l, "panics_test.go") {
		t.Errorf("the log does not hold the panic and its stack:\n%s", l)
	}
	if len(rep.SplitsFailed) != 1 || rep.SplitsFailed[0] != "s02" {
		t.Fatalf("failed splits %v", rep.SplitsFailed)
	}
	for _, s := range []string{"s00", "s01", "s03"} {
		for i := 0; i < 30; i++ {
			if id := fmt.Sprintf("%s:%d", s, i); sink.got[id] != 1 {
				t.Fatalf("row %s delivered %d times", id, sink.got[id])
			}
		}
	}
}

// A transform that panics stops the run (a transform error is fatal) with
// an error naming it, not a crash.
func TestRunTransformPanicStopsTheRun(t *testing.T) {
	f := newFixture(t, 2, 30, "transforms:\n  - boom: {}\n")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	reg := f.registry(sink)
	reg.Register(config.TransformPlugin("boom", config.NewSpec("panics on the second batch"), func(*config.Conf, *pipeline.Env) (pipeline.Transform, error) {
		return &boom{}, nil
	}))
	cfg, err := config.Load("gen.yaml", []byte(f.yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{Registry: reg, Alloc: f.mem}).Run(context.Background())
	var pe *pipeline.PanicError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "transform #1 boom panicked: runtime error: index out of range") || len(pe.Stack) == 0 {
		t.Fatalf("run error: %v", err)
	}
}

// A sink that panics in Write stops the run with the panic as its error,
// not a crash; the stack is in the log.
func TestRunSinkPanicStopsTheRun(t *testing.T) {
	f := newFixture(t, 2, 30, "")
	defer f.mem.AssertSize(t, 0)
	sink := &panicSink{ackSink: newAckSink(0)}
	var logs syncBuffer
	_, err := f.run(context.Background(), sink, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var pe *pipeline.PanicError
	if !errors.As(err, &pe) || pe.Where != "sink" || !strings.Contains(err.Error(), "sink panicked: encoder bug") {
		t.Fatalf("run error: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "the panic's stack") || !strings.Contains(l, "panics_test.go") {
		t.Errorf("the log does not hold the panic's stack:\n%s", l)
	}
}

// A source that panics listing its splits, and a sink that panics in
// Close, fail the run with the panic as its error.
func TestRunListingAndClosePanicsFailTheRun(t *testing.T) {
	f := newFixture(t, 2, 30, "")
	defer f.mem.AssertSize(t, 0)
	f.src.splits = -1 // make([]Split, -1) panics
	_, err := f.run(context.Background(), newAckSink(0), Options{})
	var pe *pipeline.PanicError
	if !errors.As(err, &pe) || pe.Where != "listing splits" || !strings.Contains(err.Error(), "makeslice") {
		t.Fatalf("listing: %v", err)
	}

	// Both: the listing error is the run's, the Close panic is logged.
	var logs syncBuffer
	_, err = f.run(context.Background(), closePanics{newAckSink(0)}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !errors.As(err, &pe) || pe.Where != "listing splits" || !strings.Contains(logs.String(), "closing the sink panicked") {
		t.Fatalf("listing, then close: %v\n%s", err, logs.String())
	}

	f = newFixture(t, 2, 30, "")
	defer f.mem.AssertSize(t, 0)
	_, err = f.run(context.Background(), closePanics{newAckSink(0)}, Options{})
	if !errors.As(err, &pe) || pe.Where != "closing the sink" || !strings.Contains(err.Error(), "close bug") {
		t.Fatalf("close: %v", err)
	}
}

// A reader that panics as it closes, after its rows were all read, leaves
// the run whole: every row is delivered and the panic is in the log.
func TestRunReaderClosePanicIsLogged(t *testing.T) {
	f := newFixture(t, 3, 30, "")
	defer f.mem.AssertSize(t, 0)
	f.src.onClose = func(split string) {
		if split == "s01" {
			panic("close bug")
		}
	}
	sink := newAckSink(0)
	var logs syncBuffer
	if _, err := f.run(context.Background(), sink, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); !strings.Contains(l, "closing a reader panicked") || !strings.Contains(l, "split=s01") || !strings.Contains(l, "the panic's stack") {
		t.Errorf("log:\n%s", l)
	}
	if len(sink.got) != 90 {
		t.Fatalf("%d rows delivered", len(sink.got))
	}
}

type closePanics struct{ *ackSink }

func (s closePanics) Close(ctx context.Context) error {
	s.ackSink.Close(ctx)
	panic("close bug")
}

// panicSink panics in its third Write, having released the batch as a
// sink owning it would.
type panicSink struct {
	*ackSink
	n atomic.Int32
}

func (s *panicSink) Write(ctx context.Context, b *pipeline.Batch) error {
	if s.n.Add(1) == 3 {
		b.Release()
		panic("encoder bug")
	}
	return s.ackSink.Write(ctx, b)
}

type boom struct{ n atomic.Int32 }

func (b *boom) Apply(_ context.Context, _ *pipeline.Batch) error {
	if n := int(b.n.Add(1)); n >= 2 {
		var s []int
		_ = s[n] // index out of range
	}
	return nil
}

// A transform that returns (not panics with) one *PanicError from every
// worker gets it back unchanged: the runner names panics as they are
// recovered, and never edits an error it was handed (under -race, a shared
// one edited by several workers was a data race).
func TestRunTransformReturningAPanicErrorKeepsIt(t *testing.T) {
	f := newFixture(t, 6, 30, "transforms:\n  - stored: {}\n")
	defer f.mem.AssertSize(t, 0)
	sink := newAckSink(0)
	reg := f.registry(sink)
	shared := &pipeline.PanicError{Where: "inner", Value: "once"}
	reg.Register(config.TransformPlugin("stored", config.NewSpec("returns one stored error"), func(*config.Conf, *pipeline.Env) (pipeline.Transform, error) {
		return storedErr{shared}, nil
	}))
	cfg, err := config.Load("gen.yaml", []byte(f.yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{Registry: reg, Alloc: f.mem}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "inner panicked: once") || shared.Where != "inner" {
		t.Fatalf("run error %v; the stored error now says %q", err, shared.Where)
	}
}

type storedErr struct{ err error }

func (s storedErr) Apply(context.Context, *pipeline.Batch) error { return s.err }

// syncBuffer is a bytes.Buffer the run's goroutines may log to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
