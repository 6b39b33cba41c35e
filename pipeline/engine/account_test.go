package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// checkRows fails t unless the report's rows add up: every row read is
// delivered, filtered, rejected or unacknowledged, and none is negative.
func checkRows(t *testing.T, rep *Report) {
	t.Helper()
	r := rep.Rows()
	if r.Delivered < 0 || r.Filtered < 0 || r.Rejected < 0 || r.Unacked < 0 ||
		r.Read != r.Delivered+r.Filtered+r.Rejected+r.Unacked {
		t.Fatalf("rows do not add up: %+v", r)
	}
	if rep.SplitsDone > rep.Splits-rep.SplitsSkipped {
		t.Fatalf("%d splits done of %d", rep.SplitsDone, rep.Splits-rep.SplitsSkipped)
	}
}

// refusingSink is a destination that refuses the write key after the
// encoder set some rows aside: it dead-letters the first reject rows of
// every batch, then fails the batch, and every batch after it, as the
// segment sink does on a 401.
type refusingSink struct {
	reject int
	mu     sync.Mutex
	err    error
}

func (s *refusingSink) Open(context.Context) error { return nil }

func (s *refusingSink) Write(ctx context.Context, b *pipeline.Batch) error {
	defer b.Release()
	s.mu.Lock() // one request at a time: the first one fails for good
	defer s.mu.Unlock()
	if err := s.err; err != nil {
		b.Ack(err)
		return err
	}
	for i := 0; i < min(s.reject, int(b.NumRows())); i++ {
		if err := b.DeadLetter(ctx, pipeline.Reject{Row: b.Row(i), Stage: "sink", Reason: "track message has no event"}); err != nil {
			b.Ack(err)
			return err
		}
	}
	s.err = errors.New("HTTP 401: the write key is not valid")
	b.Ack(s.err)
	return nil
}

func (s *refusingSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// A sink that sets rows aside and then fails for good (a wrong write key)
// leaves those rows rejected and the rest unacknowledged: nothing is
// delivered, no count is negative, and no split is done.
func TestRowsAddUpWhenTheSinkFailsAfterRejecting(t *testing.T) {
	f := newFixture(t, 3, 100, "max_rejects: none\n")
	defer f.mem.AssertSize(t, 0)
	rep, err := f.run(context.Background(), &refusingSink{reject: 3}, Options{})
	if err == nil || !strings.Contains(err.Error(), "401") || rep.Status != "failed" {
		t.Fatalf("err %v, status %s", err, rep.Status)
	}
	checkRows(t, rep)
	if rep.RowsDelivered != 0 || rep.RowsRejected != 3 || rep.RowsUnacked != rep.RowsRead-3 || rep.SplitsDone != 0 {
		t.Fatalf("report %+v", rep)
	}
	if lines := readLines(t, rep.DeadLetters); len(lines) != 3 {
		t.Fatalf("%d dead letters, want 3", len(lines))
	}
}

// A split is done when every row read is acknowledged, not when it is
// read to its end: a destination that refuses everything leaves none done.
func TestSplitsAreDoneOnlyWhenAcknowledged(t *testing.T) {
	f := newFixture(t, 2, 20, "")
	defer f.mem.AssertSize(t, 0)
	rep, err := f.run(context.Background(), failAllSink{}, Options{})
	if err == nil {
		t.Fatal("want the sink's error")
	}
	checkRows(t, rep)
	if rep.SplitsDone != 0 || rep.RowsDelivered != 0 || rep.RowsUnacked != rep.RowsRead {
		t.Fatalf("report %+v", rep)
	}
	for id, st := range f.checkpoint().Splits {
		if st.Done || st.Offset != 0 {
			t.Fatalf("split %s saved as %+v", id, st)
		}
	}
}

// failAllSink fails every batch it is given, as a sink whose endpoint
// refuses connections does once its retries run out.
type failAllSink struct{}

func (failAllSink) Open(context.Context) error { return nil }
func (failAllSink) Write(ctx context.Context, b *pipeline.Batch) error {
	b.Release()
	b.Ack(errors.New("connection refused"))
	return nil
}
func (failAllSink) Close(context.Context) error { return errors.New("connection refused") }

// However often a failing run is retried, a rejected row is in the
// dead-letter file once, and the runs report it rejected each time.
func TestDeadLettersOnceAcrossRetriedRuns(t *testing.T) {
	f := newFixture(t, 2, 50, "max_rejects: none\n")
	f.src.badRows = map[int64]bool{4: true, 9: true}
	defer f.mem.AssertSize(t, 0)
	var path string
	for run := 0; run < 4; run++ {
		rep, err := f.run(context.Background(), &refusingSink{reject: 2}, Options{})
		if err == nil {
			t.Fatalf("run %d: want the sink's error", run)
		}
		checkRows(t, rep)
		if rep.RowsRejected < 4 {
			t.Fatalf("run %d rejected %d rows, want at least the 4 bad ones", run, rep.RowsRejected)
		}
		path = rep.DeadLetters
	}
	seen := map[string]int{}
	for _, line := range readLines(t, path) {
		var dl struct {
			Split, Stage string
			Row          int64
		}
		if err := json.Unmarshal([]byte(line), &dl); err != nil {
			t.Fatal(err)
		}
		seen[fmt.Sprintf("%s#%d %s", dl.Split, dl.Row, dl.Stage)]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s is in the dead-letter file %d times", k, n)
		}
	}
	if len(seen) < 4 {
		t.Fatalf("%d dead letters: %v", len(seen), seen)
	}
}

