package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/backfillhq/backfill/pipeline"
)

// State keys.
const (
	keyPlan      = "plan"
	keyPositions = "positions"
	keyCursor    = "cursor"
	keyUnload    = "unload"
)

// Orders of a key-range split, which say how a reader resumes after a key.
const (
	orderNone   = ""       // no key: one split in the server's order, resumed by OFFSET
	orderUnique = "unique" // the key is unique (primary key, unique index): key > last
	orderTID    = "tid"    // a table's key with ties: ORDER BY key, ctid; (key, ctid) > (last, tid)
	orderTies   = "ties"   // ties and no ctid (a view, Redshift): key >= last, less the ties handed on
)

// column is one column of the relation, as described by the server.
type column struct {
	Name    string
	OID     uint32
	Typmod  int32
	Kind    kind
	Elem    kind // arrays
	Decoded bool // the source decodes its type; else it is read as text
	Array   bool // an array whose elements the source does not decode: read as text[]
	Type    string
}

// plan is what a run reads, fixed by its first run and reused by its
// resumes: the splits' IDs, key ranges and the cursor window.
type plan struct {
	For      string     `json:"for"`  // the config's read fingerprint
	Hash     string     `json:"hash"` // names the splits
	Key      string     `json:"key,omitempty"`
	KeyKind  kind       `json:"key_kind,omitempty"`
	Order    string     `json:"order,omitempty"`
	Ranges   []keyRange `json:"ranges,omitempty"`
	CursorLo string     `json:"cursor_lo,omitempty"` // the committed bound, as text
	CursorHi string     `json:"cursor_hi,omitempty"` // this run's upper bound, committed by Finish
	Empty    bool       `json:"empty,omitempty"`     // the cursor window holds no row
	Estimate int64      `json:"estimate,omitempty"`
	Finished bool       `json:"finished,omitempty"`
	Unload   bool       `json:"unload,omitempty"`
}

// splitInfo is a split's Info.
type splitInfo struct {
	idx int
	rng keyRange
	all bool // the whole relation (no key)
}

// committed is the cursor bound of the last completed run.
type committed struct {
	Column string `json:"column"`
	Value  string `json:"value"`
}

// readKey fingerprints what the config asks to read: a plan made for
// another one is not resumed.
func (s *Source) readKey() string {
	b, _ := json.Marshal([]any{s.dialect, s.table.String(), s.query, s.params, s.nullPar, s.where, s.splitBy, s.curCol,
		s.unload != nil})
	return shortHash(string(b))
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

func (s *Source) what() string {
	if s.query != "" {
		return "query"
	}
	return s.table.String()
}

// splitsOf names a plan's splits.
func (s *Source) splitsOf(p *plan) []pipeline.Split {
	if p.Empty {
		return nil
	}
	base := s.what() + "#" + p.Hash
	if len(p.Ranges) == 0 {
		return []pipeline.Split{{ID: base, Rows: -1, Bytes: -1, Info: &splitInfo{all: true}}}
	}
	out := make([]pipeline.Split, len(p.Ranges))
	for i, r := range p.Ranges {
		id := base + "/" + strconv.Itoa(i)
		if r.Nulls {
			id = base + "/null"
		}
		out[i] = pipeline.Split{ID: id, Rows: -1, Bytes: -1, Info: &splitInfo{idx: i, rng: r}}
	}
	return out
}

func (s *Source) storedPlan() (*plan, error) {
	v := s.get(keyPlan)
	if v == "" {
		return nil, nil
	}
	var p plan
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return nil, fmt.Errorf("postgres: the stored plan is unreadable (%v); rerun with --fresh", err)
	}
	if p.For != s.readKey() {
		if p.Finished {
			return nil, fmt.Errorf("postgres: the table, query, where, split_by or cursor changed since this pipeline finished; " +
				"rerun with --fresh to read again")
		}
		return nil, fmt.Errorf("postgres: the table, query, where, split_by or cursor changed since this run started; " +
			"finish it with the old config, or rerun with --fresh to start over")
	}
	return &p, nil
}

