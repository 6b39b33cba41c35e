package bigquery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/backfillhq/backfill/pipeline"
)

// reader streams one read stream. ReadRows starts at the acknowledged
// offset; a transient error reopens the stream where the last decoded
// response ended.
type reader struct {
	s         *Source
	split     string
	stream    string
	schema    []byte        // the session's serialized Arrow schema
	server    *arrow.Schema // what the server sends
	conv      *arrow.Schema // after type conversion; nil: no conversion
	keep      []int         // projected column indices; nil: all
	out       *arrow.Schema // what the pipeline gets
	cursor    int           // cursor column index in the converted record, -1: none
	mem       memory.Allocator
	batchRows int

	offset int64 // Start of the next batch handed out
	readAt int64 // next row to ask the server for
	queue  []*pipeline.Batch
	done   bool

	ctx      context.Context
	cancel   context.CancelFunc
	rr       storagepb.BigQueryRead_ReadRowsClient
	rrCancel context.CancelFunc
	attempts int
}

// Open starts reading one stream of the session made by Splits.
func (s *Source) Open(ctx context.Context, split pipeline.Split, opts pipeline.ReadOptions) (pipeline.RecordReader, error) {
	name, ok := split.Info.(string)
	if !ok || name == "" {
		return nil, fmt.Errorf("bigquery: split %s has no read stream name", split.ID)
	}
	s.mu.Lock()
	sess := s.session
	s.mu.Unlock()
	if sess == nil {
		return nil, fmt.Errorf("bigquery: split %s opened before Splits made a read session", split.ID)
	}
	mem := s.env.Alloc
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	r := &reader{s: s, split: split.ID, stream: name, schema: sess.schema, mem: mem,
		batchRows: opts.BatchRows, offset: opts.Offset, readAt: opts.Offset, cursor: -1}
	if r.batchRows <= 0 {
		r.batchRows = 8192
	}
	sc, err := decodeSchema(sess.schema)
	if err != nil {
		return nil, fmt.Errorf("bigquery: read session %s: %w", sess.name, err)
	}
	r.server = sc
	full := sc
	if c, changed := convertSchema(sc); changed {
		r.conv, full = c, c
	}
	if s.cursorCol != "" {
		r.cursor = fieldIndex(full, s.cursorCol)
		if r.cursor < 0 {
			return nil, fmt.Errorf("bigquery: cursor column %q is not in %s", s.cursorCol, sess.table)
		}
		if _, err := cursorKind(full.Field(r.cursor).Type); err != nil {
			return nil, fmt.Errorf("bigquery: cursor column %q: %v", s.cursorCol, err)
		}
	}
	r.out = full
	if !opts.Columns.All && len(opts.Columns.Names) > 0 {
		fields := make([]arrow.Field, 0, len(opts.Columns.Names))
		for _, n := range opts.Columns.Names {
			i := fieldIndex(full, n)
			if i < 0 {
				return nil, fmt.Errorf("bigquery: column %q is needed by the pipeline but not read from %s (columns read: %s)",
					n, sess.table, strings.Join(fieldNames(full), ", "))
			}
			r.keep = append(r.keep, i)
			fields = append(fields, full.Field(i))
		}
		md := full.Metadata()
		r.out = arrow.NewSchema(fields, &md)
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	return r, nil
}

func fieldIndex(sc *arrow.Schema, name string) int {
	if idx := sc.FieldIndices(name); len(idx) > 0 {
		return idx[0]
	}
	for i, f := range sc.Fields() { // BigQuery column names ignore case
		if strings.EqualFold(f.Name, name) {
			return i
		}
	}
	return -1
}

func fieldNames(sc *arrow.Schema) []string {
	out := make([]string, sc.NumFields())
	for i, f := range sc.Fields() {
		out[i] = f.Name
	}
	return out
}

func decodeSchema(b []byte) (*arrow.Schema, error) {
	rd, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decoding the Arrow schema: %w", err)
	}
	defer rd.Release()
	return rd.Schema(), nil
}

// Next returns the next batch, io.EOF after the stream's last row.
func (r *reader) Next(ctx context.Context) (*pipeline.Batch, error) {
	for len(r.queue) == 0 {
		if r.done {
			return nil, io.EOF
		}
		if err := r.fill(ctx); err != nil {
			return nil, err
		}
	}
	b := r.queue[0]
	r.queue[0] = nil
	r.queue = r.queue[1:]
	return b, nil
}

