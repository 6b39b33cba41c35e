package engine

// With `sync.deleted`, a key the pass did not see gets a message (a
// "User Deleted" track, an identify with chosen traits) instead of being
// forgotten at once. The messages go to the sink after every split is
// read and before it closes, in batches of their own; a key is forgotten
// only when its message is acknowledged, so a run killed while sending
// them resends, at its resumption, the ones not acknowledged (under the
// same messageIds: key and the content it had).

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
	"github.com/backfillhq/backfill/sinks/message"
)

// deletedSplit names the batches of removed keys' messages.
const deletedSplit = "sync:removed"

const deletedBatchRows = 1000

const unfinished = "the run did not finish: the pass goes on at the next run"

// seenAll says why the pass cannot tell removed keys yet ("" when it can):
// every split must be read to its end, and every row read have a key.
func (r *Run) seenAll(ctx context.Context) string {
	s := r.sync
	switch {
	case r.failure() != nil || ctx.Err() != nil || r.runCtx.Err() != nil || len(r.workers.failedSplits()) > 0:
		return unfinished
	case r.workers.limitHit.Load():
		return "only some rows were read"
	}
	if n := s.base.Unkeyed + s.unkeyed.Load(); n > 0 {
		return fmt.Sprintf("%d rows were rejected before the sync step, so their keys are unknown and could look removed", n)
	}
	return ""
}

// sendDeleted sends the `deleted` message of every key the pass did not
// see, when it saw every split. It runs before the sink closes.
func (r *Run) sendDeleted(ctx context.Context) {
	s := r.sync
	if s == nil || len(r.cfg.Sync.Deleted) == 0 || !s.record || r.seenAll(ctx) != "" {
		return
	}
	s.deleting = true
	var keys, olds [][]byte
	var start int64
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		b, err := s.deletedBatch(start, keys, olds)
		if err != nil {
			return err
		}
		b.SetAccount(&deleteAccount{s: s, keys: keys, start: start, log: r.log, red: r.red})
		start += int64(len(keys))
		keys, olds = nil, nil
		return pipeline.Safely("sink", func() error { return r.built.Sink.Write(r.writeCtx, b) })
	}
	err := s.snap.Removed(nil, func(key, old []byte) error {
		keys, olds = append(keys, append([]byte(nil), key...)), append(olds, append([]byte(nil), old...))
		if len(keys) < deletedBatchRows {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		r.fail(fmt.Errorf("sending the messages of removed keys: %w", err))
	}
}

// deletedBatch builds the messages of removed keys: the primary key's
// paths get the key's values, the `deleted` paths their constants, and
// the messageId derives from the key and the content it had.
func (s *syncer) deletedBatch(start int64, keys, olds [][]byte) (*pipeline.Batch, error) {
	n := len(keys)
	values := make([][]json.RawMessage, len(s.cfg.PrimaryKey))
	for _, k := range keys {
		var vs []json.RawMessage
		if err := json.Unmarshal(k, &vs); err != nil || len(vs) != len(values) {
			return nil, fmt.Errorf("the sync snapshot holds key %s, not one of %d values: was the primary key changed? (--fresh rebuilds the snapshot)", k, len(values))
		}
		for j := range values {
			values[j] = append(values[j], vs[j])
		}
	}
	var fields []arrow.Field
	var cols []arrow.Array
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	add := func(name string, vals []json.RawMessage) {
		f, c := s.jsonOrString(name, vals)
		fields, cols = append(fields, f), append(cols, c)
	}
	for j, path := range s.cfg.PrimaryKey {
		add(path, values[j])
	}
	for _, e := range s.cfg.Deleted {
		v, err := json.Marshal(e.Value)
		if err != nil {
			return nil, fmt.Errorf("sync.deleted.%s: %w", e.Key, err)
		}
		same := make([]json.RawMessage, n)
		for i := range same {
			same[i] = v
		}
		add(e.Key, same)
	}
	ids := make([]json.RawMessage, n)
	var id []byte
	for i, k := range keys {
		id = message.AppendSyncID(id[:0], s.name, k, append([]byte("deleted:"), olds[i]...))
		ids[i], _ = json.Marshal(string(id))
	}
	add("messageId", ids)
	rec := array.NewRecord(arrow.NewSchema(fields, nil), cols, int64(n))
	return pipeline.NewBatch(deletedSplit, start, rec), nil
}

// jsonOrString makes a column of JSON values: a string column when every
// one is a string (a userId, a type), else a JSON column.
func (s *syncer) jsonOrString(name string, vals []json.RawMessage) (arrow.Field, arrow.Array) {
	strs := make([]string, len(vals))
	for i, v := range vals {
		if json.Unmarshal(v, &strs[i]) != nil {
			b := record.NewJSONBuilder(s.mem)
			defer b.Release()
			for _, v := range vals {
				record.AppendJSON(b, v)
			}
			return record.JSONField(name, true), b.NewArray()
		}
	}
	b := array.NewStringBuilder(s.mem)
	defer b.Release()
	b.AppendValues(strs, nil)
	return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}, b.NewArray()
}

// deleteAccount is what the sink reports a batch of removed keys'
// messages to. They are no rows read, so the run's account of rows does
// not count them; the sync report does.
type deleteAccount struct {
	s     *syncer
	keys  [][]byte
	start int64
	log   *slog.Logger
	red   *redact.Redactor

	mu       sync.Mutex
	rejected map[int64]bool
}

func (a *deleteAccount) Delivered(int) {}

func (a *deleteAccount) DeadLetter(_ context.Context, r pipeline.Reject) error {
	a.mu.Lock()
	if a.rejected == nil {
		a.rejected = map[int64]bool{}
	}
	a.rejected[r.Row-a.start] = true
	a.mu.Unlock()
	a.log.Warn("sync: the message of a removed key was refused; the key is kept and its message sent again by the next run",
		"key", string(a.keys[r.Row-a.start]), "status", r.Status, "reason", a.red.String(r.Reason))
	return nil
}

// Done forgets the keys whose messages are acknowledged.
func (a *deleteAccount) Done(err error) {
	if err != nil {
		a.s.deletesUnacked.Add(int64(len(a.keys)))
		return
	}
	wb := a.s.snap.NewBatch()
	a.mu.Lock()
	for i, k := range a.keys {
		if !a.rejected[int64(i)] {
			wb.Forget(k)
		}
	}
	refused := len(a.rejected)
	a.mu.Unlock()
	if err := wb.Commit(); err != nil {
		a.log.Error("sync: forgetting removed keys failed; their messages go again with the next run", "error", err)
		a.s.deletesUnacked.Add(int64(len(a.keys)))
		return
	}
	a.s.deletesUnacked.Add(int64(refused))
	a.s.removed.Add(int64(len(a.keys) - refused))
}

var _ pipeline.Account = (*deleteAccount)(nil)
