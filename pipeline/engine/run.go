package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

// ErrInterrupted is returned by a run stopped (SIGINT/SIGTERM) before it
// read everything; progress up to the stop is saved.
var ErrInterrupted = errors.New("run interrupted")

// Run is one run of a pipeline, from its saved state to its report. Its
// steps, in order (Run.Run): openState, build, makePlan, openDeadLetters,
// openLedger, openSink, deliver, finishSource, and close, which always
// runs.
type Run struct {
	cfg   *config.Pipeline
	opts  Options
	red   *redact.Redactor
	log   *slog.Logger
	start time.Time
	rep   *Report

	store  state.Store
	unlock func() error
	cp     *state.Checkpoint
	bag    *pipeline.MemoryState
	built  *Built
	plan   plan
	dead   state.DeadLetters
	ledger *ledger
	// deliveries feeds the delivery ledger (`ledger:`); nil without one.
	deliveries *deliveryLog
	// sync diffs rows with the snapshot (`sync:`); nil without it.
	sync *syncer
	// lastSync is the loaded checkpoint's, even of a pass complete: where
	// the snapshot's copy is, with a remote state.
	lastSync *state.SyncPass
	policy   *rejectPolicy
	tracker  *tracker
	saver    *checkpointer
	workers  *workers

	// runCtx stops reading (a signal, a fatal error). writeCtx lets the
	// batches already read finish their way to the sink: a stop must not
	// cut a batch that is half packed into requests, nor a request in
	// flight, or rows the destination has would be counted unacknowledged
	// and sent again on resume. writeCtx ends on Abort, or Grace after
	// runCtx ended.
	runCtx      context.Context
	cancelRun   context.CancelCauseFunc
	writeCtx    context.Context
	cancelWrite context.CancelFunc
	bg          sync.WaitGroup // the goroutines a run starts besides the workers

	fatalMu sync.Mutex
	fatal   error
}

// New prepares a run of cfg; Run runs it. The secrets of cfg never reach
// the log, the report or the dead letters.
func New(cfg *config.Pipeline, opts Options) *Run {
	opts.defaults()
	red := redact.New(cfg.Secrets()...)
	return &Run{cfg: cfg, opts: opts, red: red, log: slog.New(red.Handler(opts.Logger.Handler())),
		ledger: &ledger{}, tracker: newTracker()}
}

// Run runs the pipeline. Canceling ctx stops reading; what is in flight is
// delivered (for at most Options.Grace) and the checkpoint saved before Run
// returns ErrInterrupted. The report is never nil, and its rows add up
// whatever the outcome.
func (r *Run) Run(ctx context.Context) (*Report, error) {
	r.start = time.Now()
	r.rep = &Report{Pipeline: r.cfg.Name, StartedAt: r.start.UTC()}
	r.runCtx, r.cancelRun = context.WithCancelCause(ctx)
	r.writeCtx, r.cancelWrite = context.WithCancel(r.opts.Abort)
	defer r.bg.Wait()
	defer r.cancelWrite()
	defer r.cancelRun(nil)

	if err := r.openState(ctx); err != nil {
		r.fail(err)
		return r.report(ctx)
	}
	if err := r.prepare(ctx); err != nil {
		r.fail(err)
	} else {
		r.deliver()
		r.finishSync(ctx)
		r.finishSource(ctx)
	}
	r.close()
	return r.report(ctx)
}

// openState opens the checkpoint store, takes the run's lock and loads
// the checkpoint (unless the run is fresh).
func (r *Run) openState(ctx context.Context) error {
	r.store = r.opts.Store
	if r.store == nil {
		store, err := state.Open(ctx, r.cfg.State, r.cfg.Name, r.opts.Shard, r.opts.Shards)
		if err != nil {
			return err
		}
		r.store = store
	}
	r.rep.Checkpoint = r.store.Location()
	if r.store.Location() != "" { // a store that keeps nothing needs no lock
		unlock, err := state.LockFile(r.paths().Lock())
		if err != nil {
			return err
		}
		r.unlock = unlock
	}
	if !r.opts.Fresh {
		cp, err := r.store.Load(r.opts.Abort)
		if err != nil {
			r.releaseLock()
			return err
		}
		r.cp = cp
		// A sync pass that saw everything is over: the next run is a new
		// pass, reading every row again against the snapshot it left.
		if r.cfg.Sync != nil && cp != nil && cp.Sync != nil {
			r.lastSync = cp.Sync // where the snapshot's copy is, with remote state
			if cp.Sync.Complete {
				r.cp = nil
			}
		}
	}
	if r.cp == nil {
		r.cp = state.NewCheckpoint(r.cfg.Name, r.start.UTC())
	} else {
		r.rep.Resumed = true
	}
	// A source saves its state at once when it starts something billable;
	// a first Ctrl-C must not stop that save, a second one may.
	r.bag = pipeline.NewMemoryState(r.cp.SourceState, func(context.Context) error {
		_, err := r.saver.save(r.opts.Abort, true)
		return err
	})
	r.saver = &checkpointer{store: r.store, cp: r.cp, base: r.cp.Rows, bag: r.bag, dead: state.DiscardDeadLetters{},
		tracker: r.tracker, versions: map[string]string{}, interval: r.cfg.CheckpointInterval(),
		failures: saveFailures{timeout: r.cfg.CheckpointFailureTimeout(), log: r.log, fail: r.fail}}
	return nil
}

