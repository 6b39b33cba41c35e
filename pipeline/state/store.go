package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Store loads and saves one pipeline shard's checkpoint. Its calls take
// the context that may cut them short: a second Ctrl-C ends a hung PUT.
type Store interface {
	// Load returns nil, nil when there is no checkpoint yet.
	Load(ctx context.Context) (*Checkpoint, error)
	Save(ctx context.Context, c *Checkpoint) error
	// Location names where it is kept, for messages ("" keeps nothing).
	Location() string
}

// ErrConflict is returned by a Store whose checkpoint another run wrote
// since this one read it: two runs of one pipeline and shard. Unlike other
// save failures it stops a run at once.
var ErrConflict = errors.New("checkpoint written by another run")

// Open opens the store a `state:` value names: a local directory, or
// s3://bucket/prefix?options.
func Open(ctx context.Context, state, name string, shard, shards int) (Store, error) {
	scheme, _, ok := strings.Cut(state, "://")
	switch {
	case !ok || len(scheme) < 2: // C:\ style paths stay local
		return NewDirStore(state, name, shard, shards), nil
	case scheme == "s3":
		return OpenS3(ctx, state, name, shard, shards)
	}
	return nil, fmt.Errorf("state %q: no checkpoint store for %s:// (a local directory, or s3://bucket/prefix)", state, scheme)
}

// Remote says whether a `state:` value names a store off this machine.
func Remote(state string) bool {
	scheme, _, ok := strings.Cut(state, "://")
	return ok && len(scheme) >= 2
}

// CheckpointFile is the file name of a shard's checkpoint, the same in
// every store.
func CheckpointFile(shard, shards int) string {
	if shards > 1 {
		return fmt.Sprintf("checkpoint-shard-%d-of-%d.json", shard, shards)
	}
	return "checkpoint.json"
}

// Discard is the Store of a run that keeps nothing (a preview): it loads
// no checkpoint and saves none.
type Discard struct{}

func (Discard) Load(context.Context) (*Checkpoint, error) { return nil, nil }
func (Discard) Save(context.Context, *Checkpoint) error   { return nil }
func (Discard) Location() string                          { return "" }