func (r *reader) closeStream() {
	if r.rrCancel != nil {
		r.rrCancel()
		r.rrCancel, r.rr = nil, nil
	}
}

// fill reads one response (or handles one error).
func (r *reader) fill(ctx context.Context) error {
	var resp *storagepb.ReadRowsResponse
	var err error
	if r.rr == nil {
		sctx, cancel := context.WithCancel(r.ctx)
		r.rr, err = r.s.rc.ReadRows(sctx, &storagepb.ReadRowsRequest{ReadStream: r.stream, Offset: r.readAt})
		r.rrCancel = cancel
		if err != nil {
			r.closeStream()
		}
	}
	if err == nil {
		resp, err = r.rr.Recv()
	}
	if err == io.EOF {
		r.closeStream()
		r.done = true
		return nil
	}
	if err != nil {
		r.closeStream()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if transient(err) && r.attempts < r.s.maxRetries {
			r.s.warn("BigQuery read stream failed; reopening at the current offset",
				"split", r.split, "offset", r.readAt, "attempt", r.attempts+1, "error", err)
			wait := r.s.backoff(r.attempts)
			r.attempts++
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			return nil
		}
		return r.streamErr(err)
	}
	r.attempts = 0
	rb := resp.GetArrowRecordBatch()
	if rb == nil {
		if resp.GetRowCount() > 0 {
			return fmt.Errorf("bigquery: stream %s sent %d rows that are not Arrow", r.stream, resp.GetRowCount())
		}
		return nil // stats or throttling only
	}
	return r.decode(rb.GetSerializedRecordBatch())
}

func (r *reader) streamErr(err error) error {
	st, _ := status.FromError(err)
	msg := describeErr(err)
	if (st.Code() == codes.FailedPrecondition || st.Code() == codes.NotFound) && strings.Contains(strings.ToLower(st.Message()), "expire") {
		return fmt.Errorf("bigquery: stream %s at row %d: the read session expired (%s); rerun: progress is kept, "+
			"and on_session_expired (%s) says what the rerun does with the expired session", r.stream, r.readAt, msg, r.s.onExpired)
	}
	if st.Code() == codes.OutOfRange {
		return fmt.Errorf("bigquery: stream %s: offset %d is past its end (%s); the checkpoint does not match this session: rerun with --fresh", r.stream, r.readAt, msg)
	}
	return fmt.Errorf("bigquery: reading stream %s at row %d: %s", r.stream, r.readAt, msg)
}

// decode turns one serialized record batch into batches of at most
// batchRows rows, converted and projected.
func (r *reader) decode(data []byte) error {
	rd, err := ipc.NewReader(io.MultiReader(bytes.NewReader(r.schema), bytes.NewReader(data)), ipc.WithAllocator(r.mem))
	if err != nil {
		return fmt.Errorf("bigquery: stream %s: decoding Arrow: %w", r.stream, err)
	}
	defer rd.Release()
	for rd.Next() {
		rec := rd.Record()
		rec.Retain()
		if err := r.enqueue(rec); err != nil {
			return err
		}
	}
	if err := rd.Err(); err != nil && err != io.EOF {
		return fmt.Errorf("bigquery: stream %s: decoding Arrow: %w", r.stream, err)
	}
	return nil
}

// enqueue takes ownership of rec.
func (r *reader) enqueue(rec arrow.Record) error {
	if r.conv != nil {
		c := convertRecord(r.mem, rec, r.conv)
		rec.Release()
		rec = c
	}
	if r.cursor >= 0 {
		if v, ok := maxCursor(rec.Column(r.cursor)); ok {
			r.s.observeCursor(v)
		}
	}
	if r.keep != nil {
		cols := make([]arrow.Array, len(r.keep))
		for i, k := range r.keep {
			cols[i] = rec.Column(k)
		}
		p := array.NewRecord(r.out, cols, rec.NumRows())
		rec.Release()
		rec = p
	}
	defer rec.Release()
	n := rec.NumRows()
	for lo := int64(0); lo < n; lo += int64(r.batchRows) {
		hi := min(lo+int64(r.batchRows), n)
		r.queue = append(r.queue, pipeline.NewBatch(r.split, r.offset, rec.NewSlice(lo, hi)))
		r.offset += hi - lo
	}
	r.readAt += n
	return nil
}

// Close stops the stream and drops batches not handed out.
func (r *reader) Close() error {
	r.closeStream()
	r.cancel()
	for _, b := range r.queue {
		if b != nil {
			b.Release()
		}
	}
	r.queue = nil
	return nil
}
