package state

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/apache/arrow/go/v15/parquet"
	"github.com/apache/arrow/go/v15/parquet/compress"
	"github.com/apache/arrow/go/v15/parquet/file"
	"github.com/apache/arrow/go/v15/parquet/pqarrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/internal/s3client"
)

// The delivery ledger (`ledger:`) says, row by row, what became of each
// row a run acknowledged: delivered with which messageId, or rejected at
// which stage. Filtered rows are not in it. Each run of a checkpoint (a
// first or --fresh run and its resumptions), and each shard of it, writes
// its own folder, LEDGER/NAME/RUNID[-shard-I-of-N]/, of Parquet files
// part-000001.parquet, part-000002.parquet, ...: one complete file per
// flush, so a killed run leaves only readable files.

// Fates of a ledger row.
const (
	FateDelivered = "delivered"
	FateRejected  = "rejected"
)

// DefaultLedgerRows is how many rows a ledger part holds at most: rows
// wait in memory (about 70 bytes each) until a checkpoint is saved or this
// many are in, whichever comes first.
const DefaultLedgerRows = 128 << 10

var (
	stringDict = func(idx arrow.DataType) *arrow.DictionaryType {
		return &arrow.DictionaryType{IndexType: idx, ValueType: arrow.BinaryTypes.String}
	}
	// ledgerSchema is a part's Arrow schema. Repeated strings (split,
	// fate, stage) are dictionaries in memory; a Parquet reader sees
	// strings.
	ledgerSchema = arrow.NewSchema([]arrow.Field{
		{Name: "split", Type: stringDict(arrow.PrimitiveTypes.Int32)},
		{Name: "row", Type: arrow.PrimitiveTypes.Int64},
		{Name: "message_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "fate", Type: stringDict(arrow.PrimitiveTypes.Int8)},
		{Name: "stage", Type: stringDict(arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "status", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "acked_at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	}, nil)
	fates = []string{FateDelivered, FateRejected}
)

// LedgerRows gathers one batch's rows for the ledger as the sink reports
// them. The engine appends them to the Ledger once the batch is
// acknowledged, so the ledger holds the rows a checkpoint can count, and
// none of a batch that failed. Safe for concurrent use (a batch's rows go
// out in several requests at once).
type LedgerRows struct {
	mu      sync.Mutex
	row     []int64
	ids     []byte  // the messageIds, end to end
	idEnd   []int32 // ids[idEnd[i-1]:idEnd[i]] is row[i]'s; empty: none
	status  []int32
	at      []int64 // unix milliseconds
	rejects []ledgerReject
}

type ledgerReject struct {
	row    int64
	stage  string
	status int32
	id     string
	at     int64
}

// Deliver records rows delivered (ids[i] the messageId of rows[i]),
// acknowledged at at with HTTP status (0: none).
func (r *LedgerRows) Deliver(status int, rows []int64, ids [][]byte, at time.Time) {
	ms := at.UnixMilli()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.row = append(r.row, rows...)
	r.idEnd = slices.Grow(r.idEnd, len(rows))
	r.status = slices.Grow(r.status, len(rows))
	r.at = slices.Grow(r.at, len(rows))
	if len(ids) > 0 {
		r.ids = slices.Grow(r.ids, len(rows)*len(ids[0]))
	}
	for i := range rows {
		if i < len(ids) {
			r.ids = append(r.ids, ids[i]...)
		}
		r.idEnd = append(r.idEnd, int32(len(r.ids)))
		r.status = append(r.status, int32(status))
		r.at = append(r.at, ms)
	}
}

// Reject records a row rejected at stage, with its HTTP status (0: none)
// and messageId (nil: none, it was rejected before it was encoded).
func (r *LedgerRows) Reject(row int64, stage string, status int, id []byte, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejects = append(r.rejects, ledgerReject{row: row, stage: stage, status: int32(status), id: string(id), at: at.UnixMilli()})
}

// Len is how many rows are gathered.
func (r *LedgerRows) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.row) + len(r.rejects)
}

// Drop removes the rows held says the ledger holds already (a resumed run
// delivering rows an earlier run recorded).
func (r *LedgerRows) Drop(held func(row int64) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, start, kept := 0, int32(0), int32(0)
	for i, row := range r.row {
		end := r.idEnd[i]
		if !held(row) {
			id := r.ids[start:end]
			copy(r.ids[kept:], id)
			kept += int32(len(id))
			r.row[n], r.idEnd[n], r.status[n], r.at[n] = row, kept, r.status[i], r.at[i]
			n++
		}
		start = end
	}
	r.row, r.idEnd, r.status, r.at, r.ids = r.row[:n], r.idEnd[:n], r.status[:n], r.at[:n], r.ids[:kept]
	r.rejects = slices.DeleteFunc(r.rejects, func(j ledgerReject) bool { return held(j.row) })
}

// LedgerOptions say where a run's ledger goes.
type LedgerOptions struct {
	Where string // the `ledger:` value: a directory, or s3://bucket/prefix?options
	Name  string // the pipeline's
	Run   string // the checkpoint's RunID
	Shard int
	// Shards > 1: the shard's own folder, RUN-shard-I-of-N.
	Shards int
	// Parts is how many parts the checkpoint counts (LedgerState.Parts):
	// the next one is Parts+1, and parts numbered above it (written after
	// the checkpoint, their rows read again) are removed.
	Parts int
	Rows  int // rows per part at most; 0: DefaultLedgerRows
	Alloc memory.Allocator
}

// Ledger writes a run's delivery ledger: rows appended (Append) wait in
// Arrow builders until Cut makes them a part, at each checkpoint or when
// Rows are in, and parts are written in order, each a whole Parquet file
// (a local file written aside, fsynced and renamed; an S3 object). Part
// numbers follow cuts, so a part written again after a failure keeps its
// number and the parts a checkpoint counts are 1..the number Cut gave.
type Ledger struct {
	dest  ledgerDest
	limit int
	alloc memory.Allocator

	mu      sync.Mutex
	cur     *ledgerBuilder
	full    []arrow.Record // cut, not yet written, in order: full[0] is part written+1
	cutPart int            // the number of the last part cut

	writeMu sync.Mutex // one writer at a time: parts go in order
	written int        // parts durable
	rows    int64      // rows in them, this run

	wake   chan struct{}
	stop   context.CancelFunc
	doneBg chan struct{}
	closed bool
}

// ledgerDest is where parts go.
type ledgerDest interface {
	// put stores part n whole: write writes its bytes.
	put(ctx context.Context, n int, write func(io.Writer) error) error
	// prune removes parts numbered above n, and what a cut-short write
	// left.
	prune(ctx context.Context, n int) error
	location() string
}

// OpenLedger opens the ledger of a run and removes the parts past those
// its checkpoint counts. It starts a goroutine that writes parts filled
// between checkpoints; Close stops it.
func OpenLedger(ctx context.Context, o LedgerOptions) (*Ledger, error) {
	run := o.Run
	if o.Shards > 1 {
		run = fmt.Sprintf("%s-shard-%d-of-%d", run, o.Shard, o.Shards)
	}
	var dest ledgerDest
	if Remote(o.Where) {
		if !strings.HasPrefix(o.Where, "s3://") {
			return nil, fmt.Errorf("ledger %q: a local directory, or s3://bucket/prefix", o.Where)
		}
		bucket, prefix, cc, err := parseS3URL("ledger", o.Where)
		if err != nil {
			return nil, err
		}
		client, creds, _, err := s3client.NewClient(ctx, cc)
		if err != nil {
			return nil, err
		}
		dest = &s3Ledger{client: client, creds: creds, bucket: bucket, prefix: path.Join(prefix, o.Name, run) + "/"}
	} else {
		dest = &dirLedger{dir: filepath.Join(o.Where, o.Name, run)}
	}
	if err := dest.prune(ctx, o.Parts); err != nil {
		return nil, fmt.Errorf("ledger %s: removing the parts written after the checkpoint: %w", dest.location(), err)
	}
	l := &Ledger{dest: dest, limit: o.Rows, alloc: o.Alloc, cutPart: o.Parts, written: o.Parts,
		wake: make(chan struct{}, 1), doneBg: make(chan struct{})}
	if l.limit <= 0 {
		l.limit = DefaultLedgerRows
	}
	if l.alloc == nil {
		l.alloc = memory.DefaultAllocator
	}
	l.cur = newLedgerBuilder(l.alloc)
	bg, stop := context.WithCancel(context.Background())
	l.stop = stop
	go l.background(bg)
	return l, nil
}

// Location names the run's folder of parts.
func (l *Ledger) Location() string { return l.dest.location() }

// Rows is how many rows this run wrote in durable parts.
func (l *Ledger) Rows() int64 {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return l.rows
}

// maxPendingParts bounds the parts cut and not yet written: past it,
// Append writes them itself, so a writer slower than delivery slows
// delivery instead of holding parts in memory.
const maxPendingParts = 2

// Append adds a batch's rows of split. A part that is full is cut and
// handed to the writing goroutine.
func (l *Ledger) Append(split string, r *LedgerRows) {
	if l.append(split, r) > maxPendingParts {
		l.mu.Lock()
		n := l.cutPart
		l.mu.Unlock()
		l.writeMu.Lock()
		// A failure leaves the parts to the checkpoint's Flush, which
		// reports it.
		_ = l.writeLocked(context.Background(), n)
		l.writeMu.Unlock()
	}
}

// append adds r's rows and returns how many parts wait to be written.
func (l *Ledger) append(split string, r *LedgerRows) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0
	}
	l.cur.add(split, r)
	if l.cur.n >= l.limit {
		l.cutLocked()
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return len(l.full)
}

// Cut makes the rows appended so far a part, and returns the number of
// the last part cut: once Flush(n) returns nil, every row appended before
// Cut is in parts 1..n.
func (l *Ledger) Cut() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur.n > 0 && !l.closed {
		l.cutLocked()
	}
	return l.cutPart
}

func (l *Ledger) cutLocked() {
	l.full = append(l.full, l.cur.record())
	l.cutPart++
}

// Flush writes the parts up to n (Cut's) that are not written yet. A part
// that fails stays, to be written again, whole and under its number, by
// the next Flush.
func (l *Ledger) Flush(ctx context.Context, n int) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	return l.writeLocked(ctx, n)
}

