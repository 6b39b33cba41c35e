package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// downSink is a destination that is down: it holds every batch as a
// request it keeps retrying, until the run stops (its Open context ends);
// then it abandons them, as the segment sink does.
type downSink struct {
	stopping context.Context
	first    chan struct{} // closed when the first batch is in
	once     sync.Once
	mu       sync.Mutex
	held     []*pipeline.Batch
}

func (s *downSink) Open(ctx context.Context) error { s.stopping = ctx; return nil }

func (s *downSink) Write(ctx context.Context, b *pipeline.Batch) error {
	b.Release()
	s.mu.Lock()
	s.held = append(s.held, b)
	s.mu.Unlock()
	s.once.Do(func() { close(s.first) })
	return nil
}

func (s *downSink) Close(ctx context.Context) error {
	select {
	case <-s.stopping.Done():
	case <-ctx.Done():
	}
	err := fmt.Errorf("endpoint down: %d batches abandoned (%w)", len(s.held), pipeline.ErrStopped)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.held {
		b.Ack(err)
	}
	return err
}

// A stop while the destination is down ends the run at once, without
// waiting out the grace period or the retries: the run is interrupted,
// not failed, and the rows in flight stay unacknowledged for the resume.
func TestStopWhileTheDestinationIsDown(t *testing.T) {
	f := newFixture(t, 2, 100, "")
	defer f.mem.AssertSize(t, 0)
	sink := &downSink{first: make(chan struct{})}
	ctx, stop := context.WithCancel(context.Background())
	go func() { <-sink.first; stop() }()
	// A grace of an hour: the test would time out were it waited for.
	rep, err := f.run(ctx, sink, Options{Grace: 1 << 62})
	if !errors.Is(err, ErrInterrupted) || rep.Status != "interrupted" {
		t.Fatalf("err %v, status %s (%s)", err, rep.Status, rep.Error)
	}
	if rep.RowsDelivered != 0 || rep.RowsUnacked != rep.RowsRead || rep.RowsRead == 0 {
		t.Fatalf("report %+v", rep)
	}
	for id, st := range f.checkpoint().Splits {
		if st.Offset != 0 || st.Done {
			t.Fatalf("split %s saved as %+v", id, st)
		}
	}
	// The resume delivers everything.
	sink2 := newAckSink(0)
	if rep, err := f.run(context.Background(), sink2, Options{}); err != nil || len(sink2.got) != 200 {
		t.Fatalf("resume: %v, %d rows; %+v", err, len(sink2.got), rep)
	}
}

// jobSource plays a warehouse source that starts a billable job while it
// lists its splits (a BigQuery query) and saves the job's id before it
// waits for the job.
type jobSource struct{}

func (s jobSource) Splits(ctx context.Context) ([]pipeline.Split, error) {
	<-ctx.Done() // the job runs until the run is stopped
	return nil, ctx.Err()
}

func (s jobSource) Open(context.Context, pipeline.Split, pipeline.ReadOptions) (pipeline.RecordReader, error) {
	return nil, errors.New("not reached")
}

// A run stopped while its source waits for a job it started keeps the
// job's id: the rerun picks the job up instead of paying for it again.
func TestStopWhileListingKeepsTheSourceState(t *testing.T) {
	f := newFixture(t, 0, 0, "")
	saved := make(chan struct{})
	reg := config.NewRegistry()
	reg.Register(config.SourcePlugin("gen", config.NewSpec("a source that starts a job"), func(_ *config.Conf, env *pipeline.Env) (pipeline.Source, error) {
		env.State.Set("job_id", "job-1")
		if err := env.State.Save(context.Background()); err != nil {
			return nil, err
		}
		close(saved)
		return jobSource{}, nil
	}))
	reg.Register(config.SinkPlugin("acks", config.NewSpec("acks"), func(*config.Conf, *pipeline.Env) (pipeline.Sink, error) { return newAckSink(0), nil }))
	cfg, err := config.Load("gen.yaml", []byte(f.yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	go func() { <-saved; stop() }()
	rep, err := New(cfg, Options{Registry: reg}).Run(ctx)
	if !errors.Is(err, ErrInterrupted) || rep.Status != "interrupted" {
		t.Fatalf("err %v, status %s (%s)", err, rep.Status, rep.Error)
	}
	if got := f.checkpoint().SourceState["job_id"]; got != "job-1" {
		t.Fatalf("saved source state %v, want the job's id", f.checkpoint().SourceState)
	}
}