func (r *Run) paths() state.Paths {
	return state.Paths{State: r.cfg.State, Name: r.cfg.Name, DeadLetter: r.cfg.DeadLetter, Shard: r.opts.Shard, Shards: r.opts.Shards}
}

// prepare builds the plugins, plans the splits, opens the dead letters and
// the sink, and saves a first checkpoint: a state store that cannot be
// written (a denied bucket, a read-only disk) stops the run before it
// delivers what it could not record.
func (r *Run) prepare(ctx context.Context) error {
	env := &pipeline.Env{Name: r.cfg.Name, Version: r.opts.Version, Alloc: r.opts.Alloc, Logger: r.log, State: r.bag,
		Shard: r.opts.Shard, Shards: r.opts.Shards, Resumed: r.rep.Resumed}
	built, err := Build(r.cfg, env, r.opts.Registry, r.opts.Sink)
	if err != nil {
		return err
	}
	r.built = built
	if err := r.makePlan(r.runCtx); err != nil {
		return err
	}
	r.saver.versions = r.plan.versions
	r.rep.Splits = len(r.plan.selected) + len(r.plan.skipped)
	r.rep.SplitsSkipped = len(r.plan.skipped)
	r.rep.RowsSkipped = r.plan.rowsSkipped
	r.rep.SplitsChanged = r.plan.changedList()
	if err := r.openDeadLetters(ctx); err != nil {
		return err
	}
	if err := r.openLedger(ctx); err != nil {
		return err
	}
	if err := r.openSync(); err != nil {
		return err
	}
	if err := pipeline.Safely("opening the sink", func() error { return r.built.Sink.Open(r.runCtx) }); err != nil {
		return fmt.Errorf("opening the sink: %w", err)
	}
	if _, err := r.saver.save(r.opts.Abort, true); err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpointUnsaved, err)
	}
	r.log.Info("run starting", "pipeline", r.cfg.Name, "splits", len(r.plan.todo), "skipped_done", len(r.plan.skipped),
		"resumed", r.rep.Resumed, "workers", r.cfg.Workers, "shard", fmt.Sprintf("%d/%d", r.opts.Shard, r.opts.Shards))
	return nil
}

// openDeadLetters opens the dead-letter file: started over by a first or
// --fresh run; else remembering the rows a resumed run may reject again,
// so each is in it once.
func (r *Run) openDeadLetters(ctx context.Context) error {
	pending := func(split string, row int64) bool {
		return !r.plan.changed[split] && r.cp.Pending(split, row)
	}
	if r.opts.DeadLetters != nil {
		r.dead = r.opts.DeadLetters
	} else {
		file, err := state.OpenDeadLetters(r.paths().DeadLetters(), !r.rep.Resumed, pending)
		if err != nil {
			return err
		}
		r.dead = file
		if ds, ok := r.store.(state.DeadLetterStore); ok {
			if err := r.copyDeadLetters(ctx, ds, file, pending); err != nil {
				return err
			}
		}
	}
	r.rep.DeadLetters = r.dead.Path()
	r.saver.dead = r.dead
	r.policy = &rejectPolicy{dead: r.dead, ledger: r.ledger, stop: r.cfg.OnError == config.OnErrorStop,
		max: r.cfg.MaxRejects, before: r.cp.Rows, onReject: r.opts.OnReject, red: r.red}
	return nil
}

