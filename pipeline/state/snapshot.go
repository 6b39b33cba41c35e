package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

// Snapshot is what a `sync` pipeline sent: per primary key, a hash of the
// content its last acknowledged message carried, and, for the pass under
// way (a first run and its resumptions), where each key was seen. It is a
// Pebble database on local disk: a 50M-key table needs its keys on disk,
// not in memory (the block cache and memtables are bounded, below).
//
// Keys: 'k' + key -> content hash (the last acknowledged send); 'r' + key
// -> the split hash and row where the pass saw the key. A pass that saw
// every split finds its removed keys by walking both in key order.
type Snapshot struct {
	db   *pebble.DB
	path string
	pass uint64 // the current pass's number: StartPass counts them
}

const (
	prefixSent = 'k'
	prefixSeen = 'r'
	// keyPass holds the number of the current pass.
	keyPass = "mpass"
)

// SnapshotDir is the snapshot of a pipeline shard: under a local state
// directory, or, with a remote state, under .backfill/NAME (copied to the
// store: SnapshotStore).
func (p Paths) SnapshotDir() string {
	if Remote(p.State) {
		return filepath.Join(".backfill", p.Name, shardName("snapshot", p.Shard, p.Shards))
	}
	return filepath.Join(p.State, p.Name, shardName("snapshot", p.Shard, p.Shards))
}

func shardName(base string, shard, shards int) string {
	if shards <= 1 {
		return base
	}
	return fmt.Sprintf("%s-shard-%d-of-%d", base, shard, shards)
}

// OpenSnapshot opens (creating) the snapshot in dir; fresh removes what
// was there first. readOnly opens an existing one without changing it (a
// preview): a snapshot not there yet is an empty one (nil, nil).
func OpenSnapshot(dir string, fresh, readOnly bool) (*Snapshot, error) {
	if readOnly {
		if _, err := os.Stat(filepath.Join(dir, "CURRENT")); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	if fresh && !readOnly {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing the sync snapshot %s: %w", dir, err)
		}
	}
	opts := &pebble.Options{
		// Bounded memory whatever the table's size: 256 MB of cached
		// blocks, two 16 MB memtables. Lookups are random (rows come in
		// split order, not key order), so the cache decides the speed:
		// a first run of 1M rows took 45 s of CPU with 32 MB, 14 s with
		// 256 MB (bench/sync.sh).
		Cache:        pebble.NewCache(256 << 20),
		MemTableSize: 16 << 20,
		ReadOnly:     readOnly,
		Logger:       quietLogger{},
	}
	// Most lookups miss (every key of a first pass, every key seen of a
	// new one): without a bloom filter each miss reads an index block of
	// every level and L0 file, and a first run of 10M rows slowed down as
	// the database grew (15k rows/s by 8M).
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	defer opts.Cache.Unref()
	db, err := pebble.Open(dir, opts)
	if err != nil && readOnly {
		return nil, fmt.Errorf("reading the sync snapshot %s (a run of the pipeline holds it while it runs; preview again once it ends): %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the sync snapshot %s: %w", dir, err)
	}
	snap := &Snapshot{db: db, path: dir}
	if snap.pass, err = snap.readPass(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the sync snapshot %s: %w", dir, err)
	}
	return snap, nil
}

