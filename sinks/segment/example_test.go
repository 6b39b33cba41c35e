package segment_test

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/internal/sampledata"
	"github.com/backfillhq/backfill/internal/segmenttest"
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

	s, err := segment.New(segment.Options{Endpoint: rcv.URL(), WriteKey: "wk", Gzip: true,
		MaxEvents: 500, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		&pipeline.Env{Name: "orders-2024", Version: "1.0.0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	b := pipeline.NewBatch("events.parquet", 0, sampledata.TrackEvents(memory.NewGoAllocator(), 0, 5000))
	acked := make(chan error, 1)
	b.SetAck(func(err error) { acked <- err })
	if err := s.Write(ctx, b); err != nil { // returns once queued; the ack comes later
		fmt.Println(err)
		return
	}
	if err := s.Close(ctx); err != nil { // delivers what is queued
		fmt.Println(err)
		return
	}
	fmt.Println("batch acknowledged, error:", <-acked)
	st := rcv.Stats()
	fmt.Println("received:", st.Messages, "distinct ids:", st.UniqueIDs, "duplicates:", st.Duplicates, "over limits:", st.Violations)
	fmt.Println("failed attempts were retried:", st.ByStatus[500] > 0 && s.Stats()["retries"] > 0)
	// Output:
	// batch acknowledged, error: <nil>
	// received: 5000 distinct ids: 5000 duplicates: 0 over limits: 0
	// failed attempts were retried: true
}
