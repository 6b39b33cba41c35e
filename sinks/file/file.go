// Package file is the `file` sink: it writes each message as one NDJSON
// line exactly as the segment sink would send it, except the sentAt the
// segment sink stamps on each attempt (a file is not sent: a time of
// writing would differ on every run, and, read back as data, would be
// kept as an archived sentAt), so a pipeline can be dry-run and its output
// diffed. A sentAt the data holds is written, as the segment sink sends it.
package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/backfillhq/backfill/internal/lines"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sinks/message"
)

// Plugins declares the file sink.
func Plugins() []config.Plugin {
	return []config.Plugin{config.SinkPlugin("file", spec(), NewFromConf)}
}

func init() { config.Default.Register(Plugins()...) }

// Modes of opening an existing file.
const (
	ModeAuto     = "auto"
	ModeAppend   = "append"
	ModeTruncate = "truncate"
)

// spec declares the sink's config: the one place its fields and defaults
// are written.
func spec() *config.Spec {
	return config.NewSpec("write messages as NDJSON to a local file, exactly as they would be sent",
		config.String("path", "the NDJSON file to write; its directory is created. Each shard of a sharded run writes its own, with -shard-I-of-N before the extension").Example("out/messages.ndjson"),
		config.Duration("sync_interval", "how often written lines are fsynced and their rows acknowledged; 0 syncs after every batch").
			Default(time.Second).Check(config.NonNegativeDuration),
		config.String("mode", "what happens to an existing file: auto starts it over on a new or --fresh run and "+
			"appends when resuming (the rows already acknowledged are in it); append and truncate always do that").
			Default(ModeAuto).Enum(ModeAuto, ModeAppend, ModeTruncate),
		config.Int("max_message_bytes", "reject messages larger than this, as the segment sink does").
			Default(message.DefaultMaxMessageBytes).Check(config.Positive),
		config.Strings("id_columns", "columns identifying a row, for derived message ids (default: split and row offset); "+
			"use the segment sink's value to diff against it").Optional(),
		message.LibraryField(),
	).WithDescription("A dry run you can diff: the messages the segment sink would send, one per line, encoded and "+
		"checked the same way, without the sentAt the segment sink stamps on every attempt (the time of sending; a sentAt "+
		"in the data is written as it would be sent). A batch is acknowledged once its lines are written and fsynced (syncs are batched every "+
		"sync_interval). Rows the encoder rejects go to the dead-letter file. After a crash, lines written but not "+
		"acknowledged are written again on resume, with the same messageIds; an incomplete last line is cut off "+
		"when the file is reopened in append mode.").
		WithExample("dry run", "path: out/orders.ndjson\n")
}

// Options configure a Sink.
type Options struct {
	Path         string
	SyncInterval time.Duration // 0: fsync after every batch
	Truncate     bool          // start the file over instead of appending
	Message      message.Options
}

// NewFromConf builds the sink from its config (the registry's constructor).
func NewFromConf(conf *config.Conf, env *pipeline.Env) (pipeline.Sink, error) {
	if conf.String("path") == "" {
		return nil, conf.Errorf("path", "path must not be empty")
	}
	opts := Options{
		Path:         pipeline.ShardPath(conf.String("path"), env.Shard, env.Shards),
		SyncInterval: conf.Duration("sync_interval"),
		Truncate:     conf.String("mode") == ModeTruncate || (conf.String("mode") == ModeAuto && !env.Resumed),
		Message: message.Options{
			Pipeline:        env.Name,
			Version:         env.Version,
			MaxMessageBytes: conf.Int("max_message_bytes"),
			IDColumns:       conf.Strings("id_columns"),
			OwnLibrary:      conf.String("library") == message.LibraryBackfill,
		},
	}
	s, err := New(opts, env)
	if err != nil {
		return nil, conf.Errorf("path", "%v", err)
	}
	return s, nil
}

// Sink writes messages to a file. Write is safe for concurrent use.
type Sink struct {
	opts Options
	// idle workers (an encoder and a line buffer each), one per concurrent
	// Write at most; a plain list, not a sync.Pool, so the megabyte-sized
	// buffers survive garbage collections.
	idleMu sync.Mutex
	idle   []*worker

	mu      sync.Mutex // guards the fields below and the file's writes
	f       *os.File
	pending []written // written, not yet fsynced
	err     error     // first permanent error
	closed  bool

	syncMu sync.Mutex // one fsync-and-ack round at a time, acks in order
	spare  []written

	stop chan struct{}
	done chan struct{}
}

// written is a batch whose lines are in the file: lines of its rows. A
// batch that wants receipts (a delivery ledger) keeps which rows they are
// and their messageIds, to report at the fsync.
type written struct {
	b     *pipeline.Batch
	lines int
	rows  []int64
	ids   [][]byte
}

type worker struct {
	enc   *message.Encoder
	lines []byte
}