func (l *Ledger) writeLocked(ctx context.Context, upTo int) error {
	for l.written < upTo {
		l.mu.Lock()
		if len(l.full) == 0 {
			l.mu.Unlock()
			return errors.New("ledger: a part to write is missing (a bug)")
		}
		rec := l.full[0]
		l.mu.Unlock()
		if err := l.dest.put(ctx, l.written+1, func(w io.Writer) error { return writeLedgerPart(w, rec) }); err != nil {
			return fmt.Errorf("writing ledger part %d to %s: %w", l.written+1, l.dest.location(), err)
		}
		l.mu.Lock()
		l.full[0] = nil
		l.full = l.full[1:]
		l.mu.Unlock()
		l.written++
		l.rows += rec.NumRows()
		rec.Release()
	}
	return nil
}

// background writes parts cut between checkpoints as they fill, so rows
// do not wait in memory for the next checkpoint. A failure leaves the part
// to the next try (a later wake, or the checkpoint's Flush, which reports
// it).
func (l *Ledger) background(ctx context.Context) {
	defer close(l.doneBg)
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		}
		l.mu.Lock()
		n := l.cutPart
		l.mu.Unlock()
		l.writeMu.Lock()
		_ = l.writeLocked(ctx, n)
		l.writeMu.Unlock()
	}
}