func (s *Snapshot) readPass() (uint64, error) {
	v, closer, err := s.db.Get([]byte(keyPass))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil // a new snapshot, or one written before passes were numbered
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("a pass number of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// quietLogger keeps Pebble's own info lines out of the run's output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// Path is the snapshot's directory.
func (s *Snapshot) Path() string { return s.path }

// Close closes the database.
func (s *Snapshot) Close() error {
	if s == nil {
		return nil
	}
	return s.db.Close()
}

// Hash is a content hash: 16 bytes of a SHA-256.
type Hash [16]byte

// RowRef is where a pass saw a key: a hash of the split's ID and the row.
type RowRef struct {
	Split uint64
	Row   int64
}

func prefixed(p byte, key []byte, buf []byte) []byte {
	buf = append(buf[:0], p)
	return append(buf, key...)
}

// SentMany looks up the content hash of the keys want picks, and calls
// found for each one sent before. One iterator walks them in key order: a
// Get per key builds and tears down an iterator over every level, which
// was half of a sync's CPU (BenchmarkSnapshotLookups: the walk is 1.8x
// faster for keys spread over the table, 3.7x for a batch of neighbours).
func (s *Snapshot) SentMany(keys [][]byte, want func(i int) bool, found func(i int, e Sent)) error {
	return s.walk(prefixSent, keys, want, func(i int, v []byte) error {
		e, err := s.decodeSent(v)
		if err != nil {
			return err
		}
		found(i, e)
		return nil
	})
}

// Sent is what the snapshot holds of a key: the content hash of its last
// acknowledged message and, when that was acknowledged in the current
// pass, the hash it had before the pass.
type Sent struct {
	Hash Hash
	// InPass says Hash was acknowledged in the current pass: by a run of
	// it killed before a checkpoint counted the row, when a resumed run
	// reads the key again. The pass compares the row with Before (none
	// when HadBefore is false: the key was added in this pass).
	InPass    bool
	Before    Hash
	HadBefore bool
}

// Base is what the key had when the current pass began: Hash, or, when
// this pass wrote Hash, Before (had is false for a key the pass added).
func (e Sent) Base() (h Hash, had bool) {
	if e.InPass {
		return e.Before, e.HadBefore
	}
	return e.Hash, true
}

// A sent entry is the hash, then (since passes are numbered) the pass
// that wrote it as a uvarint, then the hash before that pass, if any.
func (s *Snapshot) decodeSent(v []byte) (Sent, error) {
	var e Sent
	if len(v) < len(e.Hash) {
		return e, fmt.Errorf("sync snapshot %s: a sent entry of %d bytes", s.path, len(v))
	}
	copy(e.Hash[:], v)
	rest := v[len(e.Hash):]
	if len(rest) == 0 {
		return e, nil // written before passes were numbered
	}
	pass, n := binary.Uvarint(rest)
	if n <= 0 || len(rest[n:]) != 0 && len(rest[n:]) != len(e.Before) {
		return e, fmt.Errorf("sync snapshot %s: a sent entry of %d bytes", s.path, len(v))
	}
	if e.InPass = pass == s.pass; e.InPass && len(rest[n:]) > 0 {
		copy(e.Before[:], rest[n:])
		e.HadBefore = true
	}
	return e, nil
}

// AssumeNewPass makes a read-only snapshot (a preview's) compare as the
// next pass will: entries the last pass wrote are not of this one.
func (s *Snapshot) AssumeNewPass() {
	if s != nil {
		s.pass++
	}
}

// SeenMany calls found with where the pass saw each key want picks, for
// those it saw, as SentMany does.
func (s *Snapshot) SeenMany(keys [][]byte, want func(i int) bool, found func(i int, ref RowRef)) error {
	return s.walk(prefixSeen, keys, want, func(i int, v []byte) error {
		ref, ok := decodeRowRef(v)
		if !ok {
			return fmt.Errorf("sync snapshot %s: a seen entry of %d bytes", s.path, len(v))
		}
		found(i, ref)
		return nil
	})
}

// A seen entry is the split's hash and the row, 8 bytes each.
func encodeRowRef(ref RowRef) [16]byte {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:], ref.Split)
	binary.BigEndian.PutUint64(v[8:], uint64(ref.Row))
	return v
}

func decodeRowRef(v []byte) (RowRef, bool) {
	if len(v) != 16 {
		return RowRef{}, false
	}
	return RowRef{Split: binary.BigEndian.Uint64(v), Row: int64(binary.BigEndian.Uint64(v[8:]))}, true
}

