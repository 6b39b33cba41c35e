package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/state"
)

// deliveryLog feeds the run's delivery ledger (`ledger:`). A batch's rows
// are gathered as the sink reports them (receiptAccount: which rows, with
// their messageIds and HTTP status; the dead letters) and appended to the
// ledger when the batch is acknowledged, together with the tracker's ack,
// under a gate. The checkpointer closes the gate while it takes its
// snapshot and cuts the ledger's part, so the parts a checkpoint counts
// hold every row it counts, and the rows past its offsets they hold are
// exactly the ranges acknowledged ahead, which it records (see
// state.LedgerState). Without a ledger there is no deliveryLog: batches
// get a plain batchAccount, and sinks keep counts only.
type deliveryLog struct {
	w    *state.Ledger
	gate sync.RWMutex // read: a batch's rows and ack; write: a snapshot and cut
	// prior is what the ledger held, when the run started, of the rows
	// past the checkpoint's offsets (LedgerState.Ahead, without the splits
	// whose input changed): a resumed run reads and delivers them again,
	// but does not record them twice.
	prior map[string][][2]int64
}

// batchLedger is one batch's rows on their way into the ledger.
type batchLedger struct {
	rows state.LedgerRows
	skip [][2]int64 // ranges of the batch the ledger holds already
}

// forBatch returns what gathers the ledger rows of a batch of split's rows
// [start, end): nil when the ledger holds them all already.
func (d *deliveryLog) forBatch(split string, start, end int64) *batchLedger {
	var skip [][2]int64
	for _, r := range d.prior[split] {
		if r[1] <= start || r[0] >= end {
			continue
		}
		if r[0] <= start && r[1] >= end {
			return nil
		}
		skip = append(skip, r)
	}
	return &batchLedger{skip: skip}
}

// done appends an acknowledged batch's rows and lets ack record it, as
// one step for the checkpointer's snapshot.
func (d *deliveryLog) done(split string, bl *batchLedger, ack func()) {
	if len(bl.skip) > 0 {
		bl.rows.Drop(func(row int64) bool {
			for _, r := range bl.skip {
				if row >= r[0] && row < r[1] {
					return true
				}
			}
			return false
		})
	}
	d.gate.RLock()
	defer d.gate.RUnlock()
	d.w.Append(split, &bl.rows)
	ack()
}

// snapshot runs take (the tracker's snapshot) with every batch's rows and
// ack either wholly before it or wholly after, cuts the ledger's part, and
// returns the number of the last part cut.
func (d *deliveryLog) snapshot(take func()) int {
	d.gate.Lock()
	defer d.gate.Unlock()
	take()
	return d.w.Cut()
}

// ahead is what the checkpoint records of the rows past its offsets the
// ledger holds: the ranges acknowledged ahead now, and those an earlier
// run recorded that this one has not moved past. Ranges below a split's
// offset are counted by the checkpoint; a split done has none.
func (d *deliveryLog) ahead(now map[string][][2]int64, splits map[string]state.SplitState) map[string][][2]int64 {
	out := map[string][][2]int64{}
	add := func(id string, rs [][2]int64) {
		st, ok := splits[id]
		if !ok || st.Done {
			return
		}
		for _, r := range rs {
			if r[1] <= st.Offset {
				continue
			}
			r[0] = max(r[0], st.Offset)
			out[id] = append(out[id], r)
		}
	}
	for id, rs := range d.prior {
		add(id, rs)
	}
	for id, rs := range now {
		add(id, rs)
	}
	for id, rs := range out {
		out[id] = mergeRanges(rs)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// mergeRanges sorts ranges and joins those that touch or overlap.
func mergeRanges(rs [][2]int64) [][2]int64 {
	for i := 1; i < len(rs); i++ { // few ranges: an insertion sort
		for j := i; j > 0 && rs[j][0] < rs[j-1][0]; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// receiptAccount is the account of a batch whose rows go to the ledger: a
// batchAccount that also takes the sink's receipts
// (pipeline.ReceiptAccount).
type receiptAccount struct{ *batchAccount }

var _ pipeline.ReceiptAccount = receiptAccount{}

func (a receiptAccount) Receipt(status int, rows []int64, ids [][]byte) {
	a.led.rows.Deliver(status, rows, ids, time.Now())
}

// rejected gathers a dead-lettered row for the ledger, with the messageId
// of the message a sink rejected.
func (bl *batchLedger) rejected(r pipeline.Reject) {
	var id []byte
	if len(r.Message) > 0 {
		var m struct {
			MessageID string `json:"messageId"`
		}
		if json.Unmarshal(r.Message, &m) == nil && m.MessageID != "" {
			id = []byte(m.MessageID)
		}
	}
	bl.rows.Reject(r.Row, r.Stage, r.Status, id, time.Now())
}

// openLedger opens the run's delivery ledger, when the pipeline has one
// and the run keeps state (a preview keeps nothing). The parts written
// after the checkpoint are removed: their rows are read again.
func (r *Run) openLedger(ctx context.Context) error {
	if r.cfg.Ledger == "" || r.store.Location() == "" {
		return nil
	}
	var parts int
	var prior map[string][][2]int64
	if ls := r.cp.Ledger; ls != nil {
		parts = ls.Parts
		prior = map[string][][2]int64{}
		for id, rs := range ls.Ahead {
			if !r.plan.changed[id] {
				prior[id] = rs
			}
		}
	}
	w, err := state.OpenLedger(ctx, state.LedgerOptions{Where: r.cfg.Ledger, Name: r.cfg.Name, Run: state.RunID(r.cp),
		Shard: r.opts.Shard, Shards: r.opts.Shards, Parts: parts, Rows: r.opts.LedgerRows, Alloc: r.opts.Alloc})
	if err != nil {
		return fmt.Errorf("opening the ledger: %w", err)
	}
	r.deliveries = &deliveryLog{w: w, prior: prior}
	r.saver.deliveries = r.deliveries
	r.rep.Ledger = w.Location()
	return nil
}
