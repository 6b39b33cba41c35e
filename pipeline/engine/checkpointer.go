package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/state"
)

// ErrCheckpointUnsaved wraps the error of a first save that failed: a
// state store that cannot be written stops the run before it reads.
var ErrCheckpointUnsaved = errors.New("the checkpoint cannot be saved, so nothing is read")

// checkpointer saves the acknowledged progress: the tracker's offsets,
// merged into the checkpoint (never backwards), the source's state, the
// account of acknowledged rows, after the dead letters they count are
// durable (and copied beside a remote checkpoint) and, with a delivery
// ledger, after the ledger's parts holding the rows they count are
// written.
type checkpointer struct {
	mu     sync.Mutex // one save at a time: the ticker, a source's State.Save, the last save
	store  state.Store
	cp     *state.Checkpoint
	base   state.Fates // the account of the runs before this one
	bag    *pipeline.MemoryState
	dead   state.DeadLetters
	copier *state.DeadLetterCopier // nil without a remote store
	// deliveries is the delivery ledger's feed; nil without a ledger.
	deliveries *deliveryLog
	// sync is the sync snapshot and its pass; nil without `sync:`.
	sync     *syncer
	tracker  *tracker
	versions map[string]string // split -> the version read this run
	interval time.Duration

	// A checkpoint of many splits (an archive of 100k objects encodes to
	// ~17 MB in ~0.3 s) must not eat the run: a periodic save is skipped
	// until 20 times its last duration has passed, which keeps saving under
	// ~5% of the time whatever the checkpoint's size.
	lastSave              time.Duration
	lastSaved, lastFailed time.Time
	unsaved               bool // the last save failed after taking the tracker's changes
	failures              saveFailures
}

// save writes a checkpoint and says whether it did: a periodic save
// (force false) with nothing new, or backing off, writes none.
func (c *checkpointer) save(ctx context.Context, force bool) (saved bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// After a failure the tick that waited during the save is skipped
	// (half an interval: the next regular tick is not).
	if !force && (time.Since(c.lastSaved) < 20*c.lastSave || time.Since(c.lastFailed) < c.interval/2) {
		return false, nil
	}
	began := time.Now()
	defer func() {
		// A failed save says nothing of a checkpoint's cost (it may
		// have waited out S3's retries): it is retried at the next
		// tick.
		if err == nil {
			c.lastSave, c.lastSaved = time.Since(began), time.Now()
		} else {
			c.lastFailed = time.Now()
		}
	}()
	// The order: the snapshot, then what makes the rows it counts
	// durable (their dead letters, their ledger part, the dead letters'
	// copy), then the checkpoint. Each row's dead letter and ledger row
	// are written before its batch is acknowledged, so before a snapshot
	// that counts it; syncing after the snapshot covers them all.
	var (
		snap    map[string]state.SplitState
		acked   state.Fates
		changed bool
		ahead   map[string][][2]int64
		parts   int // the ledger parts holding the rows snap counts
	)
	take := func() {
		if c.deliveries != nil {
			// Under the ledger's gate: each batch's ledger rows and ack
			// are wholly in this snapshot and the part cut, or wholly
			// after.
			parts = c.deliveries.snapshot(func() { snap, acked, changed, ahead = c.tracker.snapshot(true) })
		} else {
			snap, acked, changed, _ = c.tracker.snapshot(false)
		}
	}
	var pass *state.SyncPass
	if c.sync != nil {
		// Under the sync's gate too (taken first, as batches do): a
		// batch's counts are in the pass's account with its ack.
		pass = c.sync.snapshot(take)
	} else {
		take()
	}
	if err := c.dead.Sync(); err != nil {
		// Not retried: after a failed fsync the kernel may drop the
		// unwritten pages and the next one succeeds, so a later
		// checkpoint would count rejects whose dead letters are gone.
		return false, permanentSaveError{fmt.Errorf("syncing dead letters: %w", err)}
	}
	if c.sync != nil {
		// The keys seen and sent of every row the snapshot counts were
		// written before their acks: one fsync makes them durable before
		// the checkpoint counts the rows.
		if err := c.sync.flush(); err != nil {
			return false, err
		}
	}
	if !changed && !force && !c.unsaved {
		return false, nil
	}
	if c.sync != nil {
		// With a remote state, the copy the checkpoint lists is written
		// before it.
		if err := c.sync.copyOut(ctx); err != nil {
			return false, err
		}
		pass.Copy = c.sync.copy
		c.cp.Sync = pass
	}
	defer func() { c.unsaved = err != nil }()
	if c.deliveries != nil {
		// A part that fails is written again, whole and under its
		// number, by the next save; until then no checkpoint counts its
		// rows.
		if err := c.deliveries.w.Flush(ctx, parts); err != nil {
			return false, err
		}
	}
	var copied int64
	if c.copier != nil {
		if copied, err = c.copier.Before(ctx, c.cp); err != nil {
			return false, err
		}
	}
	for id, st := range snap {
		old := c.cp.Splits[id]
		if st.Offset < old.Offset { // never move backwards
			st.Offset = old.Offset
		}
		st.Done = st.Done || old.Done
		st.Version = c.versions[id]
		c.cp.Splits[id] = st
	}
	if c.deliveries != nil {
		c.cp.Ledger = &state.LedgerState{Parts: parts, Ahead: c.deliveries.ahead(ahead, c.cp.Splits)}
	}
	c.cp.Rows = c.base.Add(acked)
	c.cp.SourceState = c.bag.Copy()
	c.cp.UpdatedAt = time.Now().UTC()
	err = c.store.Save(ctx, c.cp)
	if c.copier != nil {
		c.copier.After(c.cp, copied, err == nil)
	}
	if err == nil && c.sync != nil {
		if perr := c.sync.pruneCopies(ctx); perr != nil && c.failures.log != nil {
			c.failures.log.Warn("deleting older copies of the sync snapshot failed; the next save tries again", "error", perr)
		}
	}
	return err == nil, err
}

