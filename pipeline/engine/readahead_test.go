package engine

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline"
)

// countReader makes n empty batches, counting Next calls; each Next takes
// delay, or waits for its context when block is set.
type countReader struct {
	n     int64
	delay time.Duration
	block bool
	calls atomic.Int64
}

func (r *countReader) Next(ctx context.Context) (*pipeline.Batch, error) {
	c := r.calls.Add(1)
	if r.block && c > 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	time.Sleep(r.delay)
	if c > r.n {
		return nil, io.EOF
	}
	return &pipeline.Batch{Split: "s", Start: c - 1, End: c}, nil
}

func (r *countReader) Close() error { return nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

// One batch ahead, not more: memory holds the worker's batch and one read.
func TestReadAheadHoldsOneBatch(t *testing.T) {
	rd := &countReader{n: 100}
	ra := startReadAhead(context.Background(), rd)
	defer ra.Close()
	if b, err := ra.Next(); err != nil || b.Start != 0 {
		t.Fatal(b, err)
	}
	waitFor(t, func() bool { return rd.calls.Load() >= 2 })
	time.Sleep(20 * time.Millisecond)
	if n := rd.calls.Load(); n != 2 {
		t.Fatalf("the worker holds batch 0 and Next was called %d times, want 2", n)
	}
}

// Close cancels a read in progress (a slow GET) and starts no other.
func TestReadAheadCloseCancelsTheReadInProgress(t *testing.T) {
	rd := &countReader{n: 100, block: true}
	ra := startReadAhead(context.Background(), rd)
	if _, err := ra.Next(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return rd.calls.Load() == 2 })
	done := make(chan struct{})
	go func() { ra.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close waited for a read it should have cancelled")
	}
	if n := rd.calls.Load(); n != 2 {
		t.Fatalf("Next called %d times, want 2", n)
	}
	ra.Close() // a second Close does nothing
}

// Close while reads go on starts at most the read already under way.
func TestReadAheadCloseStopsReading(t *testing.T) {
	for i := 0; i < 50; i++ {
		rd := &countReader{n: 1000, delay: 200 * time.Microsecond}
		ra := startReadAhead(context.Background(), rd)
		ra.Next()
		ra.Next()
		before := rd.calls.Load()
		ra.Close()
		if extra := rd.calls.Load() - before; extra > 1 {
			t.Fatalf("%d reads started after Close began", extra)
		}
	}
}

// The error that ended the reads comes back on every later Next.
func TestReadAheadErrorIsSticky(t *testing.T) {
	ra := startReadAhead(context.Background(), &countReader{n: 1})
	defer ra.Close()
	if _, err := ra.Next(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := ra.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("call %d: %v, want io.EOF", i, err)
		}
	}
}
