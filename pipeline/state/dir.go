package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

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

func (s *DirStore) Load(context.Context) (*Checkpoint, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return Decode(data, s.Path)
}

func (s *DirStore) Save(_ context.Context, c *Checkpoint) error {
	data, err := Encode(c)
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
