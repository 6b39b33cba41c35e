package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Checkpoint is a run's durable progress: per split, how many leading rows
// are acknowledged and whether the split is finished, plus the source's own
// small state. It only ever moves forward.
type Checkpoint struct {
	Version     int                   `json:"version"`
	Name        string                `json:"name"`
	StartedAt   time.Time             `json:"started_at"`
	UpdatedAt   time.Time             `json:"updated_at"`
	Splits      map[string]SplitState `json:"splits"`
	SourceState map[string]string     `json:"source_state,omitempty"`
	Stats       map[string]int64      `json:"stats,omitempty"`
	// DeadLetterParts counts the parts of this run's dead letters a
	// DeadLetterStore holds.
	DeadLetterParts int `json:"dead_letter_parts,omitempty"`
}

// SplitState is one split's progress.
type SplitState struct {
	Offset  int64  `json:"offset"` // rows [0, Offset) are acknowledged
	Done    bool   `json:"done,omitempty"`
	Version string `json:"version,omitempty"` // the Split.Version the rows were read from
}

func newCheckpoint(name string, now time.Time) *Checkpoint {
	return &Checkpoint{Version: 1, Name: name, StartedAt: now, Splits: map[string]SplitState{}, SourceState: map[string]string{}}
}

// CheckpointStore loads and saves one run's checkpoint.
type CheckpointStore interface {
	// Load returns nil, nil when there is no checkpoint yet.
	Load() (*Checkpoint, error)
	Save(*Checkpoint) error
	// Location names where it is kept, for messages.
	Location() string
}

// DirStore keeps checkpoints as JSON files in a local directory, written
// atomically (temp file, fsync, rename, fsync of the directory) so a crash
// leaves either the old or the new checkpoint, never a torn one.
type DirStore struct {
	Path string // the checkpoint file
}

// NewDirStore keeps the checkpoint of pipeline name (and shard) under dir.
func NewDirStore(dir, name string, shard, shards int) *DirStore {
	return &DirStore{Path: filepath.Join(dir, name, CheckpointFile(shard, shards))}
}

func (s *DirStore) Location() string { return s.Path }

func (s *DirStore) Load() (*Checkpoint, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return DecodeCheckpoint(data, s.Path)
}

func (s *DirStore) Save(c *Checkpoint) error {
	data, err := EncodeCheckpoint(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.Path, data)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing checkpoint %s: %w", path, werr)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not every filesystem supports it
		d.Close()
	}
	return nil
}

// StoreOpener opens the checkpoint store of a `state:` URL (s3://bucket/prefix)
// for one pipeline and shard.
type StoreOpener func(ctx context.Context, url, name string, shard, shards int) (CheckpointStore, error)

var (
	storeMu      sync.RWMutex
	storeOpeners = map[string]StoreOpener{}
)

// RegisterCheckpointStore makes `state: SCHEME://...` use fn. A duplicate
// scheme panics.
func RegisterCheckpointStore(scheme string, fn StoreOpener) {
	storeMu.Lock()
	defer storeMu.Unlock()
	if _, dup := storeOpeners[scheme]; dup {
		panic("pipeline: checkpoint store " + scheme + " registered twice")
	}
	storeOpeners[scheme] = fn
}

// OpenCheckpointStore opens the store a `state:` value names: a local
// directory, or a URL whose scheme a package registered.
func OpenCheckpointStore(ctx context.Context, state, name string, shard, shards int) (CheckpointStore, error) {
	scheme, _, ok := strings.Cut(state, "://")
	if !ok || len(scheme) < 2 { // C:\ style paths stay local
		return NewDirStore(state, name, shard, shards), nil
	}
	storeMu.RLock()
	fn := storeOpeners[scheme]
	storeMu.RUnlock()
	if fn == nil {
		return nil, fmt.Errorf("state %q: no checkpoint store for %s:// (known: a local directory%s)", state, scheme, knownSchemes())
	}
	return fn(ctx, state, name, shard, shards)
}

func knownSchemes() string {
	storeMu.RLock()
	defer storeMu.RUnlock()
	s := ""
	for k := range storeOpeners {
		s += ", " + k + "://"
	}
	return s
}

// CheckpointFile is the file name of a shard's checkpoint, the same in
// every store.
func CheckpointFile(shard, shards int) string {
	if shards > 1 {
		return fmt.Sprintf("checkpoint-shard-%d-of-%d.json", shard, shards)
	}
	return "checkpoint.json"
}

// EncodeCheckpoint and DecodeCheckpoint are the one wire form of a
// checkpoint, shared by every store.
func EncodeCheckpoint(c *Checkpoint) ([]byte, error) {
	head := *c
	head.Splits = nil
	hb, err := json.MarshalIndent(&head, "", " ")
	if err != nil {
		return nil, err
	}
	// The splits, often 100k+ of them, are written here, one per line:
	// through encoding/json (reflection, then indentation) a 100k-split
	// checkpoint took ~0.35 s and 17 MB at every save.
	ids := make([]string, 0, len(c.Splits))
	size := len(hb) + 16
	for id, st := range c.Splits {
		ids = append(ids, id)
		size += len(id) + len(st.Version) + 64
	}
	sort.Strings(ids)
	// head holds "splits": null exactly once: every other "splits" in it
	// sits inside a string, where its quotes are escaped.
	at := bytes.Index(hb, []byte(`"splits": null`))
	if at < 0 {
		return nil, errors.New("checkpoint: no splits field to fill")
	}
	sp := make([]byte, 0, size)
	sp = append(sp, hb[:at]...)
	sp = append(sp, `"splits": {`...)
	for i, id := range ids {
		st := c.Splits[id]
		if i > 0 {
			sp = append(sp, ',')
		}
		sp = append(sp, "\n  "...)
		sp = appendJSONString(sp, id)
		sp = append(sp, `: {"offset": `...)
		sp = strconv.AppendInt(sp, st.Offset, 10)
		if st.Done {
			sp = append(sp, `, "done": true`...)
		}
		if st.Version != "" {
			sp = append(sp, `, "version": `...)
			sp = appendJSONString(sp, st.Version)
		}
		sp = append(sp, '}')
	}
	if len(ids) > 0 {
		sp = append(sp, "\n "...)
	}
	sp = append(sp, '}')
	return append(sp, hb[at+len(`"splits": null`):]...), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s) // rare: escapes, or non-ASCII to check
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// DecodeCheckpoint reads a checkpoint written by EncodeCheckpoint; where
// names the store's location in errors.
func DecodeCheckpoint(data []byte, where string) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is corrupt (%v): move it away to start over, or run with --fresh", where, err)
	}
	if c.Splits == nil {
		c.Splits = map[string]SplitState{}
	}
	if c.SourceState == nil {
		c.SourceState = map[string]string{}
	}
	return &c, nil
}
