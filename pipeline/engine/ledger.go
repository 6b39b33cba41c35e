package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

// ErrTooManyRejects stops a run whose rejects exceed max_rejects.
var ErrTooManyRejects = errors.New("too many rejected rows")

// RowError is a rejected row that stops the run (on_error: stop).
type RowError struct {
	Split  string
	Reject pipeline.Reject
}

func (e *RowError) Error() string {
	s := fmt.Sprintf("%s row %d", e.Split, e.Reject.Row)
	if e.Reject.Column != "" {
		s += fmt.Sprintf(", column %q", e.Reject.Column)
	}
	return fmt.Sprintf("%s: %s (on_error: stop; set on_error: dead_letter to set such rows aside)", s, e.Reject.Reason)
}

// ledger is the run's one account of row fates. Each row read is counted
// once in read and at most once in one fate; whatever is in no fate is
// unacknowledged. Fates are counted after the read they follow, so a
// snapshot that loads the fates first never sees more fates than reads.
type ledger struct {
	read, delivered, filtered, rejected atomic.Int64
	byStage                             sync.Map // stage -> *atomic.Int64
}

func (l *ledger) rows() Rows {
	d, f, rj := l.delivered.Load(), l.filtered.Load(), l.rejected.Load()
	read := l.read.Load()
	return Rows{Read: read, Delivered: d, Filtered: f, Rejected: rj, Unacked: read - d - f - rj}
}

func (l *ledger) reject(stage string) int64 {
	c, _ := l.byStage.LoadOrStore(stage, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	return l.rejected.Add(1)
}

func (l *ledger) stages() map[string]int64 {
	out := map[string]int64{}
	l.byStage.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// rejectPolicy is what a rejected row does: go to the dead-letter file
// (once), or stop the run (on_error: stop, or past max_rejects).
type rejectPolicy struct {
	dead   state.DeadLetters
	ledger *ledger
	stop   bool
	max    *config.MaxRejects
	// before is what the checkpoint's earlier runs acknowledged, so a
	// share of rows read counts the whole backfill, not only a resume's
	// last few rows.
	before   state.Fates
	onReject func(split string, r pipeline.Reject)
	red      *redact.Redactor // what the dead letters must not hold
}

// reject sets r aside and counts it, or says why the run must stop.
func (p *rejectPolicy) reject(split string, r pipeline.Reject) error {
	if r.Stage == "" {
		r.Stage = "unknown"
	}
	r.Reason, r.Raw, r.Body = p.red.String(r.Reason), p.red.String(r.Raw), p.red.String(r.Body)
	r.Values, r.Message = p.red.Bytes(r.Values), p.red.Bytes(r.Message)
	if p.onReject != nil {
		p.onReject(split, r)
	}
	if p.stop {
		return &RowError{Split: split, Reject: r}
	}
	if _, err := p.dead.Write(split, r); err != nil {
		return err
	}
	p.ledger.reject(r.Stage)
	return p.check(false)
}

// check says whether the rejects are over budget. A share is only
// checked as the run goes once 1,000 rows are read, so the first rows
// alone do not decide; final checks it whatever the count.
func (p *rejectPolicy) check(final bool) error {
	if p.max == nil {
		return nil
	}
	rows := p.ledger.rows()
	n := rows.Rejected + p.before.Rejected
	read := rows.Read + p.before.Total()
	m := p.max
	switch {
	case m.Fraction > 0:
		if (final || read >= 1000) && read > 0 && float64(n) > m.Fraction*float64(read) {
			return fmt.Errorf("%w: %d of %d rows rejected, over max_rejects %.4g%%%s", ErrTooManyRejects, n, read, m.Fraction*100, p.where())
		}
	case n > m.Count:
		return fmt.Errorf("%w: %d rows rejected, over max_rejects %d%s", ErrTooManyRejects, n, m.Count, p.where())
	}
	return nil
}

func (p *rejectPolicy) where() string {
	s := " (raise max_rejects, or set it to none"
	if path := p.dead.Path(); path != "" {
		s += "; the rejected rows are in " + path
	}
	return s + ")"
}

// batchAccount is what the sink reports a batch's rows to
// (pipeline.Account). When the batch is done, its fates go to the tracker,
// which moves the checkpoint past it once the batches before it are done.
type batchAccount struct {
	split   string
	ledger  *ledger
	policy  *rejectPolicy
	tracker *tracker
	rng     *pendingRange
	rows    int64       // handed to the sink
	before  state.Fates // filtered and rejected before the sink

	delivered, rejected atomic.Int64
	done                atomic.Bool
	onBug               func(error)

	// With a delivery ledger, the batch's rows for it (nil: the run keeps
	// none, or it holds them already), appended through deliveries once
	// the batch is done.
	led        *batchLedger
	deliveries *deliveryLog

	// With sync, the keys and contents the batch sends, recorded in the
	// snapshot once it is acknowledged.
	sync   *syncBatch
	syncer *syncer
}

func (a *batchAccount) Delivered(n int) {
	a.delivered.Add(int64(n))
	a.ledger.delivered.Add(int64(n))
}

func (a *batchAccount) DeadLetter(_ context.Context, r pipeline.Reject) error {
	if r.Stage == "" {
		r.Stage = "sink"
	}
	if err := a.policy.reject(a.split, r); err != nil {
		return err
	}
	a.rejected.Add(1)
	if a.sync != nil {
		a.sync.reject(r.Row)
	}
	if a.led != nil {
		a.led.rejected(r)
	}
	return nil
}

func (a *batchAccount) Done(err error) {
	if !a.done.CompareAndSwap(false, true) {
		return
	}
	if err != nil {
		a.tracker.fail(a.split, a.rng, err)
		return
	}
	rest := a.rows - a.delivered.Load() - a.rejected.Load()
	if rest < 0 {
		a.onBug(fmt.Errorf("the sink reported %d rows of a batch of %d (%s [%d,%d)): a bug in the sink",
			a.delivered.Load()+a.rejected.Load(), a.rows, a.split, a.rng.start, a.rng.end))
		rest = 0
	}
	a.Delivered(int(rest))
	if a.sync != nil {
		// Before the ack: a checkpoint counting the rows finds their
		// new versions in the snapshot (synced before it is saved), and
		// their counts in the pass's account, not in the next one too.
		a.syncer.gate.RLock()
		defer a.syncer.gate.RUnlock()
		if err := a.syncer.sent(a.sync); err != nil {
			a.tracker.fail(a.split, a.rng, err)
			a.onBug(err)
			return
		}
	}
	ack := func() {
		a.tracker.ack(a.split, a.rng, a.before.Add(state.Fates{Delivered: a.delivered.Load(), Rejected: a.rejected.Load()}))
	}
	if a.led == nil {
		ack()
		return
	}
	a.deliveries.done(a.split, a.led, ack)
}