// Close stops the writing goroutine and drops what is not written: rows
// no saved checkpoint counts, which a resume reads again.
func (l *Ledger) Close() {
	l.stop()
	<-l.doneBg
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for _, rec := range l.full {
		rec.Release()
	}
	l.full = nil
	l.cur.release()
}

// ledgerBuilder holds a part's rows in Arrow builders. Splits and stages
// are kept once a part, rows hold their index.
type ledgerBuilder struct {
	mem        memory.Allocator
	splitIdx   map[string]int32
	splits     []string
	stageIdx   map[string]int32
	stages     []string
	split      *array.Int32Builder
	row        *array.Int64Builder
	id         *array.StringBuilder
	fate       *array.Int8Builder
	stage      *array.Int32Builder
	status     *array.Int32Builder
	at         *array.TimestampBuilder
	n          int
	lastSplit  string
	lastSplitI int32
}

func newLedgerBuilder(mem memory.Allocator) *ledgerBuilder {
	return &ledgerBuilder{mem: mem, splitIdx: map[string]int32{}, stageIdx: map[string]int32{},
		split: array.NewInt32Builder(mem), row: array.NewInt64Builder(mem), id: array.NewStringBuilder(mem),
		fate: array.NewInt8Builder(mem), stage: array.NewInt32Builder(mem), status: array.NewInt32Builder(mem),
		at: array.NewTimestampBuilder(mem, ledgerSchema.Field(6).Type.(*arrow.TimestampType)), lastSplitI: -1}
}

func (b *ledgerBuilder) splitIndex(split string) int32 {
	if b.lastSplitI >= 0 && split == b.lastSplit {
		return b.lastSplitI
	}
	i, ok := b.splitIdx[split]
	if !ok {
		i = int32(len(b.splits))
		b.splitIdx[split] = i
		b.splits = append(b.splits, split)
	}
	b.lastSplit, b.lastSplitI = split, i
	return i
}