func (s *Source) savePlan(p *plan) {
	b, _ := json.Marshal(p)
	s.env.State.Set(keyPlan, string(b))
}

// Splits plans the run (or takes the stored plan of the run it resumes),
// and on Postgres exports the snapshot every split reads.
func (s *Source) Splits(ctx context.Context) ([]pipeline.Split, error) {
	p, err := s.storedPlan()
	if err != nil {
		return nil, err
	}
	if p != nil && p.Finished {
		// A finished run: the same splits, which the checkpoint says are
		// done. Nothing is read, nothing connects.
		s.mu.Lock()
		s.plan = p
		s.mu.Unlock()
		if p.Unload {
			return s.unloadSplits(ctx, p)
		}
		return s.splitsOf(p), nil
	}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	conn, err := s.planConn(ctx)
	if err != nil {
		return nil, err
	}
	defer s.releasePlanConn(conn)
	cols, err := s.describe(ctx, conn)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cols = cols
	s.mu.Unlock()
	if p == nil {
		if p, err = s.makePlan(ctx, conn, cols); err != nil {
			return nil, err
		}
		s.savePlan(p)
		s.logPlan(p)
	} else {
		s.loadPositions()
		msg := "resuming the run's plan: each split goes on after its last acknowledged key"
		if s.dialect == dialectPostgres {
			msg += "; the snapshot of the interrupted run died with it, so the rest is read from a new one"
		}
		s.info(msg, "what", s.what(), "splits", len(s.splitsOf(p)))
	}
	s.mu.Lock()
	s.plan = p
	s.mu.Unlock()
	if p.Unload {
		return s.unloadSplits(ctx, p)
	}
	return s.splitsOf(p), nil
}

func (s *Source) logPlan(p *plan) {
	args := []any{"what", s.what(), "splits", len(s.splitsOf(p)), "estimated_rows", p.Estimate}
	if p.Key != "" {
		args = append(args, "key", p.Key, "order", p.Order)
	}
	if p.CursorHi != "" || p.CursorLo != "" {
		args = append(args, "cursor_from", p.CursorLo, "cursor_to", p.CursorHi)
	}
	if s.snapshot != "" {
		args = append(args, "snapshot", s.snapshot)
	}
	s.info("postgres source planned", args...)
}

// EstimatedRows is the table's row estimate (its statistics), 0 when not
// known, or when where or a cursor read only part of the table.
func (s *Source) EstimatedRows() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plan == nil || s.plan.Estimate < 0 || s.where != "" || s.curCol != "" {
		return 0
	}
	return s.plan.Estimate
}

// connect makes the pool once.
func (s *Source) connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		return nil
	}
	// The splits' connections and the snapshot's.
	pc, err := s.poolConfig(s.maxSplit + 2)
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return s.errorf("postgres: %s", describe(err))
	}
	s.pool = pool
	return nil
}

// planConn is the connection the plan is made on: on Postgres the one
// holding the exported snapshot, kept open for the run (the holder); on
// Redshift one from the pool.
func (s *Source) planConn(ctx context.Context) (*pgxpool.Conn, error) {
	if s.dialect == dialectRedshift {
		c, err := s.acquire(ctx)
		if err != nil {
			return nil, err
		}
		if err := s.execSimple(ctx, c, beginSQL(true)); err != nil {
			closeConn(ctx, c)
			return nil, s.errorf("postgres: starting a transaction: %s", describe(err))
		}
		return c, nil
	}
	if err := s.exportSnapshot(ctx, ""); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holder, nil
}

func (s *Source) releasePlanConn(c *pgxpool.Conn) {
	if s.dialect != dialectRedshift {
		return // the holder stays, in its transaction
	}
	ctx := context.Background()
	if err := s.execSimple(ctx, c, "COMMIT"); err != nil {
		closeConn(ctx, c)
		return
	}
	c.Release()
}