// New makes the sink; Open opens (or creates) the file.
func New(opts Options, env *pipeline.Env) (*Sink, error) {
	if opts.Message.Pipeline == "" && env != nil {
		opts.Message.Pipeline = env.Name
	}
	if opts.Path == "" {
		return nil, errors.New("file sink: no path")
	}
	return &Sink{opts: opts, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Open opens (or creates) the file and starts the periodic fsync.
func (s *Sink) Open(context.Context) error {
	f, err := lines.OpenAppend(s.opts.Path, s.opts.Truncate)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
	if s.opts.SyncInterval > 0 {
		go s.syncLoop()
	} else {
		close(s.done)
	}
	return nil
}

var errClosed = errors.New("file sink: write after Close")

// Destination is the output file, for the run's summary.
func (s *Sink) Destination() string { return s.opts.Path }

// Write encodes b, sets its rejected rows aside and appends its lines. b
// is acknowledged after the next fsync: its rows are delivered then.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	fail := func(err error) error {
		b.Release()
		b.Ack(err)
		return err
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := s.broken(); err != nil {
		return fail(err)
	}
	w := s.getWorker()
	defer s.putWorker(w)
	w.lines = w.lines[:0]
	n := 0
	var rc receipts
	if b.WantsReceipts() {
		rc.rows = make([]int64, 0, b.NumRows())
	}
	rejects, err := w.enc.Encode(b, func(row int, msg []byte) error {
		if rc.rows != nil {
			rc.add(b.Row(row), message.IDAt(msg, w.enc.MessageIDOffset()))
		}
		w.lines = append(w.lines, msg...)
		w.lines = append(w.lines, '\n')
		n++
		return nil
	})
	b.Release() // the lines are all we need from the record
	if err != nil {
		return fail(fmt.Errorf("file sink: batch %s[%d:%d]: %w", b.Split, b.Start, b.End, err))
	}
	for _, r := range rejects {
		if err := b.DeadLetter(ctx, r); err != nil {
			return fail(err)
		}
	}
	s.mu.Lock()
	switch {
	case s.closed || s.f == nil:
		err = errClosed
	case s.err != nil:
		err = s.err
	default:
		if _, err = s.f.Write(w.lines); err != nil {
			err = fmt.Errorf("file sink: writing %s: %w", s.opts.Path, err)
			s.err = err
		} else {
			s.pending = append(s.pending, written{b: b, lines: n, rows: rc.rows, ids: rc.slices()})
		}
	}
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if s.opts.SyncInterval == 0 {
		return s.sync()
	}
	return nil
}

// receipts are the row offsets and messageIds of a batch's lines, kept
// only for a batch that wants them.
type receipts struct {
	rows []int64
	ids  []byte  // the messageIds, end to end
	ends []int32 // ids[ends[i-1]:ends[i]] is rows[i]'s
}

func (r *receipts) add(row int64, id []byte) {
	r.rows = append(r.rows, row)
	r.ids = append(r.ids, id...)
	r.ends = append(r.ends, int32(len(r.ids)))
}

// slices cuts ids into one slice per row, once every id is in.
func (r *receipts) slices() [][]byte {
	if r.rows == nil {
		return nil
	}
	out := make([][]byte, len(r.ends))
	start := int32(0)
	for i, end := range r.ends {
		out[i] = r.ids[start:end:end]
		start = end
	}
	return out
}

func (s *Sink) getWorker() *worker {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if n := len(s.idle); n > 0 {
		w := s.idle[n-1]
		s.idle = s.idle[:n-1]
		return w
	}
	return &worker{enc: message.NewEncoder(s.opts.Message)}
}

func (s *Sink) putWorker(w *worker) {
	s.idleMu.Lock()
	s.idle = append(s.idle, w)
	s.idleMu.Unlock()
}

func (s *Sink) broken() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.f == nil {
		return errClosed
	}
	return s.err
}

// sync fsyncs what is written and acks the batches it covers. Writes go
// on meanwhile: a batch is only taken once its lines are in the file.
func (s *Sink) sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	batches := s.pending
	s.pending = s.spare[:0]
	f := s.f
	s.mu.Unlock()
	if len(batches) == 0 {
		s.spare = batches
		return nil
	}
	err := f.Sync()
	if err != nil {
		err = fmt.Errorf("file sink: syncing %s: %w", s.opts.Path, err)
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
	for i, w := range batches {
		switch {
		case err != nil:
		case w.rows != nil:
			w.b.DeliveredRows(0, w.rows, w.ids) // no HTTP status: an fsync
		default:
			w.b.Delivered(w.lines)
		}
		w.b.Ack(err)
		batches[i] = written{}
	}
	s.spare = batches
	return err
}

func (s *Sink) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_ = s.sync() // the error is kept in s.err and returned by Write and Close
		}
	}
}

// Close syncs and acks what is written, closes the file and returns the
// first permanent error. A sink never opened has nothing to close.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.f == nil {
		s.closed = true
		err := s.err
		s.mu.Unlock()
		return err
	}
	s.closed = true
	s.mu.Unlock()
	if s.opts.SyncInterval > 0 {
		close(s.stop)
	}
	<-s.done
	err := s.sync()
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("file sink: closing %s: %w", s.opts.Path, cerr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	return s.err
}