// walk seeks the entries of kind p for the keys want picks, in key order,
// and calls fn with the value of each one there (valid during the call).
func (s *Snapshot) walk(p byte, keys [][]byte, want func(i int) bool, fn func(i int, v []byte) error) error {
	if s == nil {
		return nil
	}
	order := make([]int, 0, len(keys))
	for i := range keys {
		if want(i) {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		return err
	}
	var buf []byte
	for _, i := range order {
		buf = prefixed(p, keys[i], buf)
		if it.SeekGE(buf) && bytes.Equal(it.Key(), buf) {
			if err := fn(i, it.Value()); err != nil {
				it.Close()
				return err
			}
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// SnapshotBatch gathers writes, applied at once by Commit.
type SnapshotBatch struct {
	b    *pebble.Batch
	buf  []byte
	val  []byte
	pass uint64
}

// NewBatch starts a batch of writes.
func (s *Snapshot) NewBatch() *SnapshotBatch { return &SnapshotBatch{b: s.db.NewBatch(), pass: s.pass} }

// MarkSeen records that the pass saw key at ref.
func (b *SnapshotBatch) MarkSeen(key []byte, ref RowRef) {
	v := encodeRowRef(ref)
	b.buf = prefixed(prefixSeen, key, b.buf)
	_ = b.b.Set(b.buf, v[:], nil) // a batch's Set fails only once committed
}

// MarkSent records that key's message with content h is acknowledged in
// the current pass; before is the hash the key had before the pass, nil
// when it had none.
func (b *SnapshotBatch) MarkSent(key []byte, h Hash, before *Hash) {
	b.buf = prefixed(prefixSent, key, b.buf)
	b.val = binary.AppendUvarint(append(b.val[:0], h[:]...), b.pass)
	if before != nil {
		b.val = append(b.val, before[:]...)
	}
	_ = b.b.Set(b.buf, b.val, nil)
}

// Forget drops key from what was sent: it is gone from the source.
func (b *SnapshotBatch) Forget(key []byte) {
	b.buf = prefixed(prefixSent, key, b.buf)
	_ = b.b.Delete(b.buf, nil)
}

// Len is the number of writes gathered.
func (b *SnapshotBatch) Len() int { return int(b.b.Count()) }

// Commit applies the batch. It is not synced: Sync, before a checkpoint
// counts the rows, makes every committed batch durable.
func (b *SnapshotBatch) Commit() error {
	defer b.b.Close()
	return b.b.Commit(pebble.NoSync)
}

// Sync makes every committed write durable (the write-ahead log's fsync).
func (s *Snapshot) Sync() error { return s.db.LogData(nil, pebble.Sync) }

// StartPass forgets where an earlier pass saw keys: a new pass (not a
// resumption) starts.
func (s *Snapshot) StartPass() error {
	b := s.db.NewBatch()
	defer b.Close()
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], s.pass+1)
	if err := errors.Join(b.DeleteRange([]byte{prefixSeen}, []byte{prefixSeen + 1}, nil), b.Set([]byte(keyPass), v[:], nil)); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.pass++
	return nil
}

// ForgetSeenIn removes the pass's marks of the rows of one split (its
// hash), and says how many: a split read again from its start, because
// its input changed, sees its keys at other rows, which must not pass
// for duplicates. It walks every mark, which only a changed input costs.
func (s *Snapshot) ForgetSeenIn(split uint64) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSeen}, UpperBound: []byte{prefixSeen + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b, n := s.db.NewBatch(), 0
	defer func() { b.Close() }()
	for ok := it.First(); ok; ok = it.Next() {
		if ref, ok := decodeRowRef(it.Value()); !ok || ref.Split != split {
			continue
		}
		if err := b.Delete(it.Key(), nil); err != nil { // copies the key
			return n, err
		}
		if n++; b.Count() >= 1<<16 { // a bounded batch, however many rows the split had
			if err := b.Commit(pebble.NoSync); err != nil {
				return n, err
			}
			b.Close()
			b = s.db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	return n, b.Commit(pebble.Sync)
}

// Removed calls fn with every key sent before and not seen by this pass,
// and the content hash it was sent with (valid during the call), in key
// order; seen, when not nil, says what the pass saw instead of its
// marks (a preview, which writes none).
func (s *Snapshot) Removed(seenFn func(key []byte) bool, fn func(key, old []byte) error) error {
	sent, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSent}, UpperBound: []byte{prefixSent + 1}})
	if err != nil {
		return err
	}
	defer sent.Close()
	seen, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSeen}, UpperBound: []byte{prefixSeen + 1}})
	if err != nil {
		return err
	}
	defer seen.Close()
	more := seen.First()
	for ok := sent.First(); ok; ok = sent.Next() {
		k := sent.Key()[1:]
		for more && bytes.Compare(seen.Key()[1:], k) < 0 {
			more = seen.Next()
		}
		if seenFn != nil && seenFn(k) || seenFn == nil && more && bytes.Equal(seen.Key()[1:], k) {
			continue
		}
		v := sent.Value()
		if len(v) < len(Hash{}) {
			return fmt.Errorf("sync snapshot %s: a sent entry of %d bytes", s.path, len(v))
		}
		if err := fn(k, v[:len(Hash{})]); err != nil {
			return err
		}
	}
	if err := sent.Error(); err != nil {
		return err
	}
	return seen.Error()
}