// rejectAllSink sets every row aside, as a collector answering 400 to
// every message makes the segment sink do.
type rejectAllSink struct{}

func (rejectAllSink) Open(context.Context) error { return nil }
func (rejectAllSink) Write(ctx context.Context, b *pipeline.Batch) error {
	defer b.Release()
	for i := 0; i < int(b.NumRows()); i++ {
		if err := b.DeadLetter(ctx, pipeline.Reject{Row: b.Row(i), Stage: "sink", Reason: "HTTP 400", Status: 400}); err != nil {
			b.Ack(err)
			return err
		}
	}
	b.Ack(nil)
	return nil
}
func (rejectAllSink) Close(context.Context) error { return nil }

// A run whose every row is rejected is not "ok": the default max_rejects
// stops it. max_rejects: none lets it finish, for those who ask.
func TestEveryRowRejectedFailsTheRun(t *testing.T) {
	f := newFixture(t, 3, 1000, "")
	defer f.mem.AssertSize(t, 0)
	rep, err := f.run(context.Background(), rejectAllSink{}, Options{})
	if !errors.Is(err, ErrTooManyRejects) || rep.Status != "failed" || !strings.Contains(err.Error(), "max_rejects 10%") {
		t.Fatalf("err %v, status %s", err, rep.Status)
	}
	checkRows(t, rep)
	if rep.RowsDelivered != 0 || rep.RowsRejected == 0 {
		t.Fatalf("report %+v", rep)
	}
	if lines := readLines(t, rep.DeadLetters); int64(len(lines)) != rep.RowsRejected {
		t.Fatalf("%d dead letters for %d rejected rows", len(lines), rep.RowsRejected)
	}

	f = newFixture(t, 3, 100, "max_rejects: none\n")
	rep, err = f.run(context.Background(), rejectAllSink{}, Options{})
	if err != nil || rep.Status != "ok" || rep.RowsRejected != 300 {
		t.Fatalf("max_rejects none: %v, %+v", err, rep)
	}
	checkRows(t, rep)
	f.mem.AssertSize(t, 0)
}

// rejectTransform turns away every third row, as the timestamp transform
// does with a time it cannot read.
type rejectTransform struct{ f *fixture }

func (x rejectTransform) Apply(_ context.Context, b *pipeline.Batch) error {
	mask := make([]uint8, b.NumRows())
	rejects := map[int]*pipeline.Reject{}
	for i := range mask {
		if b.Row(i)%3 == 0 {
			mask[i] = pipeline.FateReject
			rejects[i] = &pipeline.Reject{Stage: "transform:test", Column: "id", Reason: "not a date"}
		}
	}
	return b.DropMask(x.f.mem, mask, rejects)
}

// A row a transform rejects goes to the dead-letter file with its values
// as the transform saw them, so it can be fixed and sent again.
func TestTransformRejectsCarryTheRow(t *testing.T) {
	f := newFixture(t, 1, 9, "max_rejects: none\ntransforms: [{reject: {}}]\n")
	defer f.mem.AssertSize(t, 0)
	reg := f.registry(newAckSink(0))
	reg.Register(config.TransformPlugin("reject", config.NewSpec("rejects every third row"),
		func(*config.Conf, *pipeline.Env) (pipeline.Transform, error) { return rejectTransform{f}, nil }))
	cfg, err := config.Load("gen.yaml", []byte(f.yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := New(cfg, Options{Registry: reg, Alloc: f.mem}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rep)
	lines := readLines(t, rep.DeadLetters)
	if len(lines) != 3 {
		t.Fatalf("%d dead letters, want 3", len(lines))
	}
	for _, line := range lines {
		var dl struct {
			Row    int64
			Values map[string]any
		}
		if err := json.Unmarshal([]byte(line), &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Values["id"] != fmt.Sprintf("s00:%d", dl.Row) {
			t.Fatalf("dead letter %s: want the row's values", line)
		}
	}
}
