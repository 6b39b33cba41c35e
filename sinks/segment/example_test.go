package segment_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/segment"
)

// The sink turns records into /v1/batch requests. Here a third of the
// requests fail with a 500 and a tenth are dropped mid-connection; the sink
// retries them with the same messageIds, acknowledges the batch only once
// every row is delivered, and the receiver gets each message exactly once.
func ExampleNew() {
	rcv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"wk"}, Seed: 1, Fail500: 0.3, Drop: 0.1})
	defer rcv.Close()

	opts := segment.DefaultOptions() // the spec's defaults
	opts.Endpoint, opts.WriteKey = rcv.URL(), "wk"
	opts.MaxEvents, opts.InitialBackoff, opts.MaxBackoff = 500, time.Millisecond, 10*time.Millisecond
	s, err := segment.New(opts, &pipeline.Env{Name: "orders-2024", Version: "1.0.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := s.Open(ctx); err != nil { // starts the senders
		fmt.Println(err)
		return
	}
	b := pipeline.NewBatch("events.parquet", 0, sampledata.TrackEvents(memory.NewGoAllocator(), 0, 5000))
	acct := &account{done: make(chan error, 1)}
	b.SetAccount(acct)                      // what the sink says of the rows
	if err := s.Write(ctx, b); err != nil { // returns once queued; the ack comes later
		fmt.Println(err)
		return
	}
	if err := s.Close(ctx); err != nil { // delivers what is queued
		fmt.Println(err)
		return
	}
	fmt.Println("batch acknowledged, error:", <-acct.done, "delivered:", acct.delivered.Load())
	st := rcv.Stats()
	fmt.Println("received:", st.Messages, "distinct ids:", st.UniqueIDs, "duplicates:", st.Duplicates, "over limits:", st.Violations)
	fmt.Println("failed attempts were retried:", st.ByStatus[500] > 0 && s.Stats()["retries"] > 0)
	// Output:
	// batch acknowledged, error: <nil> delivered: 5000
	// received: 5000 distinct ids: 5000 duplicates: 0 over limits: 0
	// failed attempts were retried: true
}

// account is a batch's pipeline.Account: the engine's counts each row's
// fate and moves the checkpoint; this one counts deliveries and hands over
// the ack.
type account struct {
	delivered atomic.Int64
	done      chan error
}

func (a *account) Delivered(n int) { a.delivered.Add(int64(n)) }
func (a *account) DeadLetter(context.Context, pipeline.Reject) error {
	return errors.New("no dead-letter file in this example")
}
func (a *account) Done(err error) { a.done <- err }