// Keys counts the keys sent (a walk of the snapshot: for status).
func (s *Snapshot) Keys() (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSent}, UpperBound: []byte{prefixSent + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Error()
}

// SnapshotStore keeps a copy of the sync snapshot beside a remote
// checkpoint, so a run on another machine (a CronJob's next pod) starts
// from it.
type SnapshotStore interface {
	PutSnapshotFile(ctx context.Context, name, path string) error
	GetSnapshotFile(ctx context.Context, name, path string) error
	SnapshotLocation() string
	// PruneSnapshotFiles deletes the copy's files that keep refuses.
	PruneSnapshotFiles(ctx context.Context, keep func(name string) bool) error
}

// SnapshotCopy lists the objects of one copy of the snapshot, as the
// checkpoint that counts its rows records it.
type SnapshotCopy struct {
	Gen   int      `json:"gen"`
	Files []string `json:"files"`
}

// Copy writes a consistent copy of the snapshot (a Pebble checkpoint, its
// WAL flushed) to store. Table files are immutable and their names never
// reused, so one copied before (in have) is not written again; the
// others (MANIFEST, OPTIONS, ...) change, and go under the copy's
// generation, so the objects an older checkpoint lists stay as they were.
func (s *Snapshot) Copy(ctx context.Context, store SnapshotStore, gen int, have map[string]bool) (*SnapshotCopy, error) {
	tmp := s.path + ".copy"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := s.db.Checkpoint(tmp, pebble.WithFlushedWAL()); err != nil {
		return nil, fmt.Errorf("copying the sync snapshot: %w", err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil, err
	}
	out := &SnapshotCopy{Gen: gen}
	for _, e := range entries {
		name := e.Name()
		object := name
		if !strings.HasSuffix(name, ".sst") {
			object = fmt.Sprintf("gen-%06d/%s", gen, name)
		}
		if !have[object] {
			if err := store.PutSnapshotFile(ctx, object, filepath.Join(tmp, name)); err != nil {
				return nil, err
			}
			if strings.HasSuffix(name, ".sst") {
				have[object] = true
			}
		}
		out.Files = append(out.Files, object)
	}
	if err := os.WriteFile(s.path+".copy-gen", []byte(strconv.Itoa(gen)), 0o644); err != nil {
		return nil, err
	}
	return out, nil
}

// LocalCopyGen is the generation of the copy the local snapshot in dir
// was last copied as (-1: none): when it is not the one the checkpoint
// lists, another machine ran since, and the local snapshot is stale.
func LocalCopyGen(dir string) int {
	b, err := os.ReadFile(dir + ".copy-gen")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// FetchSnapshot replaces the snapshot in dir with the copy c in store.
func FetchSnapshot(ctx context.Context, store SnapshotStore, dir string, c *SnapshotCopy) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, object := range c.Files {
		if err := store.GetSnapshotFile(ctx, object, filepath.Join(dir, path.Base(object))); err != nil {
			return fmt.Errorf("reading the sync snapshot's copy in %s: %w", store.SnapshotLocation(), err)
		}
	}
	return os.WriteFile(dir+".copy-gen", []byte(strconv.Itoa(c.Gen)), 0o644)
}