func (s *Source) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	s.mu.Lock()
	pool := s.pool
	s.mu.Unlock()
	if pool == nil {
		return nil, errors.New("postgres: the source is closed")
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return nil, s.errorf("postgres: connecting: %s: %w", describe(err), err)
	}
	s.mu.Lock()
	if c.Conn().PgConn().ParameterStatus("standard_conforming_strings") == "off" {
		s.backslash = true
	}
	s.mu.Unlock()
	return c, nil
}

// exportSnapshot opens the transaction whose snapshot the splits read and
// exports it. old, when set, is the snapshot found dead: a new one is
// exported only if no other reader did so already.
func (s *Source) exportSnapshot(ctx context.Context, old string) error {
	s.mu.Lock()
	if s.holder != nil && s.snapshot != old {
		s.mu.Unlock()
		return nil // exported already (by another split's retry)
	}
	prev := s.holder
	s.holder = nil
	s.mu.Unlock()
	if prev != nil {
		closeConn(ctx, prev)
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	var id string
	err = s.execSimple(ctx, c, beginSQL(false))
	if err == nil {
		var row [][]byte
		row, err = s.queryRow(ctx, c, "SELECT pg_export_snapshot()", true)
		if err == nil && len(row) == 1 {
			id = string(row[0])
		}
	}
	if err != nil || id == "" {
		closeConn(ctx, c)
		if err == nil {
			err = errors.New("no snapshot id")
		}
		return s.errorf("postgres: exporting a snapshot: %s: %w", describe(err), err)
	}
	s.mu.Lock()
	s.holder, s.snapshot = c, id
	s.mu.Unlock()
	if old != "" {
		s.warn("the connection holding the run's snapshot was lost; exported a new one: "+
			"the splits read from now on see the rows committed since", "old", old, "snapshot", id)
	}
	return nil
}

func (s *Source) currentSnapshot() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot
}

// execSimple runs statements with the simple protocol.
func (s *Source) execSimple(ctx context.Context, c *pgxpool.Conn, sql string) error {
	_, err := c.Conn().PgConn().Exec(ctx, sql).ReadAll()
	return err
}

// queryRow runs sql and returns its first row's values (copied), in the
// text format when text, else the source's wire format.
func (s *Source) queryRow(ctx context.Context, c *pgxpool.Conn, sql string, text bool) ([][]byte, error) {
	var formats []int16
	if !text && !s.textWire {
		formats = []int16{1}
	}
	rr := c.Conn().PgConn().ExecParams(ctx, sql, s.paramValues(sql), nil, nil, formats)
	var out [][]byte
	for rr.NextRow() {
		if out == nil {
			for _, v := range rr.Values() {
				if v == nil {
					out = append(out, nil)
				} else {
					out = append(out, append([]byte{}, v...))
				}
			}
		}
	}
	_, err := rr.Close()
	return out, err
}

// paramValues are the query's parameters when sql uses them.
func (s *Source) paramValues(sql string) [][]byte {
	if len(s.params) == 0 || s.query == "" || !strings.Contains(sql, s.query) {
		return nil
	}
	out := make([][]byte, len(s.params))
	for i, p := range s.params {
		if !s.nullPar[i] {
			out[i] = []byte(p)
		}
	}
	return out
}

// from is the relation read: the table, or the query as a subquery.
func (s *Source) from() string {
	if s.query != "" {
		return "(" + s.query + ") AS q"
	}
	return s.table.sql()
}

