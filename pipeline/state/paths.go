package state

import (
	"path/filepath"

	"github.com/backfillhq/backfill/pipeline"
)

// Paths names the local files of one pipeline shard.
type Paths struct {
	State      string // the `state:` value: a directory or a URL
	Name       string // the pipeline's name
	DeadLetter string // the `dead_letter:` override, or ""
	Shard      int
	Shards     int // 0 or 1: not sharded
}

// DeadLetters is where the shard's rejected rows go. With a remote state
// store the file is written locally, under .backfill/NAME, and copied to
// the store (DeadLetterStore). Each shard of a sharded run has its own
// file (ShardPath).
func (p Paths) DeadLetters() string {
	path := p.DeadLetter
	switch {
	case path != "":
	case Remote(p.State):
		path = filepath.Join(".backfill", p.Name, "dead-letters.ndjson")
	default:
		path = filepath.Join(p.State, p.Name, "dead-letters.ndjson")
	}
	return pipeline.ShardPath(path, p.Shard, p.Shards)
}

// Lock is the file whose lock a run of the shard holds for its whole
// length (LockFile), so a second run of the pipeline, or of the shard,
// cannot start while one is going: a cron job firing again before the last
// run ended. A local state is locked beside its checkpoint; a remote one
// (S3) beside the local dead-letter file: its conditional writes fence off
// a run on another machine, but only at that run's first save.
func (p Paths) Lock() string {
	if !Remote(p.State) {
		return filepath.Join(p.State, p.Name, CheckpointFile(p.Shard, p.Shards)) + ".lock"
	}
	return p.DeadLetters() + ".lock"
}