func (b *ledgerBuilder) add(split string, r *LedgerRows) {
	n := len(r.row) + len(r.rejects)
	if n == 0 {
		return
	}
	si := b.splitIndex(split)
	for _, bl := range []array.Builder{b.split, b.row, b.id, b.fate, b.stage, b.status, b.at} {
		bl.Reserve(n)
	}
	b.id.ReserveData(len(r.ids))
	start := int32(0)
	for i, row := range r.row {
		b.split.UnsafeAppend(si)
		b.row.UnsafeAppend(row)
		if end := r.idEnd[i]; end > start {
			b.id.BinaryBuilder.Append(r.ids[start:end])
			start = end
		} else {
			b.id.AppendNull()
		}
		b.fate.UnsafeAppend(0)
		b.stage.UnsafeAppendBoolToBitmap(false)
		if st := r.status[i]; st != 0 {
			b.status.UnsafeAppend(st)
		} else {
			b.status.UnsafeAppendBoolToBitmap(false)
		}
		b.at.UnsafeAppend(arrow.Timestamp(r.at[i]))
	}
	for _, j := range r.rejects {
		b.split.UnsafeAppend(si)
		b.row.UnsafeAppend(j.row)
		if j.id != "" {
			b.id.Append(j.id)
		} else {
			b.id.AppendNull()
		}
		b.fate.UnsafeAppend(1)
		gi, ok := b.stageIdx[j.stage]
		if !ok {
			gi = int32(len(b.stages))
			b.stageIdx[j.stage] = gi
			b.stages = append(b.stages, j.stage)
		}
		b.stage.UnsafeAppend(gi)
		if j.status != 0 {
			b.status.UnsafeAppend(j.status)
		} else {
			b.status.UnsafeAppendBoolToBitmap(false)
		}
		b.at.UnsafeAppend(arrow.Timestamp(j.at))
	}
	b.n += n
}

// record takes the part's rows as a record and starts the next part.
func (b *ledgerBuilder) record() arrow.Record {
	dict := func(typ arrow.DataType, idx arrow.Array, values []string) arrow.Array {
		vb := array.NewStringBuilder(b.mem)
		defer vb.Release()
		vb.AppendValues(values, nil)
		va := vb.NewArray()
		defer va.Release()
		defer idx.Release()
		return array.NewDictionaryArray(typ, idx, va)
	}
	f := ledgerSchema.Fields()
	cols := []arrow.Array{
		dict(f[0].Type, b.split.NewArray(), b.splits),
		b.row.NewArray(),
		b.id.NewArray(),
		dict(f[3].Type, b.fate.NewArray(), fates),
		dict(f[4].Type, b.stage.NewArray(), b.stages),
		b.status.NewArray(),
		b.at.NewArray(),
	}
	rec := array.NewRecord(ledgerSchema, cols, int64(b.n))
	for _, c := range cols {
		c.Release()
	}
	clear(b.splitIdx)
	clear(b.stageIdx)
	b.splits, b.stages, b.n, b.lastSplitI = b.splits[:0:0], b.stages[:0:0], 0, -1
	return rec
}

func (b *ledgerBuilder) release() {
	for _, bl := range []array.Builder{b.split, b.row, b.id, b.fate, b.stage, b.status, b.at} {
		bl.Release()
	}
}

// writeLedgerPart writes rec as one Parquet file of one row group:
// snappy, the repeated strings as dictionaries, row offsets delta-encoded.
func writeLedgerPart(w io.Writer, rec arrow.Record) error {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryFor("row", false),
		parquet.WithEncodingFor("row", parquet.Encodings.DeltaBinaryPacked),
		parquet.WithDictionaryFor("message_id", false),
		// Times of acknowledgement rise: deltas store them in a few bits,
		// where a dictionary allocated per value.
		parquet.WithDictionaryFor("acked_at", false),
		parquet.WithEncodingFor("acked_at", parquet.Encodings.DeltaBinaryPacked),
		// Hex digits repeat no substring snappy could find: compressing
		// them took 40% of a part's writing for no bytes saved.
		parquet.WithCompressionFor("message_id", compress.Codecs.Uncompressed),
		parquet.WithMaxRowGroupLength(max(rec.NumRows(), 1)),
		parquet.WithCreatedBy("backfill ledger"),
	)
	// Hide w's Close: the Parquet writer would close the caller's file.
	fw, err := pqarrow.NewFileWriter(rec.Schema(), struct{ io.Writer }{w}, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return err
	}
	return fw.Close()
}

