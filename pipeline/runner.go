package pipeline

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// ErrInterrupted is returned by Run when it was stopped (SIGINT/SIGTERM)
// before reading everything; progress up to the stop is saved.
var ErrInterrupted = errors.New("run interrupted")

// ErrCheckpointConflict is returned by a CheckpointStore whose checkpoint
// another run wrote since this one read it: two runs of one pipeline and
// shard. Unlike other save failures it stops the run at once.
var ErrCheckpointConflict = errors.New("checkpoint written by another run")

// RunOptions change how Run runs a pipeline.
type RunOptions struct {
	Registry *Registry
	Logger   *slog.Logger
	Alloc    memory.Allocator
	Version  string

	Fresh  bool // ignore and replace saved progress
	Shard  int  // this worker's shard, 0-based
	Shards int  // number of shards; 0 or 1 = no sharding

	// Abort, when canceled, abandons in-flight delivery at once (a second
	// Ctrl-C). Until then a stopped run delivers what it has in flight for
	// at most Grace.
	Abort context.Context
	Grace time.Duration

	// Preview: read at most Limit rows, keep no state, send to Sink.
	DryRun bool
	Limit  int64
	Sink   Sink // replaces the configured sink (preview)

	// Progress receives the live counters every ProgressEvery (a bar, a
	// log line); nil for none.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// OnReject sees every rejected row (preview prints them).
	OnReject func(split string, r Reject)

	// Store replaces the checkpoint store derived from the config.
	Store CheckpointStore
	// Splits, when set, is called with the splits selected for this run.
	OnSplits func(selected, skipped []Split)
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed   time.Duration
	Read      int64
	Delivered int64
	Rejected  int64
	Filtered  int64
	TotalRows int64 // rows to read this run, or -1 when unknown
	// Estimated says TotalRows is not known but estimated: the rows per
	// byte of the splits finished so far times the bytes of all of them,
	// or the source's own estimate (RowEstimator).
	Estimated  bool
	SplitsDone int
	SplitsAll  int
	Final      bool
	// Sink is the sink's own counters (StatsSink): requests, retries,
	// responses by status, ...; nil when it keeps none.
	Sink map[string]int64
	// CheckpointSaveFailures counts failed periodic saves; LastCheckpoint
	// is when a save last succeeded (zero before the first): what to alert
	// on when the state store is down.
	CheckpointSaveFailures int
	LastCheckpoint         time.Time
}

// Report is a run's outcome, printed as a summary and written by --report.
type Report struct {
	Pipeline       string           `json:"pipeline"`
	StartedAt      time.Time        `json:"started_at"`
	FinishedAt     time.Time        `json:"finished_at"`
	Seconds        float64          `json:"seconds"`
	Status         string           `json:"status"` // ok, failed, interrupted
	Error          string           `json:"error,omitempty"`
	Resumed        bool             `json:"resumed"`
	Splits         int              `json:"splits"`
	SplitsDone     int              `json:"splits_done"`
	SplitsSkipped  int              `json:"splits_skipped"`
	SplitsFailed   []string         `json:"splits_failed,omitempty"`
	SplitsChanged  []string         `json:"splits_changed,omitempty"` // read again from the start: their input changed
	RowsRead       int64            `json:"rows_read"`
	RowsDelivered  int64            `json:"rows_delivered"`
	Destination    string           `json:"destination,omitempty"` // where delivered rows went
	RowsRejected   int64            `json:"rows_rejected"`
	RowsFiltered   int64            `json:"rows_filtered"`
	RowsSkipped    int64            `json:"rows_skipped"`
	RowsUnacked    int64            `json:"rows_unacked"`
	RowsPerSecond  float64          `json:"rows_per_second"`
	RejectsByStage map[string]int64 `json:"rejects_by_stage,omitempty"`
	DeadLetters    string           `json:"dead_letter_file,omitempty"`
	DeadLetterCopy string           `json:"dead_letter_copy,omitempty"` // where a remote state store keeps them too
	Checkpoint     string           `json:"checkpoint,omitempty"`
	Sink           map[string]int64 `json:"sink,omitempty"`

	// CheckpointSaveFailures counts saves that failed and were retried
	// (periodic ones, and the final one before its last try).
	CheckpointSaveFailures int `json:"checkpoint_save_failures,omitempty"`
}

