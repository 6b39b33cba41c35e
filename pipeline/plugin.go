package pipeline

import (
	"context"
	"log/slog"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// Split is the unit of reading, resuming and sharding: one file, one S3
// object, one BigQuery read stream. Its ID is stable across runs.
type Split struct {
	ID    string
	Rows  int64 // rows in the split, or -1 when unknown until read
	Bytes int64 // size in bytes, or -1
	// Version identifies the split's content (an S3 ETag, a file's size),
	// or is empty when the source cannot tell. Saved progress is only
	// valid for the version it was made on: a run reads a split whose
	// version changed again from its start instead of skipping rows it
	// never read.
	Version string
	// Info is the source's own description of the split (an object key, a
	// stream name); the runner passes it back to Open untouched.
	Info any
}

// RowEstimator is a Source that can estimate how many rows its splits hold
// before they are read (BigQuery's read session can); valid after Splits,
// 0 when it cannot. The progress total uses it when splits do not count
// their rows.
type RowEstimator interface {
	EstimatedRows() int64
}

// Columns names the input columns a reader must produce. All means every
// column the data has (no projection).
type Columns struct {
	All   bool
	Names []string
}

// AllColumns is the projection that keeps everything.
var AllColumns = Columns{All: true}

// ReadOptions tell a source how to open a split.
type ReadOptions struct {
	// Offset is the number of leading rows already acknowledged: the reader
	// starts at row Offset (skipping whole row groups or streams where it
	// can) and numbers rows from there.
	Offset int64
	// Columns is the projection the pipeline needs.
	Columns Columns
	// BatchRows is the preferred number of rows per batch.
	BatchRows int
}

// Source lists splits and opens each as a stream of batches.
type Source interface {
	Splits(ctx context.Context) ([]Split, error)
	Open(ctx context.Context, split Split, opts ReadOptions) (RecordReader, error)
}

// ColumnSetter is implemented by sources that push the projection to the
// server when they plan their splits (a BigQuery read session): the runner
// calls SetColumns before Splits.
type ColumnSetter interface {
	SetColumns(Columns)
}

// Finisher is implemented by sources that commit something once every
// split of a run is delivered (an incremental cursor, a finished session).
// The runner calls Finish after the last acknowledgement and before the
// final checkpoint; it is not called when any split failed or the run was
// stopped.
type Finisher interface {
	Finish(ctx context.Context) error
}

// Sources holding connections implement io.Closer; the runner closes them
// at the end of the run.

// RecordReader streams one split. Next returns io.EOF after the last batch.
// Batches are contiguous: each one's Start is the previous one's End, the
// first one's Start is ReadOptions.Offset. Rows that cannot be parsed are
// returned as Rejects of the batch they fall in, not as errors; Next
// returns an error only when reading cannot go on.
type RecordReader interface {
	Next(ctx context.Context) (*Batch, error)
	Close() error
}

// Transform rewrites a batch in place: it may replace the record, drop rows
// (Batch.Drop) or reject them with a reason. It must not Ack. A string
// column may come dictionary-encoded (the Parquet reader gives repetitive
// columns so): a transform that reads values calls Batch.DecodeDictionaries
// for the columns it reads.
type Transform interface {
	Apply(ctx context.Context, b *Batch) error
}

// Projector is implemented by transforms that know which input columns they
// read. Given the columns their output must carry (out), Requires returns
// the columns their input must carry. A transform that is not a Projector
// passes columns through and needs whatever its output needs.
type Projector interface {
	Requires(out Columns) Columns
}

// Sink delivers batches. Write takes ownership of b (its record included),
// even when it returns an error, and may return before delivery; it blocks when the sink is full, which is
// how readers are slowed down. The sink calls b.Ack exactly once, when every
// row still in b.Record is durable at the destination or in the dead-letter
// file. Close delivers what is in flight, waits for its acks and returns
// the first permanent error. A panic in Write stops the run with a
// *PanicError; the runner leaves b alone then, since the sink may own it.
// A sink that keeps state across writes recovers its own panics (Safely)
// to put that state right, as the message encoder does.
type Sink interface {
	Write(ctx context.Context, b *Batch) error
	Close(ctx context.Context) error
}

// DeadLetters receives rows that will not be delivered. Write must not
// return before the row is durable enough to be acknowledged (the runner
// syncs the file before each checkpoint). It returns ErrTooManyRejects once
// the run's max_rejects is exceeded.
type DeadLetters interface {
	Write(ctx context.Context, split string, r Reject) error
}

// StateBag is a source's own small state, stored in the checkpoint with the
// split offsets (a snapshot time, a query job id, a cursor value). Values
// must be JSON-encodable. Set values are persisted with the next
// checkpoint; Commit-time values (such as a cursor high-water mark) should
// only be set for rows already acknowledged.
type StateBag interface {
	Get(key string) (string, bool)
	Set(key, value string)
}

// Env is what a plugin constructor gets besides its own config.
type Env struct {
	Name        string // the pipeline's name: part of message ids and state keys
	Version     string // backfill's version
	Alloc       memory.Allocator
	Logger      *slog.Logger
	DeadLetters DeadLetters
	State       StateBag
	// Offline is set by `backfill validate`: the plugin is built only to
	// check its config and is closed unused. It must not create, truncate
	// or contact anything.
	Offline bool
	// Resumed is true when the run continues saved progress; false for a
	// new or --fresh run (a file sink starts its output over then).
	Resumed bool
	// Shard of Shards is this worker's part of the run (--shard i/N): a
	// sink divides a workspace-wide rate limit by Shards, and names local
	// files per shard (ShardPath).
	Shard, Shards int
}