// partName is part n's file name.
func partName(n int) string { return fmt.Sprintf("part-%06d.parquet", n) }

// partNumber reads a part's number from its file name; false for other
// files.
func partNumber(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "part-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".parquet")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// dirLedger keeps parts in a local folder.
type dirLedger struct{ dir string }

func (d *dirLedger) location() string { return d.dir + string(filepath.Separator) }

// put writes the part aside (a dot file, which `*.parquet` globs skip),
// fsyncs it, renames it into place and fsyncs the folder: a crash leaves
// the part whole or absent.
func (d *dirLedger) put(_ context.Context, n int, write func(io.Writer) error) error {
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.dir, "."+partName(n)+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	bw := bufio.NewWriterSize(f, 256<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(d.dir, partName(n)))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(d.dir)
	return nil
}

func (d *dirLedger) prune(_ context.Context, n int) error {
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		k, ok := partNumber(name)
		stale := ok && k > n || strings.HasPrefix(name, ".part-") && strings.HasSuffix(name, ".tmp")
		if !stale {
			continue
		}
		if err := os.Remove(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		removed = true
	}
	if removed {
		syncDir(d.dir)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not every filesystem supports it
		d.Close()
	}
}

// s3Ledger keeps parts as objects under a prefix.
type s3Ledger struct {
	client *s3.Client
	creds  *s3client.Creds
	bucket string
	prefix string // ends with "/"
}

func (s *s3Ledger) location() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *s3Ledger) put(ctx context.Context, n int, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	key := s.prefix + partName(n)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(buf.Bytes()),
		ContentLength: aws.Int64(int64(buf.Len())), ContentType: aws.String("application/vnd.apache.parquet")})
	if err != nil {
		return fmt.Errorf("%w [credentials: %s]", err, s.creds)
	}
	return nil
}

func (s *s3Ledger) prune(ctx context.Context, n int) error {
	above := func(name string) bool { k, ok := partNumber(name); return ok && k > n }
	if err := deleteObjects(ctx, s.client, s.bucket, s.prefix, above); err != nil {
		return fmt.Errorf("%w [credentials: %s]", err, s.creds)
	}
	return nil
}

// LedgerRow is one row of the ledger, as ReadLedgerPart reads it.
type LedgerRow struct {
	Split     string
	Row       int64
	MessageID string // "" when none
	Fate      string // FateDelivered or FateRejected
	Stage     string // a reject's: "source", "transform:NAME", "sink"
	Status    int    // HTTP status, 0 when none
	AckedAt   time.Time
}

// ReadLedgerPart reads a ledger part whole (any Parquet reader can: this
// one is for tests and tools in Go).
func ReadLedgerPart(r parquet.ReaderAtSeeker) ([]LedgerRow, error) {
	pf, err := file.NewParquetReader(r)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	out := make([]LedgerRow, tbl.NumRows())
	for c := 0; c < int(tbl.NumCols()); c++ {
		col := tbl.Column(c)
		name := col.Name()
		at := 0
		for _, chunk := range col.Data().Chunks() {
			rows := out[at : at+chunk.Len()]
			at += chunk.Len()
			var str func(i int) string
			switch a := chunk.(type) {
			case *array.String:
				str = a.Value
			case *array.Dictionary:
				dict := a.Dictionary().(*array.String)
				str = func(i int) string { return dict.Value(a.GetValueIndex(i)) }
			case *array.Int64:
				for i := range rows {
					rows[i].Row = a.Value(i)
				}
				continue
			case *array.Int32:
				for i := range rows {
					if a.IsValid(i) {
						rows[i].Status = int(a.Value(i))
					}
				}
				continue
			case *array.Timestamp:
				for i := range rows {
					rows[i].AckedAt = time.UnixMilli(int64(a.Value(i))).UTC()
				}
				continue
			default:
				return nil, fmt.Errorf("ledger column %s: unexpected type %s", name, chunk.DataType())
			}
			var dst func(*LedgerRow) *string
			switch name {
			case "split":
				dst = func(r *LedgerRow) *string { return &r.Split }
			case "message_id":
				dst = func(r *LedgerRow) *string { return &r.MessageID }
			case "fate":
				dst = func(r *LedgerRow) *string { return &r.Fate }
			case "stage":
				dst = func(r *LedgerRow) *string { return &r.Stage }
			default:
				continue
			}
			for i := range rows {
				if chunk.IsValid(i) {
					*dst(&rows[i]) = str(i)
				}
			}
		}
	}
	return out, nil
}
