package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Checkpoint is a run's durable progress: per split, how many leading rows
// are acknowledged and whether the split is finished, plus the source's own
// small state. It only ever moves forward.
type Checkpoint struct {
	Version     int                    `json:"version"`
	Name        string                 `json:"name"`
	StartedAt   time.Time              `json:"started_at"`
	UpdatedAt   time.Time              `json:"updated_at"`
	Splits      map[string]SplitState  `json:"splits"`
	SourceState map[string]string      `json:"source_state,omitempty"`
	Stats       map[string]int64       `json:"stats,omitempty"`
	Extra       map[string]interface{} `json:"-"`
}

// SplitState is one split's progress.
type SplitState struct {
	Offset int64 `json:"offset"` // rows [0, Offset) are acknowledged
	Done   bool  `json:"done,omitempty"`
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
	file := "checkpoint.json"
	if shards > 1 {
		file = fmt.Sprintf("checkpoint-shard-%d-of-%d.json", shard, shards)
	}
	return &DirStore{Path: filepath.Join(dir, name, file)}
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
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is corrupt (%v): move it away to start over, or run with --fresh", s.Path, err)
	}
	if c.Splits == nil {
		c.Splits = map[string]SplitState{}
	}
	if c.SourceState == nil {
		c.SourceState = map[string]string{}
	}
	return &c, nil
}

func (s *DirStore) Save(c *Checkpoint) error {
	data, err := json.MarshalIndent(c, "", " ")
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
