package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble"
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
}

const (
	prefixSent = 'k'
	prefixSeen = 'r'
)

// SnapshotDir is the snapshot of a pipeline shard under a local state
// directory.
func (p Paths) SnapshotDir() string {
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
		// Bounded memory whatever the table's size: 32 MB of cached
		// blocks, two 16 MB memtables.
		Cache:        pebble.NewCache(32 << 20),
		MemTableSize: 16 << 20,
		ReadOnly:     readOnly,
		Logger:       quietLogger{},
	}
	defer opts.Cache.Unref()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the sync snapshot %s: %w", dir, err)
	}
	return &Snapshot{db: db, path: dir}, nil
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

// Sent returns the content hash of key's last acknowledged message.
func (s *Snapshot) Sent(key []byte, buf []byte) (Hash, bool, error) {
	var h Hash
	if s == nil {
		return h, false, nil
	}
	v, closer, err := s.db.Get(prefixed(prefixSent, key, buf))
	if errors.Is(err, pebble.ErrNotFound) {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	copy(h[:], v)
	closer.Close()
	return h, true, nil
}

// Seen returns where the pass saw key, if it did.
func (s *Snapshot) Seen(key []byte, buf []byte) (RowRef, bool, error) {
	v, closer, err := s.db.Get(prefixed(prefixSeen, key, buf))
	if errors.Is(err, pebble.ErrNotFound) {
		return RowRef{}, false, nil
	}
	if err != nil {
		return RowRef{}, false, err
	}
	defer closer.Close()
	if len(v) != 16 {
		return RowRef{}, false, fmt.Errorf("sync snapshot %s: a seen entry of %d bytes", s.path, len(v))
	}
	return RowRef{Split: binary.BigEndian.Uint64(v), Row: int64(binary.BigEndian.Uint64(v[8:]))}, true, nil
}

// SnapshotBatch gathers writes, applied at once by Commit.
type SnapshotBatch struct {
	b   *pebble.Batch
	buf []byte
}

// NewBatch starts a batch of writes.
func (s *Snapshot) NewBatch() *SnapshotBatch { return &SnapshotBatch{b: s.db.NewBatch()} }

// MarkSeen records that the pass saw key at ref.
func (b *SnapshotBatch) MarkSeen(key []byte, ref RowRef) {
	var v [16]byte
	binary.BigEndian.PutUint64(v[:], ref.Split)
	binary.BigEndian.PutUint64(v[8:], uint64(ref.Row))
	b.buf = prefixed(prefixSeen, key, b.buf)
	_ = b.b.Set(b.buf, v[:], nil) // a batch's Set fails only once committed
}

// MarkSent records that key's message with content h is acknowledged.
func (b *SnapshotBatch) MarkSent(key []byte, h Hash) {
	b.buf = prefixed(prefixSent, key, b.buf)
	_ = b.b.Set(b.buf, h[:], nil)
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
	return s.db.DeleteRange([]byte{prefixSeen}, []byte{prefixSeen + 1}, pebble.Sync)
}

// Removed calls fn with every key sent before and not seen by this pass,
// in key order; seen, when not nil, says what the pass saw instead of its
// marks (a preview, which writes none).
func (s *Snapshot) Removed(seenFn func(key []byte) bool, fn func(key []byte) error) error {
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
		if err := fn(k); err != nil {
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