// StatsSink is implemented by sinks that count what they did (requests,
// retries) for the report.
type StatsSink interface {
	Stats() map[string]int64
}

// DestinationSink is implemented by sinks that can say where rows went
// (a URL, a file), for the report.
type DestinationSink interface {
	Destination() string
}

// MemoryState is a StateBag held in memory, safe for concurrent use: the
// runner's (persisted with each checkpoint), validate's, and tests'.
type MemoryState struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemoryState returns a StateBag starting from initial (which it then
// owns; nil for empty).
func NewMemoryState(initial map[string]string) *MemoryState {
	if initial == nil {
		initial = map[string]string{}
	}
	return &MemoryState{m: initial}
}

func (s *MemoryState) Get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *MemoryState) Set(k, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
}

// Copy returns the values set so far.
func (s *MemoryState) Copy() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// Built is a pipeline whose plugins are constructed, ready to run.
type Built struct {
	Source     Source
	Transforms []Transform
	// TransformNames[i] names Transforms[i] in errors: "transform #2 filter".
	TransformNames []string
	Sink           Sink
	Columns        Columns // projection the source is asked for
}

// Build constructs the plugins of cfg, collecting every constructor error.
func Build(cfg *Config, env *Env, reg *Registry, sink Sink) (*Built, error) {
	if reg == nil {
		reg = Default
	}
	var errs []error
	b := &Built{Sink: sink}
	if p, ok := reg.Lookup(SourceKind, cfg.Source.Name); ok {
		src, err := p.NewSource(cfg.Source.Conf, env)
		errs = append(errs, err)
		b.Source = src
	}
	for _, tc := range cfg.Transforms {
		p, ok := reg.Lookup(TransformKind, tc.Name)
		if !ok {
			continue
		}
		t, err := p.NewTransform(tc.Conf, env)
		errs = append(errs, err)
		if t != nil {
			b.Transforms = append(b.Transforms, t)
			b.TransformNames = append(b.TransformNames, fmt.Sprintf("transform #%d %s", len(b.Transforms), tc.Name))
		}
	}
	if sink == nil {
		if p, ok := reg.Lookup(SinkKind, cfg.Sink.Name); ok {
			s, err := p.NewSink(cfg.Sink.Conf, env)
			errs = append(errs, err)
			b.Sink = s
		}
	}
	if err := errors.Join(errs...); err != nil {
		if ces := AsConfigErrors(err); len(ces) > 0 && len(ces) == countLeaves(err) {
			return nil, ces.sorted()
		}
		return nil, err
	}
	b.Columns = AllColumns
	for i := len(b.Transforms) - 1; i >= 0; i-- {
		if p, ok := b.Transforms[i].(Projector); ok {
			b.Columns = p.Requires(b.Columns)
		}
	}
	return b, nil
}

func countLeaves(err error) int {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range u.Unwrap() {
			n += countLeaves(e)
		}
		return n
	}
	if err == nil {
		return 0
	}
	return 1
}

// ShardOf says which of n shards a split belongs to: a stable hash of its
// ID, so every worker of a sharded run agrees without talking.
func ShardOf(splitID string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(splitID))
	return int(h.Sum32() % uint32(n))
}

// DeadLetterPath is where a shard's rejected rows go (shard 0 of 1 for an
// unsharded run). With a remote state store the file is written locally,
// under .backfill/NAME, and copied to the store (DeadLetterStore). Each
// shard of a sharded run has its own file (ShardPath).
func DeadLetterPath(cfg *Config, shard, shards int) string {
	path := cfg.DeadLetter
	switch {
	case path != "":
	case strings.Contains(cfg.State, "://"):
		path = filepath.Join(".backfill", cfg.Name, "dead-letters.ndjson")
	default:
		path = filepath.Join(cfg.State, cfg.Name, "dead-letters.ndjson")
	}
	return ShardPath(path, shard, shards)
}