// copyDeadLetters sets up the copies of the dead letters beside a remote
// checkpoint. A resumed run on a new machine (its local file gone with the
// old one) learns the rows already kept from the copies.
func (r *Run) copyDeadLetters(ctx context.Context, ds state.DeadLetterStore, file *state.DeadLetterFile, pending func(string, int64) bool) error {
	if size, err := file.Size(); err == nil && size == 0 && r.rep.Resumed && r.cp.DeadLetterParts > 0 {
		run := state.RunID(r.cp)
		err := ds.ReadDeadLetters(ctx, run, r.cp.DeadLetterParts, func(rd io.Reader) error { return file.Remember(rd, pending) })
		if err != nil {
			return fmt.Errorf("reading the dead letters kept in %s: %w", ds.DeadLetterLocation(run), err)
		}
	}
	copier, err := state.NewDeadLetterCopier(ds, file)
	if err != nil {
		return err
	}
	r.saver.copier = copier
	r.rep.DeadLetterCopy = ds.DeadLetterLocation(state.RunID(r.cp))
	return nil
}

// deliver reads every split through the transforms to the sink, saving
// progress as it goes, and closes the sink: what is in flight is delivered
// (a stopped run gets Grace to finish).
func (r *Run) deliver() {
	r.workers = &workers{r: r} // before the ticker, which reads it
	r.bg.Add(1)
	go r.graceAfterStop()
	tickDone := make(chan struct{})
	var ticks sync.WaitGroup
	ticks.Add(1)
	go func() {
		defer ticks.Done()
		r.tick(tickDone)
	}()
	r.workers.run()
	r.sendDeleted(r.runCtx) // before the sink closes: they go through it
	cerr := r.built.CloseSink(r.writeCtx)
	close(tickDone)
	ticks.Wait()
	if cerr != nil {
		r.fail(cerr)
	}
	// A share of rows read is checked at the end whatever the count.
	if err := r.policy.check(true); err != nil {
		r.fail(err)
	}
}

// graceAfterStop cancels delivery Grace after the run is stopped or
// failed: the sink abandons its retries then, but what is in flight may
// land.
func (r *Run) graceAfterStop() {
	defer r.bg.Done()
	select {
	case <-r.runCtx.Done():
		t := time.NewTimer(r.opts.Grace)
		defer t.Stop()
		select {
		case <-t.C:
			r.cancelWrite()
		case <-r.writeCtx.Done():
		}
	case <-r.writeCtx.Done():
	}
}

// tick saves checkpoints and reports progress until done is closed.
func (r *Run) tick(done <-chan struct{}) {
	ck := time.NewTicker(r.cfg.CheckpointInterval())
	pg := time.NewTicker(r.opts.ProgressEvery)
	defer ck.Stop()
	defer pg.Stop()
	for {
		select {
		case <-done:
			return
		case <-ck.C:
			r.saver.failures.check(r.saver.save(r.opts.Abort, false))
		case <-pg.C:
			r.progress(false)
		}
	}
}

// finishSource lets a source commit what a complete run allows (a
// cursor), once every split of the run is delivered; the splits of earlier
// runs are then forgotten, since the next run plans new ones.
func (r *Run) finishSource(ctx context.Context) {
	fin, ok := r.built.Source.(pipeline.Finisher)
	if !ok || r.failure() != nil || ctx.Err() != nil || r.workers.limitHit.Load() ||
		len(r.workers.failedSplits()) > 0 || r.tracker.unacked() > 0 {
		return
	}
	if err := pipeline.Safely("finishing the source", func() error { return fin.Finish(ctx) }); err != nil {
		r.fail(fmt.Errorf("finishing the run: %w", err))
		return
	}
	current := map[string]bool{}
	for _, s := range append(r.plan.selected, r.plan.skipped...) {
		current[s.ID] = true
	}
	r.saver.forget(current)
}

// close saves the last checkpoint and closes what the run opened, in the
// reverse order: whatever happened before, it runs.
func (r *Run) close() {
	if r.built != nil {
		// The sink is closed already when the run delivered; else it was
		// built and perhaps opened, and is closed now, with nothing in it.
		r.built.Close(r.writeCtx, r.log)
	}
	// After a first save that failed, a last one would only fail again.
	if !errors.Is(r.failure(), ErrCheckpointUnsaved) {
		if err := r.saver.saveFinal(r.opts.Abort, r.log); err != nil {
			r.fail(err)
		}
	}
	r.closeSync()
	if r.deliveries != nil {
		r.rep.LedgerRows = r.deliveries.w.Rows()
		r.deliveries.w.Close() // what no saved checkpoint counts is read again on resume
	}
	if r.dead != nil {
		if err := r.dead.Close(); err != nil {
			r.fail(fmt.Errorf("closing the dead-letter file: %w", err))
		}
	}
	r.releaseLock()
}

