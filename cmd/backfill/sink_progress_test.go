package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline/engine"
)

// lockedBuffer is a bytes.Buffer the run's goroutines may write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The progress line counts delivery per acknowledged request, not per
// batch: the 3,000 orders are one batch, sent as requests of 100; the
// collector answers two and holds the rest, and the line says 200
// delivered while the batch is still unacknowledged.
func TestSinkProgressMovesPerRequest(t *testing.T) {
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, HoldAfter: 2})
	t.Cleanup(srv.Close)
	path := sampleOrdersToSegment(t, t.TempDir(), "progress", srv.URL(), "    batch: {max_events: 100}\n    request: {concurrency: 1}\n")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	view := newProgressView(&out, "log", slog.New(slog.NewTextHandler(&out, nil)))
	type result struct {
		rep *engine.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := engine.New(cfg, engine.Options{Fresh: true, Progress: view.update, ProgressEvery: 10 * time.Millisecond}).Run(context.Background())
		done <- result{rep, err}
	}()
	select {
	case <-srv.Held(1):
	case <-time.After(30 * time.Second):
		t.Fatal("the third request never came")
	}
	// Two requests are answered, the batch of 3,000 is not done: the
	// progress line must say 200 delivered, out of 3,000 read.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "read=3000 delivered=200 ") {
		if time.Now().After(deadline) {
			srv.Release()
			<-done
			t.Fatalf("no progress line with 200 delivered:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Release()
	r := <-done
	if r.err != nil || r.rep.RowsDelivered != 3000 {
		t.Fatalf("run: %v, %+v", r.err, r.rep)
	}
}
