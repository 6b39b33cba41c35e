package engine

// A `sync` pipeline sends only what changed since the last acknowledged
// send. Each batch, after the transforms, is compared row by row with the
// snapshot (state.Snapshot, on disk): a key it has not got is added, one
// whose content hash differs is changed, and both are sent under a
// messageId derived from the key and the content; the rest are unchanged,
// counted as filtered. A key's new hash is written when its batch is
// acknowledged, never before, so a killed run resends only what was not
// acknowledged. Each key read is also marked seen by the pass (a first
// run and its resumptions), at read time: a second row with the key is a
// duplicate, and a pass that saw every split removes from the snapshot the
// keys it did not see.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
	"github.com/backfillhq/backfill/pipeline/state"
	"github.com/backfillhq/backfill/sinks/message"
)

// StageSync names the rows the sync step rejects (a null or duplicate
// primary key) in the dead letters.
const StageSync = "sync"

// syncer diffs a run's rows with the snapshot and records what is
// acknowledged.
type syncer struct {
	cfg  *config.Sync
	name string // the pipeline's, for messageIds
	mem  memory.Allocator
	// snap is nil for a preview of a pipeline never run: every row is
	// then added.
	snap *state.Snapshot
	// record is false in a preview: it compares and writes nothing, and
	// keeps the keys it saw in memory (a preview reads a few rows).
	record bool

	mu      sync.Mutex // one batch's check-and-mark of keys at a time
	memSeen map[string]state.RowRef
	splits  sync.Map // split hash -> split ID, to name a duplicate's first row

	colsMu sync.Mutex
	cols   map[*arrow.Schema]*syncCols

	// compared counts the rows this run compared (its report); acked
	// those of acknowledged batches (the pass's account in the
	// checkpoint, which a resumed run adds to and must not count twice).
	// gate makes a batch's snapshot writes, acked counts and tracker ack
	// one step for the checkpointer's snapshot.
	compared, acked syncCounts
	removed         atomic.Int64
	gate            sync.RWMutex
	// unkeyed counts rows rejected before the sync step: their keys are
	// unknown, so a pass with any cannot tell removed keys.
	unkeyed  atomic.Int64
	base     state.SyncPass // what the earlier runs of the pass counted
	complete atomic.Bool
	skipped  string // why removed keys were not looked for
	// deleting says the removed keys' messages were sent (sync.deleted);
	// deletesUnacked counts those not acknowledged, kept for the next run.
	deleting       bool
	deletesUnacked atomic.Int64

	// With a remote state, the snapshot's copy beside the checkpoint:
	// its generation, and the table files it holds already. Used by the
	// saves, one at a time.
	remote state.SnapshotStore
	gen    int
	copy   *state.SnapshotCopy
	have   map[string]bool
	// listed is the copy the last checkpoint saved lists: it and the
	// copy before it are kept, older ones deleted (pruneCopies).
	listed *state.SnapshotCopy
}

// syncCols are the columns of one schema the key and the content are made
// of.
type syncCols struct {
	key, content []int
	keyNames     []string
}

// syncBatch is what a batch sends: the keys and content hashes its rows
// will have in the snapshot once acknowledged.
type syncBatch struct {
	rows    []int64 // split rows
	keys    [][]byte
	hashes  []state.Hash
	befores []*state.Hash // what each key had before the pass; nil: none
	counts  syncCounts    // what the batch's rows are

	mu       sync.Mutex
	rejected map[int64]bool // by the sink: the snapshot keeps the old version
}

// syncCounts counts rows by what the comparison found.
type syncCounts struct{ added, changed, unchanged atomic.Int64 }

func (c *syncCounts) add(o *syncCounts) {
	c.added.Add(o.added.Load())
	c.changed.Add(o.changed.Load())
	c.unchanged.Add(o.unchanged.Load())
}