// saveFinal records the whole run: a failure is tried twice more, one
// interval apart, before it is reported; abort cuts the waits.
func (c *checkpointer) saveFinal(abort context.Context, log *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		_, err := c.save(abort, true)
		if err == nil {
			return nil
		}
		if attempt == 3 || !retryable(err) || abort.Err() != nil {
			return err
		}
		c.failures.count++
		log.Warn("saving the final checkpoint failed; trying again", "error", err, "attempt", attempt)
		t := time.NewTimer(c.interval)
		select {
		case <-t.C:
		case <-abort.Done(): // a second Ctrl-C: the last try, without waiting
			t.Stop()
		}
	}
}

// forget drops the splits not in current: a run that delivered everything
// lets its source commit (a cursor), and the next run plans new splits.
func (c *checkpointer) forget(current map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.cp.Splits {
		if !current[id] {
			delete(c.cp.Splits, id)
		}
	}
}

// lastSuccess is when a save last succeeded.
func (c *checkpointer) lastSuccess() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSaved
}

// permanentSaveError is a save failure that retrying cannot mend.
type permanentSaveError struct{ error }

func (e permanentSaveError) Unwrap() error { return e.error }

// retryable says whether a failed save may succeed when tried again: not
// when another run wrote the checkpoint, nor after a permanentSaveError.
func retryable(err error) bool {
	return !errors.Is(err, state.ErrConflict) && !errors.As(err, new(permanentSaveError))
}

// saveFailures decides what a failed periodic checkpoint save does. A
// multi-hour run must not die of one S3 error: delivery goes on, the save
// is retried at the next interval, and the run stops only when saves have
// failed for the timeout (or at once when another run wrote the
// checkpoint). Used by the one goroutine that saves periodically, then by
// the final save.
type saveFailures struct {
	timeout time.Duration
	log     *slog.Logger
	fail    func(error)

	count    int       // failed saves in the run, for the report
	since    time.Time // first failure of the current streak
	lastWarn time.Time
}

func (f *saveFailures) check(saved bool, err error) {
	now := time.Now()
	switch {
	case err == nil:
		if saved && !f.since.IsZero() {
			f.log.Info("checkpoint saves work again", "failed_for", now.Sub(f.since).Round(time.Millisecond))
			f.since = time.Time{}
		}
	case !retryable(err):
		f.fail(err)
	default:
		f.count++
		if f.since.IsZero() {
			f.since = now
		}
		failing := now.Sub(f.since)
		if failing >= f.timeout {
			f.fail(fmt.Errorf("checkpoint saves failed for %s (checkpoint_failure_timeout %s): %w",
				failing.Round(time.Second), f.timeout, err))
			return
		}
		// The first failure of a streak, then one line every 30 s.
		if now.Sub(f.lastWarn) >= 30*time.Second || f.since == now {
			f.lastWarn = now
			f.log.Warn("saving the checkpoint failed; delivery goes on and the save is retried",
				"error", err, "failing_for", failing.Round(time.Millisecond), "stop_after", f.timeout)
		}
	}
}