// ShardPath is path for shard i of n: path itself without sharding, else
// path with -shard-I-of-N before its extension, named like the shard's
// checkpoint. Shards that share a directory must not append to one local
// file, nor truncate each other's when one of them starts afresh.
func ShardPath(path string, shard, shards int) string {
	if shards <= 1 {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-shard-%d-of-%d%s", strings.TrimSuffix(path, ext), shard, shards, ext)
}

type counters struct {
	read, delivered, filtered atomic.Int64
	runnerRejects             atomic.Int64 // rejects from sources and transforms
	splitsDone                atomic.Int64
	// rows and bytes of the splits read whole this run, for Progress's
	// estimate when sources cannot count rows up front (gzip, S3).
	wholeRows, wholeBytes atomic.Int64
}

// Run runs (or resumes) a pipeline. Canceling ctx stops reading; what is in
// flight is delivered (for at most opts.Grace) and the checkpoint saved
// before Run returns ErrInterrupted.
func Run(ctx context.Context, cfg *Config, opts RunOptions) (rep *Report, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Alloc == nil {
		opts.Alloc = memory.DefaultAllocator
	}
	if opts.Grace == 0 {
		opts.Grace = time.Minute
	}
	if opts.Abort == nil {
		opts.Abort = context.Background()
	}
	if opts.Shards <= 1 {
		opts.Shard, opts.Shards = 0, 1
	}
	log := opts.Logger
	start := time.Now()
	rep = &Report{Pipeline: cfg.Name, StartedAt: start.UTC(), Status: "ok"}
	defer func() { // errors before the workers start
		if err != nil && rep.Status == "ok" {
			rep.Status, rep.Error = "failed", err.Error()
			rep.FinishedAt = time.Now().UTC()
			rep.Seconds = time.Since(start).Seconds()
		}
	}()

	store := opts.Store
	if store == nil && !opts.DryRun {
		if store, err = OpenCheckpointStore(ctx, cfg.State, cfg.Name, opts.Shard, opts.Shards); err != nil {
			return rep, err
		}
	}
	if !opts.DryRun {
		unlock, err := LockFile(RunLockPath(cfg, store, opts.Shard, opts.Shards))
		if err != nil {
			return rep, err
		}
		defer unlock()
	}
	var cp *Checkpoint
	if !opts.Fresh && !opts.DryRun {
		if cp, err = store.Load(); err != nil {
			return rep, err
		}
	}
	if cp == nil {
		cp = newCheckpoint(cfg.Name, start.UTC())
	} else {
		rep.Resumed = true
	}
	if !opts.DryRun {
		rep.Checkpoint = store.Location()
	}

	var c counters
	dlPath := ""
	if !opts.DryRun {
		dlPath = DeadLetterPath(cfg, opts.Shard, opts.Shards)
		rep.DeadLetters = dlPath
	}
	dl, err := openDeadLetters(dlPath, !rep.Resumed, cfg.OnError == OnErrorStop, cfg.MaxRejects, c.read.Load)
	if err != nil {
		return rep, err
	}
	dl.hook = opts.OnReject
	defer dl.Close()
	var dlCopy *deadLetterCopier
	if ds, ok := store.(DeadLetterStore); ok && dlPath != "" {
		// What the file held before this run was copied by the runs
		// that wrote it (or belongs to rows not yet checkpointed, which
		// are rejected again).
		from, err := dl.size()
		if err != nil {
			return rep, fmt.Errorf("dead-letter file: %w", err)
		}
		dlCopy = &deadLetterCopier{store: ds, file: dl, from: from}
		rep.DeadLetterCopy = ds.DeadLetterLocation(RunID(cp))
	}

	bag := NewMemoryState(cp.SourceState)
	env := &Env{Name: cfg.Name, Version: opts.Version, Alloc: opts.Alloc, Logger: log, DeadLetters: dl, State: bag, Shard: opts.Shard, Shards: opts.Shards, Resumed: rep.Resumed}
	built, err := Build(cfg, env, opts.Registry, opts.Sink)
	if err != nil {
		return rep, err
	}

	if c, ok := built.Source.(io.Closer); ok {
		defer closeSafely(log, "closing the source", c.Close)
	}
	if cs, ok := built.Source.(ColumnSetter); ok {
		cs.SetColumns(built.Columns)
	}
	var splits []Split
	err = Safely("listing splits", func() (err error) {
		splits, err = built.Source.Splits(ctx)
		return err
	})
	if err != nil {
		logPanicStack(log, err)
		closeSafely(log, "closing the sink", func() error { return built.Sink.Close(ctx) })
		return rep, fmt.Errorf("listing splits: %w", err)
	}
	type work struct {
		split  Split
		offset int64
	}
	var todo []work
	var selected, skipped []Split
	versions := map[string]string{}
	total := int64(0)
	totalBytes, offsets := int64(0), int64(0) // for an estimate when total is unknown
	for _, s := range splits {
		if opts.Shards > 1 && ShardOf(s.ID, opts.Shards) != opts.Shard {
			continue
		}
		st := cp.Splits[s.ID]
		versions[s.ID] = s.Version
		if st.Version != "" && s.Version != "" && st.Version != s.Version {
			// The saved offset counted other content: read the split again
			// from its start. Rows at the positions already sent get the
			// same derived ids, so Segment drops them; appended rows, or a
			// file fetched whole after a cut-short copy, are read at last.
			log.Warn("input changed since an earlier run read it; reading it again from the start",
				"split", s.ID, "was", st.Version, "now", s.Version, "rows_acknowledged_before", st.Offset)
			st = SplitState{}
			cp.Splits[s.ID] = st // the saved progress must not come back when checkpoints merge
			rep.SplitsChanged = append(rep.SplitsChanged, s.ID)
		}
		if st.Done {
			skipped = append(skipped, s)
			rep.RowsSkipped += st.Offset
			continue
		}
		selected = append(selected, s)
		rep.RowsSkipped += st.Offset
		todo = append(todo, work{s, st.Offset})
		if total >= 0 && s.Rows >= 0 {
			total += s.Rows - st.Offset
		} else {
			total = -1
		}
		if totalBytes >= 0 && s.Bytes > 0 {
			totalBytes += s.Bytes
			offsets += st.Offset
		} else {
			totalBytes = -1
		}
	}
	rep.Splits = len(selected) + len(skipped)
	rep.SplitsSkipped = len(skipped)
	// The source's own estimate, for this shard's share of the splits and
	// without the rows earlier runs delivered.
	var sourceEst int64
	if re, ok := built.Source.(RowEstimator); ok && total < 0 && len(splits) > 0 {
		if est := re.EstimatedRows(); est > 0 {
			share := float64(len(selected)+len(skipped)) / float64(len(splits))
			sourceEst = max(int64(float64(est)*share)-rep.RowsSkipped, 0)
		}
	}
	if opts.OnSplits != nil {
		opts.OnSplits(selected, skipped)
	}
	if opts.DryRun && opts.Limit > 0 && (total < 0 || total > opts.Limit) {
		total = opts.Limit
	}
	log.Info("run starting", "pipeline", cfg.Name, "splits", len(todo), "skipped_done", len(skipped),
		"resumed", rep.Resumed, "workers", cfg.Workers, "shard", fmt.Sprintf("%d/%d", opts.Shard, opts.Shards))

	tr := newTracker()
	// A checkpoint of many splits (an archive of 100k objects encodes to
	// ~17 MB in ~0.3 s) must not eat the run: a periodic save is skipped
	// until 20 times its last duration has passed, which keeps saving under
	// ~5% of the time whatever the checkpoint's size.
	var lastSave time.Duration
	var lastSaved, lastFailed time.Time
	unsaved := false // the last save failed after taking the tracker's changes
	// save reports whether it wrote a checkpoint: a periodic save with
	// nothing new, or backing off, writes none.
	save := func(force bool) (saved bool, err error) {
		if opts.DryRun {
			return false, nil
		}
		// After a failure the tick that waited during the save is skipped
		// (half an interval: the next regular tick is not).
		if !force && (time.Since(lastSaved) < 20*lastSave || time.Since(lastFailed) < cfg.CheckpointInterval()/2) {
			return false, nil
		}
		began := time.Now()
		defer func() {
			// A failed save says nothing of a checkpoint's cost (it may
			// have waited out S3's retries): it is retried at the next
			// tick.
			if err == nil {
				lastSave, lastSaved = time.Since(began), time.Now()
			} else {
				lastFailed = time.Now()
			}
		}()
		if err := dl.Sync(); err != nil {
			// Not retried: after a failed fsync the kernel may drop the
			// unwritten pages and the next one succeeds, so a later
			// checkpoint would count rejects whose dead letters are gone.
			return false, permanentSaveError{fmt.Errorf("syncing dead letters: %w", err)}
		}
		snap, changed := tr.snapshot()
		if !changed && !force && !unsaved {
			return false, nil
		}
		defer func() { unsaved = err != nil }()
		var copier func(saved bool)
		if dlCopy != nil {
			end, err := dlCopy.before(cp)
			if err != nil {
				return false, err
			}
			copier = func(saved bool) { dlCopy.after(cp, end, saved) }
		}
		for id, st := range snap {
			old := cp.Splits[id]
			if st.Offset < old.Offset { // never move backwards
				st.Offset = old.Offset
			}
			st.Done = st.Done || old.Done
			st.Version = versions[id]
			cp.Splits[id] = st
		}
		cp.SourceState = bag.Copy()
		cp.UpdatedAt = time.Now().UTC()
		err = store.Save(cp)
		if copier != nil {
			copier(err == nil)
		}
		return err == nil, err
	}

	// runCtx stops reading (a signal, a fatal error). writeCtx lets the
	// batches already read finish their way to the sink: a stop must not
	// cut a batch that is half packed into requests, or its delivered rows
	// would be sent again on resume. writeCtx ends on Abort, a fatal error,
	// or Grace after a stop.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	writeCtx, cancelWrite := context.WithCancel(opts.Abort)
	defer cancelWrite()
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(opts.Grace)
			defer t.Stop()
			select {
			case <-t.C:
				cancelWrite()
			case <-writeCtx.Done():
			}
		case <-writeCtx.Done():
		}
	}()
	var fatalOnce sync.Once
	var fatal error
	fail := func(err error) {
		fatalOnce.Do(func() {
			logPanicStack(log, err)
			fatal = err
			cancelRun(err)
			cancelWrite()
		})
	}
	var failedMu sync.Mutex
	var limitHit atomic.Bool

	readSplit := func(w work) error {
		var rd RecordReader
		err := Safely("opening", func() (err error) {
			rd, err = built.Source.Open(runCtx, w.split, ReadOptions{Offset: w.offset, Columns: built.Columns, BatchRows: cfg.BatchRows})
			return err
		})
		if err != nil {
			if runCtx.Err() != nil && !isPanic(err) {
				return nil // stopped, not failed
			}
			return &splitError{w.split.ID, err}
		}
		defer closeSafely(log, "closing a reader", rd.Close, "split", w.split.ID)
		ra := startReadAhead(runCtx, rd)
		defer ra.Close() // before rd.Close
		tr.open(w.split.ID, w.offset)
		end := w.offset // the row after the last read
		for {
			if opts.Limit > 0 && c.read.Load() >= opts.Limit {
				limitHit.Store(true)
				return nil
			}
			b, err := ra.Next()
			if err == io.EOF {
				tr.finish(w.split.ID)
				c.splitsDone.Add(1)
				if w.offset == 0 && w.split.Bytes > 0 {
					c.wholeRows.Add(end)
					c.wholeBytes.Add(w.split.Bytes)
				}
				return nil
			}
			if err != nil {
				if runCtx.Err() != nil && !isPanic(err) {
					return nil // stopped, not failed; a panic is reported even then
				}
				return &splitError{w.split.ID, err}
			}
			end = b.End
			if err := handleBatch(writeCtx, b, built, dl, tr, &c); err != nil {
				// Stop the run now, not after the deferred closes: they wait
				// for a read in progress, and other splits would go on
				// delivering meanwhile.
				fail(err)
				return err
			}
		}
	}

	// A first save before reading anything: a state store that cannot be
	// written (a denied bucket, a read-only disk) stops the run before it
	// delivers what it could not record. Later failures are then taken as
	// passing, and retried (saveFailures).
	if _, err := save(true); err != nil {
		fail(fmt.Errorf("the checkpoint cannot be saved, so nothing is read: %w", err))
	}

	// Progress and checkpoints tick until the workers are done.
	tickDone := make(chan struct{})
	var tickWG sync.WaitGroup
	tickWG.Add(1)
	saveFailures := &saveFailures{timeout: cfg.CheckpointFailureTimeout(), log: log, fail: fail}
	// progress runs on the goroutine that saves, or after it ended.
	progress := func(final bool) {
		if opts.Progress != nil {
			rejected := dl.count.Load()
			p := Progress{Elapsed: time.Since(start), Read: c.read.Load(),
				Delivered: c.delivered.Load() - (rejected - c.runnerRejects.Load()),
				Rejected:  rejected, Filtered: c.filtered.Load(), TotalRows: total,
				SplitsDone: int(c.splitsDone.Load()), SplitsAll: len(todo), Final: final}
			if ss, ok := built.Sink.(StatsSink); ok {
				p.Sink = ss.Stats()
			}
			p.CheckpointSaveFailures, p.LastCheckpoint = saveFailures.count, lastSaved
			switch rows, bytes := c.wholeRows.Load(), c.wholeBytes.Load(); {
			case total >= 0:
			case totalBytes > 0 && bytes > 0:
				p.TotalRows = max(int64(float64(rows)/float64(bytes)*float64(totalBytes))-offsets, p.Read)
				p.Estimated = true
			case sourceEst > 0:
				p.TotalRows, p.Estimated = max(sourceEst, p.Read), true
			}
			opts.Progress(p)
		}
	}
	go func() {
		defer tickWG.Done()
		every := cfg.CheckpointInterval()
		pe := opts.ProgressEvery
		if pe <= 0 {
			pe = time.Second
		}
		ck := time.NewTicker(every)
		pg := time.NewTicker(pe)
		defer ck.Stop()
		defer pg.Stop()
		for {
			select {
			case <-tickDone:
				return
			case <-ck.C:
				saveFailures.check(save(false))
			case <-pg.C:
				progress(false)
			}
		}
	}()

	queue := make(chan work)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range queue {
				err := readSplit(w)
				var se *splitError
				switch {
				case err == nil:
				case errors.As(err, &se) && cfg.OnError != OnErrorStop:
					log.Error("split failed; the run goes on with the others", "split", se.split, "error", se.err)
					logPanicStack(log, err, "split", se.split)
					failedMu.Lock()
					rep.SplitsFailed = append(rep.SplitsFailed, se.split)
					failedMu.Unlock()
				default:
					fail(err)
				}
			}
		}()
	}
