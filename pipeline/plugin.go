package pipeline

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"

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

// Sink delivers batches. Open starts it (its goroutines, its
// connections): constructors start nothing, so a pipeline that fails to
// build, or is only validated, leaves nothing running. ctx is the run's:
// once it is canceled the run is stopping (or failed elsewhere), and what
// the sink then gives up on, its retries spent or Close's context ended,
// is abandoned rather than failed: its batches are acked with an error
// wrapping ErrStopped, their rows unacknowledged, to be sent on resume.
//
// Write takes ownership of b (its record included), even when it returns
// an error, and may return before delivery; it blocks when the sink is
// full, which is how readers are slowed down. The sink reports what became
// of b's rows through b (Delivered, DeadLetter) and calls b.Ack exactly
// once. Close delivers what is in flight until ctx ends, waits for its
// acks and returns the first permanent error; it may be called without
// Open. A panic in Write stops the run with a *PanicError; the engine
// leaves b alone then, since the sink may own it. A sink that keeps state
// across writes recovers its own panics (Safely) to put that state right,
// as the message encoder does.
type Sink interface {
	Open(ctx context.Context) error
	Write(ctx context.Context, b *Batch) error
	Close(ctx context.Context) error
}

// StatsSink is implemented by sinks that count what they did (requests,
// retries) for the report.
type StatsSink interface {
	Stats() map[string]int64
}

// DestinationSink is implemented by sinks that can say where rows went
// (a URL, a file), for the report.
type DestinationSink interface {
	Destination() string
}

// StateBag is a source's own small state, stored in the checkpoint with the
// split offsets (a snapshot time, a query job id, a cursor value). Set
// values are persisted with the next checkpoint, or at once by Save;
// commit-time values (such as a cursor high-water mark) should only be set
// for rows already acknowledged.
type StateBag interface {
	Get(key string) (string, bool)
	Set(key, value string)
	// Save persists what is set now: a source that starts something
	// billable (a query job) saves its id before it waits on it, so an
	// interrupted run does not start it again.
	Save(ctx context.Context) error
}

// Env is what a plugin constructor gets besides its own config.
type Env struct {
	Name    string // the pipeline's name: part of message ids and state keys
	Version string // backfill's version
	Alloc   memory.Allocator
	Logger  *slog.Logger
	State   StateBag
	// Resumed is true when the run continues saved progress; false for a
	// new or --fresh run (a file sink starts its output over then).
	Resumed bool
	// Shard of Shards is this worker's part of the run (--shard i/N): a
	// sink divides a workspace-wide rate limit by Shards, and names local
	// files per shard (ShardPath).
	Shard, Shards int
}

// MemoryState is a StateBag held in memory, safe for concurrent use: the
// engine's (persisted with each checkpoint), validate's, and tests'.
type MemoryState struct {
	mu     sync.Mutex
	m      map[string]string
	onSave func(context.Context) error
}

// NewMemoryState returns a StateBag starting from initial (which it then
// owns; nil for empty). onSave, when not nil, is what Save does.
func NewMemoryState(initial map[string]string, onSave func(context.Context) error) *MemoryState {
	if initial == nil {
		initial = map[string]string{}
	}
	return &MemoryState{m: initial, onSave: onSave}
}

func (s *MemoryState) Get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *MemoryState) Set(k, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
}

// Save runs the onSave given to NewMemoryState, if any.
func (s *MemoryState) Save(ctx context.Context) error {
	if s.onSave == nil {
		return nil
	}
	return s.onSave(ctx)
}

// Copy returns the values set so far.
func (s *MemoryState) Copy() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// ShardOf says which of n shards a split belongs to: a stable hash of its
// ID, so every worker of a sharded run agrees without talking.
func ShardOf(splitID string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(splitID))
	return int(h.Sum32() % uint32(n))
}

// ShardPath is path for shard i of n: path itself without sharding, else
// path with -shard-I-of-N before its extension, named like the shard's
// checkpoint. Shards that share a directory must not append to one local
// file, nor truncate each other's when one of them starts afresh.
func ShardPath(path string, shard, shards int) string {
	if shards <= 1 {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-shard-%d-of-%d%s", strings.TrimSuffix(path, ext), shard, shards, ext)
}
