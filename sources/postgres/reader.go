package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/backfillhq/backfill/pipeline"
)

// outCol is an output column: its decoder and where it is in the select
// list.
type outCol struct {
	idx int
	dec *decoder
}

// position is where a (re)opened statement starts: conditions after a
// key, rows the server skips (OFFSET) and rows the reader reads and
// drops (ties of the last key).
type position struct {
	conds  []string
	offset int64
	skip   int64
	// key tracking carried over (orderUnique, orderTID)
	haveKey bool
	key     int64
}

type reader struct {
	s     *Source
	split string
	info  *splitInfo
	plan  *plan
	mem   memory.Allocator

	items   []string // the select list
	outs    []outCol
	schema  *arrow.Schema
	keyIdx  int // select-list index of the key, -1: no key tracking
	keyKind kind
	tidIdx  int
	order   string
	base    []string // conditions every statement of the split has
	useCopy bool
	batch   int
	fetchN  int

	offset  int64 // Start of the next batch
	initial position
	handed  bool     // a batch was handed out by this reader
	last    boundary // where the last batch handed out ended
	// key tracking over the rows read
	haveKey bool
	lastKey int64
	ties    int64
	tid     []byte

	conn     *pgxpool.Conn
	out      chan produced // from the split's goroutine
	finished chan struct{} // closed when it ends
	skip     int64
	done     bool
	attempts int
	// the batch being decoded (on the split's goroutine)
	n       int
	mask    []uint8
	rejects map[int]*pipeline.Reject

	ctx          context.Context // the reader's: ends at Close, or when a Next's context ends
	cancel       context.CancelFunc
	streamCtx    context.Context // the open statement's
	streamCancel context.CancelFunc
}

// Open starts reading one split from opts.Offset; the connection is made
// at the first Next.
func (s *Source) Open(ctx context.Context, split pipeline.Split, opts pipeline.ReadOptions) (pipeline.RecordReader, error) {
	s.mu.Lock()
	p, cols, us := s.plan, s.cols, s.unloadSrc
	s.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("postgres: split %s opened before Splits planned the run", split.ID)
	}
	if p.Unload {
		if us == nil {
			return nil, fmt.Errorf("postgres: split %s opened before the UNLOAD files were listed", split.ID)
		}
		return us.Open(ctx, split, opts)
	}
	info, ok := split.Info.(*splitInfo)
	if !ok {
		return nil, fmt.Errorf("postgres: split %s was not planned by this source", split.ID)
	}
	mem := s.env.Alloc
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	r := &reader{s: s, split: split.ID, info: info, plan: p, mem: mem, batch: opts.BatchRows, offset: opts.Offset,
		keyIdx: -1, tidIdx: -1, useCopy: s.stream == streamCopy}
	if r.batch <= 0 {
		r.batch = 8192
	}
	r.fetchN = s.fetch
	if r.fetchN <= 0 {
		r.fetchN = r.batch
		if s.dialect == dialectRedshift {
			r.fetchN = min(r.batch, 1000) // a single-node cluster's most
		}
	}
	if r.useCopy && len(s.params) > 0 {
		// COPY takes no parameters.
		r.useCopy = false
		s.note("copy-params", "postgres: a query with params is read with a cursor (COPY takes no parameters)")
	}
	if err := r.selectList(cols, opts.Columns); err != nil {
		r.release()
		return nil, err
	}
	r.conditions()
	r.initial = r.resumeFrom(opts.Offset)
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return r, nil
}

