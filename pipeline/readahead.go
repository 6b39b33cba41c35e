package pipeline

import (
	"context"
	"io"
)

// readAhead reads a split's batches on its own goroutine, one batch ahead
// of the worker: a source decodes the next batch while the transforms and
// the sink encode this one. Without it a split (one large file is one
// split) is read and encoded by turns, on one core at a time.
type readAhead struct {
	out  chan fetched
	stop chan struct{}
	done chan struct{}
}

type fetched struct {
	b   *Batch
	err error
}

// startReadAhead calls rd.Next until it returns an error (io.EOF included),
// which Next hands on as the last result.
func startReadAhead(ctx context.Context, rd RecordReader) *readAhead {
	ra := &readAhead{out: make(chan fetched, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		defer close(ra.out)
		for {
			b, err := rd.Next(ctx)
			select {
			case ra.out <- fetched{b, err}:
			case <-ra.stop:
				if b != nil {
					b.Release()
				}
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

// Next returns the next batch, or the error that ended the reads.
func (ra *readAhead) Next() (*Batch, error) {
	f, ok := <-ra.out
	if !ok {
		return nil, io.EOF // the reads ended with the error already returned
	}
	return f.b, f.err
}

// Close stops reading, releases the batches read but not taken, and
// returns once the reader is no longer used, so it can then be closed.
func (ra *readAhead) Close() {
	close(ra.stop)
	for f := range ra.out {
		if f.b != nil {
			f.b.Release()
		}
	}
	<-ra.done
}