// columns finds the key and compared columns in a schema: every column
// but messageId, sentAt and timestamp (unless compare names them) and
// those ignored.
func (s *syncer) columns(sc *arrow.Schema) (*syncCols, error) {
	s.colsMu.Lock()
	defer s.colsMu.Unlock()
	if c := s.cols[sc]; c != nil {
		return c, nil
	}
	c := &syncCols{keyNames: s.cfg.PrimaryKey}
	names := make([]string, 0, sc.NumFields())
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	for _, k := range s.cfg.PrimaryKey {
		idx := sc.FieldIndices(k)
		if len(idx) == 0 {
			return nil, missingSyncColumn("primary_key", k, names)
		}
		c.key = append(c.key, idx[0])
	}
	ignored := map[string]bool{"messageId": true, "sentAt": true, "timestamp": true}
	for _, n := range s.cfg.Ignore {
		ignored[n] = true
	}
	want := map[string]bool{}
	for _, n := range s.cfg.Compare {
		if len(sc.FieldIndices(n)) == 0 {
			return nil, missingSyncColumn("compare", n, names)
		}
		want[n] = true
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted) // the hash must not depend on the column order
	for _, n := range sorted {
		if len(want) > 0 && !want[n] || len(want) == 0 && ignored[n] {
			continue
		}
		c.content = append(c.content, sc.FieldIndices(n)[0])
	}
	if s.cols == nil {
		s.cols = map[*arrow.Schema]*syncCols{}
	}
	if len(s.cols) > 64 { // schemas are few; a source making one per batch must not grow this
		clear(s.cols)
	}
	s.cols[sc] = c
	return c, nil
}