// selectList builds the select list: the output columns, then the key and
// ctid when the reader tracks them.
func (r *reader) selectList(cols []column, want pipeline.Columns) error {
	s := r.s
	names := s.columns
	if !want.All && len(want.Names) > 0 {
		if len(s.columns) > 0 {
			for _, n := range want.Names {
				if !containsFold(s.columns, n) {
					return fmt.Errorf("postgres: column %q is needed by the pipeline but not read from %s (columns: %s)",
						n, s.what(), strings.Join(s.columns, ", "))
				}
			}
		}
		names = want.Names
	}
	if len(names) == 0 {
		names = columnNames(cols)
	}
	var fields []arrow.Field
	for _, n := range names {
		i := findColumn(cols, n)
		if i < 0 {
			return fmt.Errorf("postgres: column %q is not in %s (columns: %s)", n, s.what(), strings.Join(columnNames(cols), ", "))
		}
		c := cols[i]
		item, k, elem := r.item(c)
		dec := newDecoder(r.mem, n, k, elem, s.textWire, s.numMod, c.Typmod, s.loc)
		r.outs = append(r.outs, outCol{idx: len(r.items), dec: dec})
		r.items = append(r.items, item)
		fields = append(fields, arrow.Field{Name: n, Type: dec.dt, Nullable: true})
	}
	md := pipeline.DataColumnsMetadata(arrow.Metadata{}, columnNames(cols))
	r.schema = arrow.NewSchema(fields, &md)
	p := r.plan
	if p.Key != "" && !r.info.rng.Nulls && !r.info.all {
		r.order = p.Order
		r.keyKind = p.KeyKind
		r.keyIdx = len(r.items)
		r.items = append(r.items, quoteIdent(p.Key))
		if p.Order == orderTID {
			r.tidIdx = len(r.items)
			r.items = append(r.items, "ctid")
		}
	}
	return nil
}