feed:
	for _, w := range todo {
		select {
		case queue <- w:
		case <-runCtx.Done():
			break feed
		}
		if limitHit.Load() {
			break
		}
	}
	close(queue)
	wg.Wait()

	// Deliver what is in flight. A stopped run gets Grace to finish.
	cerr := Safely("closing the sink", func() error { return built.Sink.Close(writeCtx) })
	close(tickDone)
	tickWG.Wait()
	if cerr != nil {
		fail(cerr)
	}
	// A percentage budget is only checked as it goes once enough rows are
	// read to mean something; a small run is checked here, at its end.
	if m := cfg.MaxRejects; m != nil && m.Fraction > 0 && !opts.DryRun {
		if n, read := dl.count.Load(), c.read.Load(); read > 0 && float64(n) > m.Fraction*float64(read) {
			fail(fmt.Errorf("%w: %d of %d rows rejected, over max_rejects %.4g%% (see %s)",
				ErrTooManyRejects, n, read, m.Fraction*100, dl.path))
		}
	}
	// A run that delivered everything lets the source commit (a cursor);
	// splits of earlier runs are then forgotten, since the next run plans
	// new ones.
	if fin, ok := built.Source.(Finisher); ok && fatal == nil && ctx.Err() == nil && !limitHit.Load() && !opts.DryRun {
		failedMu.Lock()
		nFailed := len(rep.SplitsFailed)
		failedMu.Unlock()
		if nFailed == 0 && tr.unacked() == 0 {
			if ferr := Safely("finishing the source", func() error { return fin.Finish(ctx) }); ferr != nil {
				fail(fmt.Errorf("finishing the run: %w", ferr))
			} else {
				current := map[string]bool{}
				for _, s := range append(selected, skipped...) {
					current[s.ID] = true
				}
				for id := range cp.Splits {
					if !current[id] {
						delete(cp.Splits, id)
					}
				}
			}
		}
	}
	// The last save records the whole run: a failure is tried twice more,
	// one interval apart, before the run reports it.
	for attempt := 1; ; attempt++ {
		_, serr := save(true)
		if serr == nil {
			break
		}
		if attempt == 3 || !retryable(serr) {
			fail(serr)
			break
		}
		saveFailures.count++
		log.Warn("saving the final checkpoint failed; trying again", "error", serr, "attempt", attempt)
		select {
		case <-time.After(cfg.CheckpointInterval()):
		case <-opts.Abort.Done(): // a second Ctrl-C: the tries left, without waiting
		}
	}
	progress(true)

	rep.FinishedAt = time.Now().UTC()
	rep.Seconds = time.Since(start).Seconds()
	rep.RowsRead = c.read.Load()
	rep.RowsRejected = dl.count.Load()
	// The sink acknowledges a batch whole, its own rejects included.
	rep.RowsDelivered = c.delivered.Load() - (rep.RowsRejected - c.runnerRejects.Load())
	rep.RowsFiltered = c.filtered.Load()
	rep.RowsUnacked = tr.unacked()
	rep.RejectsByStage = dl.stages()
	rep.CheckpointSaveFailures = saveFailures.count
	rep.SplitsDone = int(c.splitsDone.Load())
	if rep.Seconds > 0 {
		rep.RowsPerSecond = float64(rep.RowsRead) / rep.Seconds
	}
	if s, ok := built.Sink.(StatsSink); ok {
		rep.Sink = s.Stats()
	}
	if d, ok := built.Sink.(DestinationSink); ok {
		rep.Destination = d.Destination()
	}
	sort.Strings(rep.SplitsFailed)
	switch {
	case fatal != nil && ctx.Err() != nil && errors.Is(fatal, context.Cause(ctx)):
		rep.Status, err = "interrupted", ErrInterrupted
	case fatal != nil:
		rep.Status, err = "failed", fatal
	case ctx.Err() != nil:
		rep.Status, err = "interrupted", ErrInterrupted
	case len(rep.SplitsFailed) > 0:
		rep.Status = "failed"
		err = fmt.Errorf("%d split(s) failed: %v; rerun to retry them", len(rep.SplitsFailed), rep.SplitsFailed)
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

type splitError struct {
	split string
	err   error
}

func (e *splitError) Error() string { return fmt.Sprintf("split %s: %v", e.split, e.err) }
func (e *splitError) Unwrap() error { return e.err }

// handleBatch runs one batch through the transforms, sets its rejects
// aside and hands the rest to the sink.
func handleBatch(ctx context.Context, b *Batch, built *Built, dl *deadLetterFile, tr *tracker, c *counters) error {
	ack, err := tr.register(b.Split, b.Start, b.End)
	if err != nil {
		b.Release()
		return err
	}
	c.read.Add(b.End - b.Start)
	for i, t := range built.Transforms {
		where := "transform"
		if i < len(built.TransformNames) {
			where = built.TransformNames[i]
		}
		if err := Safely(where, func() error { return t.Apply(ctx, b) }); err != nil {
			b.Release()
			return err
		}
	}
	c.runnerRejects.Add(int64(len(b.Rejects)))
	for _, r := range b.Rejects {
		if err := dl.Write(ctx, b.Split, r); err != nil {
			b.Release()
			return err
		}
	}
	c.filtered.Add(b.Filtered)
	n := b.NumRows()
	if n == 0 {
		b.Release()
		ack(nil)
		return nil
	}
	b.SetAck(func(err error) {
		if err == nil {
			c.delivered.Add(n)
		}
		ack(err)
	})
	return Safely("sink", func() error { return built.Sink.Write(ctx, b) })
}

// permanentSaveError is a save failure that retrying cannot mend.
type permanentSaveError struct{ error }

func (e permanentSaveError) Unwrap() error { return e.error }

// retryable says whether a failed save may succeed when tried again: not
// when another run wrote the checkpoint, nor after a permanentSaveError.
func retryable(err error) bool {
	return !errors.Is(err, ErrCheckpointConflict) && !errors.As(err, new(permanentSaveError))
}

// saveFailures decides what a failed periodic checkpoint save does. A
// multi-hour run must not die of one S3 error: delivery goes on, the save
// is retried at the next interval, and the run stops only when saves have
// failed for the timeout (or at once when another run wrote the
// checkpoint). Used by the one goroutine that saves periodically.
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