func (r *Run) releaseLock() {
	if r.unlock != nil {
		_ = r.unlock()
		r.unlock = nil
	}
}

// fail records the run's first fatal error and stops reading; what is in
// flight is delivered, for at most Grace.
func (r *Run) fail(err error) {
	r.fatalMu.Lock()
	first := r.fatal == nil
	if first {
		r.fatal = err
	}
	r.fatalMu.Unlock()
	if first {
		logPanicStack(r.log, err)
		r.cancelRun(err)
	}
}

func (r *Run) failure() error {
	r.fatalMu.Lock()
	defer r.fatalMu.Unlock()
	return r.fatal
}

// progress reports the live counters (on the goroutine that saves, or
// after it ended).
func (r *Run) progress(final bool) {
	if r.opts.Progress == nil {
		return
	}
	p := Progress{Elapsed: time.Since(r.start), Rows: r.ledger.rows(), TotalRows: r.plan.total,
		SplitsDone: r.tracker.splitsDone(), SplitsAll: len(r.plan.todo), Final: final,
		CheckpointSaveFailures: r.saver.failures.count, LastCheckpoint: r.saver.lastSuccess()}
	if ss, ok := r.built.Sink.(pipeline.StatsSink); ok {
		p.Sink = ss.Stats()
	}
	if r.sync != nil {
		p.Sync = r.sync.report(nil)
	}
	var rows, bytes int64
	if r.workers != nil {
		rows, bytes = r.workers.readWhole()
	}
	switch {
	case r.plan.total >= 0:
	case r.plan.totalBytes > 0 && bytes > 0:
		p.TotalRows = max(int64(float64(rows)/float64(bytes)*float64(r.plan.totalBytes))-r.plan.offsets, p.Read)
		p.Estimated = true
	case r.plan.sourceEstimate > 0:
		p.TotalRows, p.Estimated = max(r.plan.sourceEstimate, p.Read), true
	}
	r.opts.Progress(p)
}

// report fills in the outcome. A stop (ctx canceled) is an interruption,
// unless something failed for another reason meanwhile.
func (r *Run) report(ctx context.Context) (*Report, error) {
	rep := r.rep
	if r.built != nil {
		r.progress(true)
		if s, ok := r.built.Sink.(pipeline.StatsSink); ok {
			rep.Sink = s.Stats()
		}
		if d, ok := r.built.Sink.(pipeline.DestinationSink); ok {
			rep.Destination = r.red.String(redact.URL(d.Destination()))
		}
	}
	rep.FinishedAt = time.Now().UTC()
	rep.Seconds = time.Since(r.start).Seconds()
	rep.setRows(r.ledger.rows())
	rep.RejectsByStage = r.ledger.stages()
	if r.sync != nil {
		rep.Sync = r.sync.report(rep.Sync)
	}
	rep.SplitsDone = r.tracker.splitsDone()
	if r.saver != nil {
		rep.CheckpointSaveFailures = r.saver.failures.count
	}
	if rep.Seconds > 0 {
		rep.RowsPerSecond = float64(rep.RowsRead) / rep.Seconds
	}
	if r.workers != nil {
		rep.SplitsFailed = r.workers.failedSplits()
	}
	var err error
	fatal := r.failure()
	switch {
	case fatal != nil && !(ctx.Err() != nil && stopped(fatal)):
		rep.Status, err = "failed", fatal
	case ctx.Err() != nil:
		rep.Status, err = "interrupted", ErrInterrupted
	case len(rep.SplitsFailed) > 0:
		rep.Status = "failed"
		err = fmt.Errorf("%d split(s) failed: %v; rerun to retry them", len(rep.SplitsFailed), rep.SplitsFailed)
	default:
		rep.Status = "ok"
	}
	if err != nil {
		rep.Error = r.red.String(err.Error())
	}
	return rep, err
}

// stopped says whether err is what stopping does to a run: work abandoned
// or cut short, not a failure of its own.
func stopped(err error) bool {
	return errors.Is(err, pipeline.ErrStopped) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
