package engine

import (
	"context"
	"sync"

	"github.com/backfillhq/backfill/pipeline"
)

// readAhead reads a split's batches on its own goroutine, one batch ahead
// of the worker: a source decodes the next batch while the transforms and
// the sink encode this one. Without it a split (one large file is one
// split) is read and encoded by turns, on one core at a time.
type readAhead struct {
	out    chan fetched // unbuffered: the goroutine holds at most one batch
	stop   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error // the error that ended the reads, once Next returned it
}

type fetched struct {
	b   *pipeline.Batch
	err error
}

// startReadAhead calls rd.Next until it returns an error (io.EOF included),
// which Next hands on as the last result.
func startReadAhead(ctx context.Context, rd pipeline.RecordReader) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{out: make(chan fetched), stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		defer close(ra.out)
		for !ra.stopped() { // a stop wins over reading once more
			var b *pipeline.Batch
			err := pipeline.Safely("reading", func() (err error) {
				b, err = rd.Next(ctx)
				return err
			})
			sent := false
			if !ra.stopped() { // and over sending (a select picks at random)
				select {
				case ra.out <- fetched{b, err}:
					sent = true
				case <-ra.stop:
				}
			}
			if !sent && b != nil {
				b.Release()
			}
			if !sent || err != nil {
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) stopped() bool {
	select {
	case <-ra.stop:
		return true
	default:
		return false
	}
}

// Next returns the next batch, or the error that ended the reads (again on
// every later call).
func (ra *readAhead) Next() (*pipeline.Batch, error) {
	if ra.err != nil {
		return nil, ra.err
	}
	f, ok := <-ra.out
	if !ok {
		return nil, context.Canceled // closed: not reached by readSplit
	}
	if f.err != nil {
		ra.err = f.err
	}
	return f.b, f.err
}

// Close stops reading (cancelling a Next in progress), releases a batch
// read but not taken, and returns once the reader is no longer used, so it
// can then be closed. Later calls do nothing.
func (ra *readAhead) Close() {
	ra.once.Do(func() {
		close(ra.stop)
		ra.cancel()
		for f := range ra.out {
			if f.b != nil {
				f.b.Release()
			}
		}
		<-ra.done
	})
}
