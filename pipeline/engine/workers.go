package engine

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

// workers reads the plan's splits with cfg.Workers goroutines, one split
// each at a time, until all are read, the run stops or it fails.
type workers struct {
	r *Run

	failedMu sync.Mutex
	failed   []string // splits that failed while the run went on

	limitHit atomic.Bool
	// rows and bytes of the splits read whole this run, for Progress's
	// estimate when sources cannot count rows up front (gzip, S3); read as
	// a pair, or a split finishing between the two would skew the ratio.
	wholeMu               sync.Mutex
	wholeRows, wholeBytes int64
}

// run feeds the splits to the workers and returns when every worker is
// done.
func (w *workers) run() {
	r := w.r
	queue := make(chan work)
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range queue {
				w.readOrReport(job)
			}
		}()
	}
feed:
	for _, job := range r.plan.todo {
		select {
		case queue <- job:
		case <-r.runCtx.Done():
			break feed
		}
		if w.limitHit.Load() {
			break
		}
	}
	close(queue)
	wg.Wait()
}

// readOrReport reads a split. A split that fails is set aside while the
// run goes on, unless on_error says stop; any other error stops the run.
func (w *workers) readOrReport(job work) {
	err := w.read(job)
	var se *splitError
	switch {
	case err == nil:
	case errors.As(err, &se) && w.r.cfg.OnError != config.OnErrorStop:
		w.r.log.Error("split failed; the run goes on with the others", "split", se.split, "error", se.err)
		logPanicStack(w.r.log, err, "split", se.split)
		w.failedMu.Lock()
		w.failed = append(w.failed, se.split)
		w.failedMu.Unlock()
	default:
		w.r.fail(err)
	}
}

// read reads one split from its offset, a batch ahead of the transforms
// and the sink.
func (w *workers) read(job work) error {
	r := w.r
	var rd pipeline.RecordReader
	err := pipeline.Safely("opening", func() (err error) {
		rd, err = r.built.Source.Open(r.runCtx, job.split, pipeline.ReadOptions{
			Offset: job.offset, Columns: r.built.Columns, BatchRows: r.cfg.BatchRows})
		return err
	})
	if err != nil {
		if r.runCtx.Err() != nil && !isPanic(err) {
			return nil // stopped, not failed
		}
		return &splitError{job.split.ID, err}
	}
	defer closeSafely(r.log, "closing a reader", rd.Close, "split", job.split.ID)
	ra := startReadAhead(r.runCtx, rd)
	defer ra.Close() // before rd.Close
	r.tracker.open(job.split.ID, job.offset)
	end := job.offset // the row after the last read
	for {
		if r.opts.Limit > 0 && r.ledger.read.Load() >= r.opts.Limit {
			w.limitHit.Store(true)
			return nil
		}
		b, err := ra.Next()
		if err == io.EOF {
			r.tracker.finish(job.split.ID)
			if job.offset == 0 && job.split.Bytes > 0 {
				w.wholeMu.Lock()
				w.wholeRows += end
				w.wholeBytes += job.split.Bytes
				w.wholeMu.Unlock()
			}
			return nil
		}
		if err != nil {
			if r.runCtx.Err() != nil && !isPanic(err) {
				return nil // stopped, not failed; a panic is reported even then
			}
			return &splitError{job.split.ID, err}
		}
		end = b.End
		if err := r.handle(b); err != nil {
			// Stop the run now, not after the deferred closes: they wait
			// for a read in progress, and other splits would go on
			// delivering meanwhile.
			r.fail(err)
			return err
		}
	}
}

// handle runs one batch through the transforms, sets its rejects aside
// and hands the rest to the sink, with the account the sink reports to.
func (r *Run) handle(b *pipeline.Batch) error {
	rng, err := r.tracker.register(b.Split, b.Start, b.End)
	if err != nil {
		b.Release()
		return err
	}
	r.ledger.read.Add(b.End - b.Start)
	for i, t := range r.built.Transforms {
		if err := pipeline.Safely(r.built.TransformNames[i], func() error { return t.Apply(r.writeCtx, b) }); err != nil {
			b.Release()
			return err
		}
	}
	var sb *syncBatch
	if r.sync != nil {
		r.sync.unkeyed.Add(int64(len(b.Rejects)))
		if sb, err = r.sync.diff(b); err != nil {
			b.Release()
			return err
		}
	}
	for _, rej := range b.Rejects {
		if err := r.policy.reject(b.Split, rej); err != nil {
			b.Release()
			return err
		}
	}
	r.ledger.filtered.Add(b.Filtered)
	acct := &batchAccount{split: b.Split, ledger: r.ledger, policy: r.policy, tracker: r.tracker, rng: rng,
		rows: b.NumRows(), before: state.Fates{Filtered: b.Filtered, Rejected: int64(len(b.Rejects))}, onBug: r.fail,
		sync: sb, syncer: r.sync}
	if r.deliveries != nil {
		if acct.led = r.deliveries.forBatch(b.Split, b.Start, b.End); acct.led != nil {
			acct.deliveries = r.deliveries
			for _, rej := range b.Rejects {
				if rej.Stage == "" {
					rej.Stage = "unknown" // as the dead letter says
				}
				acct.led.rejected(rej)
			}
		}
	}
	if acct.rows == 0 {
		b.Release()
		acct.Done(nil)
		return nil
	}
	if acct.led != nil {
		b.SetAccount(receiptAccount{acct}) // the sink tells which rows, with their messageIds
	} else {
		b.SetAccount(acct)
	}
	return pipeline.Safely("sink", func() error { return r.built.Sink.Write(r.writeCtx, b) })
}

// failedSplits lists the splits that failed, sorted.
func (w *workers) failedSplits() []string {
	w.failedMu.Lock()
	defer w.failedMu.Unlock()
	out := append([]string(nil), w.failed...)
	sort.Strings(out)
	return out
}

type splitError struct {
	split string
	err   error
}

func (e *splitError) Error() string { return fmt.Sprintf("split %s: %v", e.split, e.err) }
func (e *splitError) Unwrap() error { return e.err }

// readWhole returns the rows and bytes of the splits read whole so far.
func (w *workers) readWhole() (rows, bytes int64) {
	w.wholeMu.Lock()
	defer w.wholeMu.Unlock()
	return w.wholeRows, w.wholeBytes
}