// missingSyncColumn says that a column sync.field names is not among the
// columns after the transforms (message paths, which a user may confuse
// with the source's column names).
func missingSyncColumn(field, name string, names []string) error {
	hint := ""
	if s := config.Suggest(name, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Errorf("sync.%s: column %q is not in the rows after the transforms%s; they have: %s", field, name, hint, strings.Join(names, ", "))
}

// diff compares a batch's rows with the snapshot: unchanged rows are
// dropped as filtered, rows with a null or duplicate key rejected, and the
// rest get their sync messageId. It returns what the batch sends.
func (s *syncer) diff(b *pipeline.Batch) (*syncBatch, error) {
	rec := b.Record
	if rec == nil || rec.NumRows() == 0 {
		return nil, nil
	}
	cols, err := s.columns(rec.Schema())
	if err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	mask := make([]uint8, n)
	rejects := map[int]*pipeline.Reject{}
	keys := make([][]byte, n)
	hashes := make([]state.Hash, n)
	var scratch []byte
	for i := 0; i < n; i++ {
		key, null := appendKey(nil, rec, cols, i)
		if null != "" {
			mask[i] = pipeline.FateReject
			rejects[i] = &pipeline.Reject{Stage: StageSync, Column: null,
				Reason: fmt.Sprintf("primary key column %q is null: a row without a key cannot be synced", null)}
			continue
		}
		keys[i] = key
		scratch = scratch[:0]
		for _, c := range cols.content {
			scratch = appendCell(scratch, rec.Column(c), i, false)
			scratch = append(scratch, 0xff) // no cell encoding ends so: columns stay apart
		}
		sum := sha256.Sum256(scratch)
		copy(hashes[i][:], sum[:])
	}
	if err := s.markSeen(b, keys, mask, rejects); err != nil {
		return nil, err
	}
	sb, ids, err := s.compare(b, keys, hashes, mask)
	if err != nil {
		return nil, err
	}
	s.compared.add(&sb.counts)
	if err := s.setIDs(b, ids); err != nil {
		return nil, err
	}
	if err := b.DropMask(s.mem, mask, rejects); err != nil {
		return nil, err
	}
	return sb, nil
}

// compare looks each kept row's key up in the snapshot: unchanged rows
// are masked as filtered; the others get their messageId.
//
// A key acknowledged earlier in this pass, by a run killed before a
// checkpoint counted its row, is read again by the resumed run: it is
// sent again (under the same messageId, which Segment drops as a copy)
// and counted against what it had before the pass, as the killed run
// counted it, so the pass's account and the row account agree with a run
// that was never killed.
func (s *syncer) compare(b *pipeline.Batch, keys [][]byte, hashes []state.Hash, mask []uint8) (*syncBatch, []string, error) {
	sb := &syncBatch{}
	ids := make([]string, len(keys))
	found := make([]bool, len(keys))
	entries := make([]state.Sent, len(keys))
	err := s.snap.SentMany(keys, func(i int) bool { return mask[i] == pipeline.FateKeep },
		func(i int, e state.Sent) { found[i], entries[i] = true, e })
	if err != nil {
		return nil, nil, fmt.Errorf("reading the sync snapshot: %w", err)
	}
	var id []byte
	for i, key := range keys {
		if mask[i] != pipeline.FateKeep {
			continue
		}
		e := entries[i]
		var before *state.Hash // what the key had when the pass began
		if base, had := e.Base(); found[i] && had {
			before = &base
		}
		switch {
		case found[i] && !e.InPass && e.Hash == hashes[i]:
			sb.counts.unchanged.Add(1)
			mask[i] = pipeline.FateFilter
			continue
		case before == nil:
			sb.counts.added.Add(1)
		default:
			sb.counts.changed.Add(1)
		}
		id = message.AppendSyncID(id[:0], s.name, key, hashes[i][:])
		ids[i] = string(id)
		sb.rows = append(sb.rows, b.Row(i))
		sb.keys = append(sb.keys, key)
		sb.hashes = append(sb.hashes, hashes[i])
		sb.befores = append(sb.befores, before)
	}
	return sb, ids, nil
}

// markSeen records that the pass saw each keyed row, and rejects a row
// whose key the pass saw at another row: the second of two rows with one
// key, naming both. The same row read again (a resumption) is no
// duplicate.
func (s *syncer) markSeen(b *pipeline.Batch, keys [][]byte, mask []uint8, rejects map[int]*pipeline.Reject) error {
	split := splitHash(b.Split)
	s.splits.Store(split, b.Split)
	s.mu.Lock()
	defer s.mu.Unlock()
	var wb *state.SnapshotBatch
	if s.record {
		wb = s.snap.NewBatch()
	}
	earlier, err := s.seenBefore(keys, mask)
	if err != nil {
		return fmt.Errorf("reading the sync snapshot: %w", err)
	}
	inBatch := map[string]state.RowRef{} // the batch's own marks are not readable before its commit
	for i, key := range keys {
		if mask[i] != pipeline.FateKeep {
			continue
		}
		ref := state.RowRef{Split: split, Row: b.Row(i)}
		prev, seen := inBatch[string(key)]
		if !seen {
			prev, seen = earlier[i], earlier[i] != noRef
		}
		switch {
		case seen && prev != ref:
			mask[i] = pipeline.FateReject
			rejects[i] = &pipeline.Reject{Stage: StageSync, Column: strings.Join(s.cfg.PrimaryKey, ","),
				Reason: fmt.Sprintf("duplicate primary key %s: row %d of %s has it too; that row is synced, row %d of %s is not",
					key, prev.Row, s.splitName(prev.Split), ref.Row, b.Split)}
		case !seen:
			inBatch[string(key)] = ref
			if wb != nil {
				wb.MarkSeen(key, ref)
			} else {
				s.memSeen[string(key)] = ref
			}
		}
	}
	if wb == nil {
		return nil
	}
	if err := wb.Commit(); err != nil {
		return fmt.Errorf("writing the sync snapshot: %w", err)
	}
	return nil
}

// noRef marks a key the pass has not seen: no split hashes to 0 and
// sits at row -1.
var noRef = state.RowRef{Row: -1}

// seenBefore says where the pass saw each kept key before this batch, or
// noRef.
func (s *syncer) seenBefore(keys [][]byte, mask []uint8) ([]state.RowRef, error) {
	refs := make([]state.RowRef, len(keys))
	for i := range refs {
		refs[i] = noRef
		if !s.record && mask[i] == pipeline.FateKeep {
			if ref, ok := s.memSeen[string(keys[i])]; ok {
				refs[i] = ref
			}
		}
	}
	if !s.record {
		return refs, nil
	}
	return refs, s.snap.SeenMany(keys, func(i int) bool { return mask[i] == pipeline.FateKeep },
		func(i int, ref state.RowRef) { refs[i] = ref })
}

func (s *syncer) splitName(h uint64) string {
	if id, ok := s.splits.Load(h); ok {
		return id.(string)
	}
	return fmt.Sprintf("a split read by an earlier run (hash %016x)", h)
}

func splitHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// setIDs puts the sync messageIds in the batch's messageId column (added,
// or replacing one a transform set: under sync the id follows the
// content).
func (s *syncer) setIDs(b *pipeline.Batch, ids []string) error {
	rec := b.Record
	bld := array.NewStringBuilder(s.mem)
	defer bld.Release()
	bld.AppendValues(ids, nil)
	col := bld.NewArray()
	defer col.Release()
	fields := append([]arrow.Field(nil), rec.Schema().Fields()...)
	cols := append([]arrow.Array(nil), rec.Columns()...)
	field := arrow.Field{Name: "messageId", Type: arrow.BinaryTypes.String}
	if idx := rec.Schema().FieldIndices("messageId"); len(idx) > 0 {
		fields[idx[0]], cols[idx[0]] = field, col
	} else {
		fields, cols = append(fields, field), append(cols, col)
	}
	md := rec.Schema().Metadata()
	b.ReplaceRecord(array.NewRecord(arrow.NewSchema(fields, &md), cols, rec.NumRows()))
	return nil
}

// sent records an acknowledged batch's keys with their new content, but
// for the rows the sink set aside: the snapshot keeps what they had. It
// counts the batch's rows in the pass's account. The caller holds gate
// (read) until the batch's ack is in the tracker.
func (s *syncer) sent(sb *syncBatch) error {
	if s.record && len(sb.rows) > 0 {
		wb := s.snap.NewBatch()
		sb.mu.Lock()
		for i, row := range sb.rows {
			if !sb.rejected[row] {
				wb.MarkSent(sb.keys[i], sb.hashes[i], sb.befores[i])
			}
		}
		sb.mu.Unlock()
		if err := wb.Commit(); err != nil {
			return fmt.Errorf("writing the sync snapshot: %w", err)
		}
	}
	s.acked.add(&sb.counts)
	return nil
}

// snapshot runs take (the tracker's snapshot) while no batch is between
// its sent and its ack, and returns the pass's account as of then.
func (s *syncer) snapshot(take func()) *state.SyncPass {
	s.gate.Lock()
	defer s.gate.Unlock()
	take()
	return s.pass()
}

func (sb *syncBatch) reject(row int64) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.rejected == nil {
		sb.rejected = map[int64]bool{}
	}
	sb.rejected[row] = true
}

