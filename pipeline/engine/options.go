package engine

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

// Options change how a pipeline runs. The zero value runs it as the CLI's
// `run` does.
type Options struct {
	Registry *config.Registry // default: config.Default
	Logger   *slog.Logger
	Alloc    memory.Allocator
	Version  string

	Fresh  bool // ignore and replace saved progress
	Shard  int  // this worker's shard, 0-based
	Shards int  // number of shards; 0 or 1 = no sharding

	// Abort, when canceled, abandons in-flight delivery and cuts a hung
	// checkpoint save at once (a second Ctrl-C). Until then a stopped run
	// delivers what it has in flight for at most Grace.
	Abort context.Context
	Grace time.Duration

	// LedgerRows is how many rows a delivery ledger part holds at most
	// (0: state.DefaultLedgerRows); a part is also cut at each checkpoint.
	LedgerRows int

	// Limit, when above 0, reads at most that many rows (a preview).
	Limit int64
	// Sink replaces the configured sink (a preview's).
	Sink pipeline.Sink
	// Store replaces the checkpoint store the config names, and
	// DeadLetters its dead-letter file: state.Discard and
	// state.DiscardDeadLetters keep nothing (a preview).
	Store       state.Store
	DeadLetters state.DeadLetters

	// Progress receives the live counters every ProgressEvery (a bar, a
	// log line, the metrics); nil for none.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// OnReject sees every rejected row (preview prints them).
	OnReject func(split string, r pipeline.Reject)
	// OnSplits, when set, is called with the splits selected for this run.
	OnSplits func(selected, skipped []pipeline.Split)
}

func (o *Options) defaults() {
	if o.Registry == nil {
		o.Registry = config.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Alloc == nil {
		o.Alloc = memory.DefaultAllocator
	}
	if o.Grace == 0 {
		o.Grace = time.Minute
	}
	if o.Abort == nil {
		o.Abort = context.Background()
	}
	if o.Shards <= 1 {
		o.Shard, o.Shards = 0, 1
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
}