// describe asks the server for the relation's columns and types.
func (s *Source) describe(ctx context.Context, c *pgxpool.Conn) ([]column, error) {
	sql := "SELECT * FROM " + s.from()
	sd, err := c.Conn().PgConn().Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, s.errorf("postgres: reading %s: %s", s.what(), describe(err))
	}
	cols := make([]column, len(sd.Fields))
	var unknown []string
	for i, f := range sd.Fields {
		col := column{Name: f.Name, OID: f.DataTypeOID, Typmod: f.TypeModifier}
		col.Kind, col.Decoded = kindOf(f.DataTypeOID)
		if col.Kind == kArray {
			col.Elem, _ = kindOf(arrayElem[f.DataTypeOID])
		}
		if !col.Decoded {
			unknown = append(unknown, strconv.FormatUint(uint64(f.DataTypeOID), 10))
		}
		cols[i] = col
	}
	if len(unknown) > 0 && s.dialect == dialectPostgres {
		// Names for the notes, and which unknown types are arrays (read
		// as text[] rather than text).
		rr := c.Conn().PgConn().ExecParams(ctx, "SELECT oid, format_type(oid, NULL), typcategory = 'A' FROM pg_type WHERE oid IN ("+
			strings.Join(unknown, ",")+")", nil, nil, nil, nil)
		names := map[uint32]string{}
		arrays := map[uint32]bool{}
		for rr.NextRow() {
			v := rr.Values()
			oid, _ := strconv.ParseUint(string(v[0]), 10, 32)
			names[uint32(oid)] = string(v[1])
			arrays[uint32(oid)] = string(v[2]) == "t"
		}
		if _, err := rr.Close(); err != nil {
			return nil, s.errorf("postgres: reading type names: %s", describe(err))
		}
		for i := range cols {
			if !cols[i].Decoded {
				cols[i].Type = names[cols[i].OID]
				cols[i].Array = arrays[cols[i].OID]
			}
		}
	}
	for i := range cols {
		if cols[i].Type == "" {
			cols[i].Type = typeName(cols[i].OID)
		}
	}
	return cols, nil
}

func typeName(oid uint32) string {
	names := map[uint32]string{oidBool: "boolean", oidInt2: "smallint", oidInt4: "integer", oidInt8: "bigint", oidText: "text",
		oidVarchar: "character varying", oidBPChar: "character", oidName: "name", oidChar: `"char"`, oidFloat4: "real",
		oidFloat8: "double precision", oidNumeric: "numeric", oidUUID: "uuid", oidDate: "date", oidTimestamp: "timestamp without time zone",
		oidTimestamptz: "timestamp with time zone", oidJSON: "json", oidJSONB: "jsonb", oidSuper: "super", oidBytea: "bytea", oidTID: "tid"}
	if n, ok := names[oid]; ok {
		return n
	}
	if e, ok := arrayElem[oid]; ok {
		return typeName(e) + "[]"
	}
	return "type " + strconv.FormatUint(uint64(oid), 10)
}