// appendKey appends row i's primary key as a JSON array of its values,
// or names the first key column that is null.
func appendKey(dst []byte, rec arrow.Record, cols *syncCols, i int) ([]byte, string) {
	dst = append(dst, '[')
	for j, c := range cols.key {
		col := rec.Column(c)
		if col.IsNull(i) {
			return nil, cols.keyNames[j]
		}
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = appendCell(dst, col, i, true)
	}
	return append(dst, ']'), ""
}

// appendCell appends one value: as JSON (asJSON, for a key), or in a
// cheaper form that tells values apart (for a content hash). The types
// sources give are written directly; the rest as Arrow marshals them.
func appendCell(dst []byte, col arrow.Array, i int, asJSON bool) []byte {
	if col.IsNull(i) {
		return append(dst, "null"...)
	}
	switch a := col.(type) {
	case *array.String:
		return appendString(dst, a.Value(i), asJSON)
	case *array.LargeString:
		return appendString(dst, a.Value(i), asJSON)
	case *array.Int64:
		return strconv.AppendInt(dst, a.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(dst, int64(a.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(dst, a.Value(i), 10)
	case *array.Boolean:
		return strconv.AppendBool(dst, a.Value(i))
	case *array.Float64:
		if v := a.Value(i); !math.IsInf(v, 0) && !math.IsNaN(v) {
			return strconv.AppendFloat(dst, v, 'g', -1, 64)
		}
	case *array.Dictionary:
		return appendCell(dst, a.Dictionary(), a.GetValueIndex(i), asJSON)
	case *record.JSONArray:
		if asJSON {
			return append(dst, a.ValueBytes(i)...)
		}
		return appendString(dst, a.Value(i), false)
	}
	v, err := json.Marshal(col.GetOneForMarshal(i))
	if err != nil {
		return appendString(dst, fmt.Sprint(col.GetOneForMarshal(i)), asJSON)
	}
	return append(dst, v...)
}

// appendString writes s as JSON, or length-prefixed: no separator can
// then be mistaken for part of a value.
func appendString(dst []byte, s string, asJSON bool) []byte {
	if asJSON {
		v, _ := json.Marshal(s)
		return append(dst, v...)
	}
	dst = append(dst, '"')
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// SyncReport is what a sync run found: rows added, changed (both sent),
// unchanged (filtered), and keys removed from the snapshot.
type SyncReport struct {
	Added     int64 `json:"added"`
	Changed   int64 `json:"changed"`
	Unchanged int64 `json:"unchanged"`
	Removed   int64 `json:"removed"`
	// RemovedNotChecked says why the run did not look for removed keys
	// (it did not see every split, rows were rejected before the sync
	// step); empty when it did.
	RemovedNotChecked string `json:"removed_not_checked,omitempty"`
	Snapshot          string `json:"snapshot,omitempty"`
	// PassComplete says the pass saw every split: the next run starts a
	// new one.
	PassComplete bool `json:"pass_complete"`
}

// openSync opens the snapshot of a `sync` pipeline: a preview's read-only
// (it records nothing), a run's to record; a run that starts a pass
// forgets the keys the last pass saw, --fresh the whole snapshot.
func (r *Run) openSync() error {
	c := r.cfg.Sync
	if c == nil {
		return nil
	}
	switch {
	case len(c.PrimaryKey) == 0:
		return errors.New("sync.primary_key: name at least one column")
	case r.opts.Shards > 1:
		return errSyncSharded
	}
	preview := r.store.Location() == ""
	dir := r.paths().SnapshotDir()
	s := &syncer{cfg: c, name: r.cfg.Name, mem: r.opts.Alloc, record: !preview, memSeen: map[string]state.RowRef{}, have: map[string]bool{}}
	if err := s.fetch(r.runCtx, r.store, dir, r.lastSync, preview || r.opts.Fresh); err != nil {
		return err
	}
	snap, err := state.OpenSnapshot(dir, r.opts.Fresh, preview)
	if err != nil {
		return err
	}
	s.snap = snap
	r.sync = s
	switch {
	case !r.rep.Resumed && preview:
		snap.AssumeNewPass()
	case !r.rep.Resumed:
		if err := snap.StartPass(); err != nil {
			return fmt.Errorf("starting a sync pass in %s: %w", dir, err)
		}
	case !preview:
		// A split whose input changed is read again from its start, its
		// keys at other rows than the killed run saw them.
		for id := range r.plan.changed {
			if _, err := snap.ForgetSeenIn(splitHash(id)); err != nil {
				return fmt.Errorf("resuming a sync pass in %s: %w", dir, err)
			}
		}
	}
	if r.rep.Resumed && r.cp.Sync != nil {
		s.base = *r.cp.Sync
	}
	r.saver.sync = s
	r.rep.Sync = &SyncReport{Snapshot: dir}
	return nil
}

// fetch sets up the snapshot's copy beside a remote checkpoint (a
// SnapshotStore): the local snapshot is replaced by the copy the
// checkpoint lists when it is not that copy (another machine ran since,
// or this one never did).
func (s *syncer) fetch(ctx context.Context, store state.Store, dir string, last *state.SyncPass, local bool) error {
	ss, ok := store.(state.SnapshotStore)
	if !ok || local {
		return nil
	}
	s.remote = ss
	if last == nil || last.Copy == nil {
		return nil
	}
	s.gen, s.copy, s.listed = last.Copy.Gen, last.Copy, last.Copy
	for _, f := range last.Copy.Files {
		s.have[f] = true
	}
	if state.LocalCopyGen(dir) == last.Copy.Gen {
		return nil
	}
	return state.FetchSnapshot(ctx, ss, dir, last.Copy)
}

// copyOut copies the snapshot beside a remote checkpoint, before the
// checkpoint that counts its rows is saved.
func (s *syncer) copyOut(ctx context.Context) error {
	if s.remote == nil {
		return nil
	}
	c, err := s.snap.Copy(ctx, s.remote, s.gen+1, s.have)
	if err != nil {
		return err
	}
	s.gen, s.copy = c.Gen, c
	return nil
}

// pruneCopies deletes the snapshot's older copies once a checkpoint
// listing s.copy is saved: every save writes a copy, and a sync run hourly
// would otherwise pile up compacted table files and manifests for good.
// The copy the previous checkpoint listed stays too, for a machine that
// read that checkpoint a moment ago and is fetching its copy. Files a
// failed prune leaves are deleted by the next one.
func (s *syncer) pruneCopies(ctx context.Context) error {
	if s.remote == nil || s.copy == nil || s.copy == s.listed {
		return nil
	}
	keep := make(map[string]bool, 2*len(s.copy.Files))
	for _, c := range []*state.SnapshotCopy{s.copy, s.listed} {
		if c != nil {
			for _, f := range c.Files {
				keep[f] = true
			}
		}
	}
	s.listed = s.copy
	return s.remote.PruneSnapshotFiles(ctx, func(name string) bool { return keep[name] })
}

// finishSync ends a pass that saw every split: the keys of the snapshot
// it did not see are removed (counted, and forgotten unless a preview),
// and the pass is complete, so the next run starts a new one.
func (r *Run) finishSync(ctx context.Context) {
	s := r.sync
	if s == nil {
		return
	}
	why := r.seenAll(ctx)
	switch {
	case why == unfinished || why == "" && r.tracker.unacked() > 0:
		s.skipped = unfinished
		return
	case r.workers.limitHit.Load():
		s.skipped = why
		return
	case why != "":
		s.skipped = why
		r.log.Warn("sync: removed keys are not looked for in this pass", "why", s.skipped)
	case s.deleting:
		// The keys whose messages were acknowledged are forgotten; the
		// others stay, found removed again by the next pass.
		if n := s.deletesUnacked.Load(); n > 0 {
			s.skipped = fmt.Sprintf("%d messages of removed keys were not acknowledged: the next run sends them again", n)
		}
	default:
		if err := s.removeUnseen(); err != nil {
			r.fail(err)
			return
		}
	}
	s.complete.Store(true)
}

// removeUnseen counts the keys sent before and not seen by the pass, and
// forgets them when the run records.
func (s *syncer) removeUnseen() error {
	if s.snap == nil {
		return nil
	}
	var seen func([]byte) bool
	if !s.record {
		seen = func(k []byte) bool { _, ok := s.memSeen[string(k)]; return ok }
	}
	var wb *state.SnapshotBatch
	var n int64
	err := s.snap.Removed(seen, func(key, _ []byte) error {
		n++
		if !s.record {
			return nil
		}
		if wb == nil {
			wb = s.snap.NewBatch()
		}
		wb.Forget(key)
		if wb.Len() >= 10_000 { // bounded: a table emptied must not hold every key in one batch
			err := wb.Commit()
			wb = nil
			return err
		}
		return nil
	})
	if err == nil && wb != nil {
		err = wb.Commit()
	}
	if err != nil {
		return fmt.Errorf("removing unseen keys from the sync snapshot: %w", err)
	}
	s.removed.Store(n)
	return nil
}

// flush makes the snapshot's writes durable, before a checkpoint counts
// the rows they record.
func (s *syncer) flush() error {
	if !s.record {
		return nil
	}
	if err := s.snap.Sync(); err != nil {
		return permanentSaveError{fmt.Errorf("syncing the sync snapshot: %w", err)}
	}
	return nil
}

// pass is the pass's account for the checkpoint: the earlier runs' and
// this one's.
func (s *syncer) pass() *state.SyncPass {
	b := s.base
	return &state.SyncPass{Complete: s.complete.Load(), Added: b.Added + s.acked.added.Load(), Changed: b.Changed + s.acked.changed.Load(),
		Unchanged: b.Unchanged + s.acked.unchanged.Load(), Removed: b.Removed + s.removed.Load(), Unkeyed: b.Unkeyed + s.unkeyed.Load(),
		Copy: s.copy}
}

// report is this run's account.
func (s *syncer) report(rep *SyncReport) *SyncReport {
	if rep == nil {
		rep = &SyncReport{}
	}
	rep.Added, rep.Changed, rep.Unchanged, rep.Removed = s.compared.added.Load(), s.compared.changed.Load(), s.compared.unchanged.Load(), s.removed.Load()
	rep.RemovedNotChecked, rep.PassComplete = s.skipped, s.complete.Load()
	return rep
}

// closeSync closes the snapshot, after the last checkpoint.
func (r *Run) closeSync() {
	if r.sync == nil || r.sync.snap == nil {
		return
	}
	if err := r.sync.snap.Close(); err != nil {
		r.fail(fmt.Errorf("closing the sync snapshot: %w", err))
	}
	r.sync.snap = nil
}

// errSyncSharded explains why a sync cannot be sharded.
var errSyncSharded = errors.New("a sync pipeline cannot run sharded (--shard/--shards): shards take splits by their ID, " +
	"not by key, so a row whose key moves to a split of another shard would be sent again as added by that shard, " +
	"and found removed by this one; run it unsharded")