// item is a column's select-list item and how it is decoded: as itself,
// or cast to text (a type the source does not decode, noted once).
func (r *reader) item(c column) (string, kind, kind) {
	s := r.s
	q := quoteIdent(c.Name)
	redshift := s.dialect == dialectRedshift
	switch {
	case redshift && c.OID == oidSuper:
		return "JSON_SERIALIZE(" + q + ")", kJSON, 0
	case (c.Kind == kArray || c.Array) && s.textWire:
		return "array_to_json(" + q + ")::text", kJSON, 0
	case c.Decoded:
		return q, c.Kind, c.Elem
	case c.Array && !s.textWire:
		s.note("type:"+c.Name, "postgres: an array column of a type the source does not decode is read as JSON text strings",
			"column", c.Name, "type", c.Type)
		return q + "::text[]", kArray, kText
	}
	s.note("type:"+c.Name, "postgres: a column of a type the source does not decode is read as text", "column", c.Name, "type", c.Type)
	if redshift {
		return "CAST(" + q + " AS VARCHAR(65535))", kText, 0
	}
	return q + "::text", kText, 0
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// conditions are the split's own: where, the cursor window, the key range.
func (r *reader) conditions() {
	s, p := r.s, r.plan
	if s.where != "" {
		r.base = append(r.base, "("+s.where+")")
	}
	if s.curCol != "" {
		col := quoteIdent(s.curCol)
		if i := findColumn(s.cols, s.curCol); i >= 0 {
			col = quoteIdent(s.cols[i].Name)
		}
		if p.CursorLo != "" {
			r.base = append(r.base, col+" > "+quoteLiteral(p.CursorLo, s.backslash))
		}
		if p.CursorHi != "" {
			r.base = append(r.base, col+" <= "+quoteLiteral(p.CursorHi, s.backslash))
		}
	}
	if p.Key != "" && !r.info.all {
		r.base = append(r.base, r.info.rng.conds(quoteIdent(p.Key), p.KeyKind)...)
	}
}

// resumeFrom is where to start for offset n: after the boundary the split
// recorded at n, else after the newest before n and skipping the rest,
// else from the split's start skipping n rows.
func (r *reader) resumeFrom(n int64) position {
	if n == 0 {
		return position{}
	}
	if r.keyIdx < 0 {
		return position{offset: n} // no key: the server skips the rows
	}
	b, ok := r.s.resumePoint(r.split, n)
	if !ok {
		r.s.warn("postgres: no key is kept for this split's acknowledged offset; the server skips the rows before it (OFFSET)",
			"split", r.split, "offset", n)
		if r.order == orderTies {
			return position{skip: n}
		}
		return position{offset: n}
	}
	if b.Off != n {
		r.s.warn("postgres: resuming from an older key of this split and skipping the rows after it",
			"split", r.split, "offset", n, "from_offset", b.Off)
	}
	return r.after(b, n-b.Off)
}

// after is the position right after boundary b, then extra more rows.
func (r *reader) after(b boundary, extra int64) position {
	col := quoteIdent(r.plan.Key)
	lit := keyLiteral(r.keyKind, b.Key)
	switch r.order {
	case orderUnique:
		return position{conds: []string{col + " > " + lit}, offset: extra, haveKey: true, key: b.Key}
	case orderTID:
		return position{conds: []string{"(" + col + ", ctid) > (" + lit + ", " + quoteLiteral(b.TID, false) + "::tid)"},
			offset: extra, haveKey: true, key: b.Key}
	}
	// Ties: from the key's first row, dropping those handed out already
	// (read again, so the tie count is right).
	return position{conds: []string{col + " >= " + lit}, skip: b.Ties + extra}
}

// statement is the SELECT for a position.
func (r *reader) statement(pos position) string {
	q := selectSpec{cols: r.items, from: r.s.from(), where: append(append([]string(nil), r.base...), pos.conds...), offset: pos.offset}
	if r.keyIdx >= 0 {
		q.orderBy = []string{quoteIdent(r.plan.Key)}
		if r.order == orderTID {
			q.orderBy = append(q.orderBy, "ctid")
		}
	} else if r.info.rng.Nulls && r.plan.Order == orderTID {
		q.orderBy = []string{"ctid"}
	}
	return q.sql()
}

// current is where a reopened statement starts: after the last batch
// handed out, or where the reader was opened.
func (r *reader) current() position {
	if !r.handed {
		return r.initial
	}
	if r.keyIdx < 0 {
		return position{offset: r.offset}
	}
	return r.after(r.last, 0)
}

// Next returns the split's next batch, io.EOF after its last row. The
// rows are read and decoded on a goroutine of the split's (one batch
// ahead); a lost connection is reopened after the last batch handed out.
func (r *reader) Next(ctx context.Context) (*pipeline.Batch, error) {
	defer context.AfterFunc(ctx, r.cancel)()
	for {
		if r.done {
			return nil, io.EOF
		}
		err := ctx.Err()
		if err == nil && r.out == nil {
			err = r.open(ctx)
		}
		if err == nil {
			var p produced
			select {
			case p = <-r.out:
			case <-r.finished:
				p = produced{err: r.ctx.Err()}
				if p.err == nil {
					p.err = errors.New("postgres: the split's reader ended without a result")
				}
			}
			if p.b != nil {
				r.attempts = 0
				return p.b, nil
			}
			if p.err == io.EOF {
				<-r.finished
				r.conn.Release()
				r.conn, r.out = nil, nil
				r.done = true
				return nil, io.EOF
			}
			err = p.err
		}
		r.abort()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !transient(err) || r.attempts >= r.s.retries {
			what := "reading"
			if r.attempts > 0 {
				what = fmt.Sprintf("reading (after %d retries)", r.attempts)
			}
			return nil, r.s.errorf("postgres: split %s: %s at row %d: %s: %w", r.split, what, r.offset, describe(err), err)
		}
		wait := r.s.backoff(r.attempts)
		r.attempts++
		r.s.warn("postgres: connection lost while reading a split; reopening it after the last key handed on",
			"split", r.split, "row", r.offset, "attempt", r.attempts, "error", r.s.redact(describe(err)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// produced is what the split's goroutine hands over: a batch, or how the
// statement ended (io.EOF: read to its end and committed).
type produced struct {
	b   *pipeline.Batch
	err error
}

// open starts the split's transaction at the current position, and the
// goroutine that streams the statement.
func (r *reader) open(ctx context.Context) error {
	s := r.s
	r.streamCtx, r.streamCancel = context.WithCancel(r.ctx)
	c, err := s.acquire(r.streamCtx)
	if err != nil {
		return err
	}
	r.conn = c
	pc := c.Conn().PgConn()
	redshift := s.dialect == dialectRedshift
	pos := r.current()
	stmts := beginSQL(redshift)
	snap := s.currentSnapshot()
	if snap != "" {
		stmts += "; " + setSnapshotSQL(snap)
	}
	if r.keyIdx < 0 && !redshift {
		// Without ORDER BY a table comes in its physical order, the same
		// in every statement on one snapshot, as long as a scan starts at
		// the table's start (a synchronized scan would not).
		stmts += "; SET LOCAL synchronize_seqscans = off"
	}
	if err := s.execSimple(r.streamCtx, c, stmts); err != nil {
		if isInvalidSnapshot(err) {
			// The transaction exporting it ended (its connection was
			// lost): export another, and retry.
			if xerr := s.exportSnapshot(r.streamCtx, snap); xerr != nil {
				return xerr
			}
			return &retryNow{err}
		}
		return err
	}
	sql := r.statement(pos)
	if s.trace != nil {
		s.trace(r.split, sql)
	}
	if s.env.Logger != nil {
		s.env.Logger.Debug("postgres: split statement", "split", r.split, "offset", r.offset, "sql", sql)
	}
	if !r.useCopy {
		if _, err := pc.ExecParams(r.streamCtx, declareSQL(sql), s.paramValues(sql), nil, nil, nil).Close(); err != nil {
			return err
		}
	}
	r.haveKey, r.lastKey, r.ties = pos.haveKey, pos.key, 0
	r.skip = pos.skip
	r.n, r.mask, r.rejects = 0, nil, nil
	r.reserve()
	r.out, r.finished = make(chan produced), make(chan struct{})
	go r.produce(pc, sql)
	return nil
}

// produce streams the statement, hands over its batches, and commits.
func (r *reader) produce(pc *pgconn.PgConn, sql string) {
	defer close(r.finished)
	ctx := r.streamCtx
	var err error
	if r.useCopy {
		err = copyRows(ctx, pc, copySQL(sql), r.row)
	} else {
		var formats []int16
		if !r.s.textWire {
			formats = []int16{1}
		}
		err = fetchRows(ctx, pc, r.fetchN, formats, r.row)
	}
	if err == nil && r.n > 0 {
		err = r.emit()
	}
	if err == nil {
		// Read-only: the commit only ends the transaction (and the cursor).
		_, err = pc.Exec(ctx, "COMMIT").ReadAll()
	}
	if err == nil {
		err = io.EOF
	}
	select {
	case r.out <- produced{err: err}:
	case <-ctx.Done():
	}
}

// retryNow is a transient condition that was put right (a snapshot
// exported again).
type retryNow struct{ err error }

func (e *retryNow) Error() string { return e.err.Error() }
func (e *retryNow) Unwrap() error { return e.err }

// abort stops the statement, waits for its goroutine, closes the
// connection and drops the rows decoded since the last batch handed out.
func (r *reader) abort() {
	if r.streamCancel != nil {
		r.streamCancel() // interrupts what the connection is doing
	}
	if r.finished != nil {
		for done := false; !done; {
			select {
			case p := <-r.out:
				if p.b != nil {
					p.b.Release()
				}
			case <-r.finished:
				done = true
			}
		}
	}
	r.out, r.finished = nil, nil
	if r.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		closeConn(ctx, r.conn)
		cancel()
		r.conn = nil
	}
	for _, o := range r.outs {
		o.dec.reset(r.mem)
	}
}

// reserve sizes the builders for a batch, strings as the last batch's.
func (r *reader) reserve() {
	for _, o := range r.outs {
		o.dec.reserve(r.batch)
	}
}

// row decodes one row into the batch being built, and hands the batch
// over when it is full. It runs on the split's goroutine.
func (r *reader) row(vals [][]byte) error {
	if len(vals) != len(r.items) {
		return fmt.Errorf("postgres: a row of %d values, expected %d", len(vals), len(r.items))
	}
	if err := r.track(vals); err != nil {
		return err
	}
	if r.skip > 0 {
		r.skip--
		return nil
	}
	for j, o := range r.outs {
		reason := o.dec.append(vals[o.idx])
		if reason == "" {
			continue
		}
		for _, rest := range r.outs[j+1:] {
			rest.dec.b.AppendNull()
		}
		if r.mask == nil {
			r.mask = make([]uint8, 0, r.batch)
			r.rejects = map[int]*pipeline.Reject{}
		}
		for len(r.mask) < r.n {
			r.mask = append(r.mask, pipeline.FateKeep)
		}
		r.mask = append(r.mask, pipeline.FateReject)
		r.rejects[r.n] = &pipeline.Reject{Stage: "source", Column: o.dec.name, Reason: fmt.Sprintf("column %q: %s", o.dec.name, reason)}
		break
	}
	r.n++
	if r.n == r.batch {
		return r.emit()
	}
	return nil
}

// emit builds the batch of the rows decoded, records where it ends, and
// hands it over (waiting for the reader to take it).
func (r *reader) emit() error {
	n := r.n
	cols := make([]arrow.Array, len(r.outs))
	for i, o := range r.outs {
		cols[i] = o.dec.finish()
	}
	rec := array.NewRecord(r.schema, cols, int64(n))
	for _, c := range cols {
		c.Release()
	}
	b := pipeline.NewBatch(r.split, r.offset, rec)
	if r.mask != nil {
		for len(r.mask) < n {
			r.mask = append(r.mask, pipeline.FateKeep)
		}
		if err := b.DropMask(r.mem, r.mask, r.rejects); err != nil {
			b.Release()
			return err
		}
	}
	r.n, r.mask, r.rejects = 0, nil, nil
	r.reserve()
	select {
	case r.out <- produced{b: b}:
	case <-r.streamCtx.Done():
		b.Release()
		return r.streamCtx.Err()
	}
	// Taken: the batch is handed out.
	r.offset += int64(n)
	r.handed = true
	if r.keyIdx >= 0 && r.haveKey {
		r.last = boundary{Off: r.offset, Key: r.lastKey, Ties: r.ties}
		if r.tidIdx >= 0 {
			r.last.TID = tidText(r.tid, r.s.textWire)
		}
		r.s.record(r.split, r.last)
	}
	return nil
}

// track follows the key (and ctid) of the rows read.
func (r *reader) track(vals [][]byte) error {
	if r.keyIdx < 0 {
		return nil
	}
	v := vals[r.keyIdx]
	if v == nil {
		return fmt.Errorf("postgres: split key %s is NULL in a key range", r.plan.Key)
	}
	k, err := keyValue(r.keyKind, v, r.s.textWire)
	if err != nil {
		return fmt.Errorf("postgres: split key %s: %v", r.plan.Key, err)
	}
	if r.haveKey && k == r.lastKey {
		r.ties++
	} else {
		r.haveKey, r.lastKey, r.ties = true, k, 1
	}
	if r.tidIdx >= 0 {
		r.tid = append(r.tid[:0], vals[r.tidIdx]...)
	}
	return nil
}

// tidText is a ctid as SQL reads it: "(block,offset)".
func tidText(v []byte, text bool) string {
	if text || len(v) != 6 {
		return string(v)
	}
	return "(" + strconv.FormatUint(uint64(binary.BigEndian.Uint32(v)), 10) + "," +
		strconv.FormatUint(uint64(binary.BigEndian.Uint16(v[4:])), 10) + ")"
}

func (r *reader) release() {
	for _, o := range r.outs {
		o.dec.release()
	}
}

// Close stops the statement, drops its connection and the rows not handed
// out.
func (r *reader) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	if r.out != nil || r.conn != nil {
		r.abort()
	}
	r.release()
	return nil
}