func findColumn(cols []column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	for i, c := range cols {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

func columnNames(cols []column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// makePlan decides the key, its ranges and the cursor window, in the
// snapshot's transaction.
func (s *Source) makePlan(ctx context.Context, c *pgxpool.Conn, cols []column) (*plan, error) {
	p := &plan{For: s.readKey(), Estimate: -1, Unload: s.unload != nil}
	var conds []string
	if s.where != "" {
		conds = append(conds, "("+s.where+")")
	}
	if s.curCol != "" {
		i := findColumn(cols, s.curCol)
		if i < 0 {
			return nil, fmt.Errorf("postgres: cursor column %q is not a column of %s (columns: %s)", s.curCol, s.what(),
				strings.Join(columnNames(cols), ", "))
		}
		switch cols[i].Kind {
		case kInt16, kInt32, kInt64, kNumeric, kDate, kTimestamp, kTimestamptz, kText:
		default:
			return nil, fmt.Errorf("postgres: cursor column %q is %s: use an integer, numeric, date, timestamp or text column", s.curCol, cols[i].Type)
		}
		if !cols[i].Decoded {
			return nil, fmt.Errorf("postgres: cursor column %q is %s: use an integer, numeric, date, timestamp or text column", s.curCol, cols[i].Type)
		}
		col := quoteIdent(cols[i].Name)
		if v := s.get(keyCursor); v != "" {
			var cm committed
			if err := json.Unmarshal([]byte(v), &cm); err != nil {
				return nil, fmt.Errorf("postgres: the stored cursor %q is unreadable: %v", v, err)
			}
			p.CursorLo = cm.Value
			conds = append(conds, col+" > "+quoteLiteral(cm.Value, s.backslash))
		}
		// The run's upper bound, from its snapshot: rows changed during
		// the run (or before a resume) above it are the next run's.
		cast := "::text"
		if s.dialect == dialectRedshift {
			cast = "::varchar(65535)"
		}
		q := selectSpec{cols: []string{"max(" + col + ")" + cast}, from: s.from(), where: conds}
		row, err := s.queryRow(ctx, c, q.sql(), true)
		if err != nil {
			return nil, s.errorf("postgres: finding the cursor's upper bound: %s", describe(err))
		}
		if len(row) == 0 || row[0] == nil {
			p.Empty = true
			p.Hash = shortHash(p.For + "/empty/" + p.CursorLo)
			return p, nil
		}
		p.CursorHi = string(row[0])
		conds = append(conds, col+" <= "+quoteLiteral(p.CursorHi, s.backslash))
	}
	if s.query != "" || p.Unload {
		p.Hash = planHash(p)
		return p, nil
	}
	key, order, notNull, relkind, est, err := s.findKey(ctx, c, cols)
	if err != nil {
		return nil, err
	}
	p.Estimate = est
	if key < 0 {
		p.Hash = planHash(p)
		return p, nil
	}
	kc := cols[key]
	p.Key, p.KeyKind, p.Order = kc.Name, kc.Kind, order
	n := s.maxSplit
	if est >= 0 && relkind != "v" {
		n = int(min(int64(s.maxSplit), max(1, (est+int64(s.perSplit)-1)/int64(s.perSplit))))
	}
	col := quoteIdent(kc.Name)
	q := selectSpec{cols: []string{"min(" + col + ")", "max(" + col + ")"}, from: s.from(), where: conds}
	row, err := s.queryRow(ctx, c, q.sql(), false)
	if err != nil {
		return nil, s.errorf("postgres: finding the range of %s: %s", p.Key, describe(err))
	}
	if len(row) == 2 && row[0] != nil && row[1] != nil {
		lo, err1 := keyValue(kc.Kind, row[0], s.textWire)
		hi, err2 := keyValue(kc.Kind, row[1], s.textWire)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("postgres: reading the range of %s: %v", p.Key, err)
		}
		p.Ranges = splitRange(lo, hi, n)
	}
	if !notNull {
		p.Ranges = append(p.Ranges, keyRange{Nulls: true})
	}
	if len(p.Ranges) == 0 { // no rows at all
		p.Ranges = []keyRange{{Lo: 0, Hi: 0, HiIncl: true}}
	}
	p.Hash = planHash(p)
	return p, nil
}

func planHash(p *plan) string {
	b, _ := json.Marshal([]any{p.For, p.Key, p.Ranges, p.CursorLo, p.CursorHi})
	return shortHash(string(b))
}

// findKey picks the split key: split_by, or a one-column primary key of
// an integer, date or timestamp type. It returns the key's column index
// (-1: none), how its splits are ordered, whether it is NOT NULL, the
// relation's kind and its estimated rows (-1: unknown).
func (s *Source) findKey(ctx context.Context, c *pgxpool.Conn, cols []column) (int, string, bool, string, int64, error) {
	if s.dialect == dialectRedshift {
		if s.splitBy == "" {
			return -1, orderNone, false, "", -1, nil
		}
		i := findColumn(cols, s.splitBy)
		if i < 0 || !splitKind(cols[i].Kind) {
			return -1, "", false, "", -1, s.badSplitBy(cols, i)
		}
		// Redshift does not enforce keys, and has no ctid.
		return i, orderTies, false, "r", -1, nil
	}
	rel := quoteLiteral(s.table.sql(), s.backslash) + "::regclass"
	var name string
	if s.splitBy == "" {
		row, err := s.queryRow(ctx, c, "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "+
			"WHERE i.indrelid = "+rel+" AND i.indisprimary AND i.indnatts = 1", true)
		if err != nil {
			return -1, "", false, "", -1, s.errorf("postgres: reading the primary key of %s: %s", s.what(), describe(err))
		}
		if len(row) == 1 {
			name = string(row[0])
		}
	} else {
		i := findColumn(cols, s.splitBy)
		if i < 0 || !splitKind(cols[i].Kind) {
			return -1, "", false, "", -1, s.badSplitBy(cols, i)
		}
		name = cols[i].Name
	}
	row, err := s.queryRow(ctx, c, "SELECT c.relkind::text, c.reltuples::bigint::text FROM pg_class c WHERE c.oid = "+rel, true)
	if err != nil || len(row) != 2 {
		if err == nil {
			err = errors.New("no such relation")
		}
		return -1, "", false, "", -1, s.errorf("postgres: reading %s from pg_class: %s", s.what(), describe(err))
	}
	relkind := string(row[0])
	est, _ := strconv.ParseInt(string(row[1]), 10, 64)
	if relkind == "v" {
		est = -1
	}
	if name == "" {
		return -1, orderNone, false, relkind, est, nil
	}
	i := findColumn(cols, name)
	if i < 0 || !splitKind(cols[i].Kind) {
		if s.splitBy != "" {
			return -1, "", false, "", -1, s.badSplitBy(cols, i)
		}
		return -1, orderNone, false, relkind, est, nil // a primary key of another type: one split
	}
	row, err = s.queryRow(ctx, c, "SELECT a.attnotnull::text, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique "+
		"AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL AND i.indexprs IS NULL)::text "+
		"FROM pg_attribute a WHERE a.attrelid = "+rel+" AND a.attname = "+quoteLiteral(name, s.backslash), true)
	if err != nil {
		return -1, "", false, "", -1, s.errorf("postgres: reading the key of %s: %s", s.what(), describe(err))
	}
	notNull, unique := false, false
	if len(row) == 2 {
		notNull, unique = string(row[0]) == "true", string(row[1]) == "true"
	}
	order := orderTies
	switch {
	case unique:
		order = orderUnique
	case relkind == "r" || relkind == "m":
		order = orderTID
	}
	return i, order, notNull, relkind, est, nil
}

func (s *Source) badSplitBy(cols []column, i int) error {
	if i < 0 {
		return fmt.Errorf("postgres: split_by %q is not a column of %s (columns: %s)", s.splitBy, s.what(), strings.Join(columnNames(cols), ", "))
	}
	return fmt.Errorf("postgres: split_by %q is %s: use an integer, date or timestamp column", s.splitBy, cols[i].Type)
}

// Finish commits what a complete run allows: the cursor's new bound, or
// (without a cursor) that the run is finished, so a rerun finds it done.
func (s *Source) Finish(ctx context.Context) error {
	s.mu.Lock()
	p := s.plan
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	if s.curCol != "" {
		if p.CursorHi != "" {
			b, _ := json.Marshal(committed{Column: s.curCol, Value: p.CursorHi})
			s.env.State.Set(keyCursor, string(b))
		}
		s.env.State.Set(keyPlan, "")
		s.env.State.Set(keyUnload, "")
	} else {
		p.Finished = true
		s.savePlan(p)
	}
	s.env.State.Set(keyPositions, "")
	return nil
}

// isInvalidSnapshot reports an import of a snapshot whose exporting
// transaction ended.
func isInvalidSnapshot(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22023" && strings.Contains(pe.Message, "snapshot")
}

// PeekColumns names the relation's columns, as the server describes them
// (`backfill validate --source`): one connection, no row read.
func (s *Source) PeekColumns(ctx context.Context) ([]string, string, error) {
	if err := s.connect(ctx); err != nil {
		return nil, "", err
	}
	c, err := s.acquire(ctx)
	if err != nil {
		return nil, "", err
	}
	defer c.Release()
	cols, err := s.describe(ctx, c)
	if err != nil {
		return nil, "", err
	}
	where := "table " + s.table.String()
	if s.query != "" {
		where = "the query's result"
	}
	return columnNames(cols), where, nil
}

// PeekRemote reports that peeking connects to the server.
func (s *Source) PeekRemote() bool { return true }
