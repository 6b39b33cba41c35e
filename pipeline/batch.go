package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/apache/arrow/go/v15/arrow"
)

// Batch is a contiguous range of one split's rows on its way through the
// pipeline. It accounts for every row in [Start, End): each is either in
// Record (its offset in Rows), in Rejects, or counted in Filtered. Once a
// sink has it, the sink tells the batch's Account what became of the rows
// in Record.
type Batch struct {
	Split string // Split.ID the rows come from
	Start int64  // first row offset this batch accounts for
	End   int64  // one past the last row offset

	// Record holds the surviving rows; it may be nil when none survive.
	// The Batch owns one reference: whoever drops the Batch releases it.
	Record arrow.Record
	// Rows[i] is the split row offset of Record row i. Nil means the rows
	// are contiguous from Start (Rows[i] == Start+i).
	Rows []int64

	Rejects  []Reject // rows turned away with a reason, in any stage
	Filtered int64    // rows dropped on purpose by a filter

	account  Account
	receipts ReceiptAccount // account, when it keeps a delivery ledger
	acked    bool
}

// Reject is one row that cannot be delivered, and why. It is written to the
// dead-letter file.
type Reject struct {
	Row    int64  // split row offset
	Stage  string // "source", "transform:NAME", "sink"
	Column string // the offending column, when one is to blame
	Reason string
	// What the row held, as much as the stage knows: Raw is the row as
	// read (a CSV line, an NDJSON line) when the record could not be
	// built from it; Values its columns as a JSON object, when a
	// transform rejected it; Message the encoded message, when the sink
	// did.
	Raw     string
	Values  json.RawMessage
	Message []byte
	Status  int    // HTTP status, for a sink rejection
	Body    string // HTTP response body, for a sink rejection
}

// Account is told what becomes of a batch's rows once a sink has the
// batch. The engine gives every batch one; sinks call it through the
// batch (Delivered, DeadLetter, Ack), each row once.
type Account interface {
	// Delivered counts n rows as at the destination (a 2xx, an fsync).
	Delivered(n int)
	// DeadLetter sets one row aside for good. When it returns nil the row
	// is in the dead-letter file; an error (the file cannot be written,
	// max_rejects is reached, on_error: stop) is permanent.
	DeadLetter(ctx context.Context, r Reject) error
	// Done ends the batch, once: nil when each of its rows is delivered
	// or dead-lettered (rows not counted yet count as delivered), else
	// why not; the rows not counted then stay unacknowledged.
	Done(err error)
}

// ReceiptAccount is an Account that keeps a delivery ledger: which rows
// were delivered, with their messageIds, not only how many. The engine
// gives a batch one only when the pipeline has a `ledger`; otherwise
// Batch.WantsReceipts is false and a sink keeps and reports counts alone,
// as before, at no extra cost.
type ReceiptAccount interface {
	Account
	// Receipt records delivered rows: rows[i] is one's split row offset,
	// ids[i] the messageId its message carried (valid only during the
	// call), status the HTTP status that acknowledged them (0: there is
	// none, an fsync). It does not count them: Batch.DeliveredRows calls
	// it, then Delivered.
	Receipt(status int, rows []int64, ids [][]byte)
}

// ErrStopped is wrapped by the errors of batches a sink abandoned because
// the run is stopping (a signal): their rows stay unacknowledged, to be
// sent on resume. It is not a failure of the run.
var ErrStopped = errors.New("stopped before delivery")

// NewBatch makes a batch for rows [start, start+n) of split held in rec.
func NewBatch(split string, start int64, rec arrow.Record) *Batch {
	b := &Batch{Split: split, Start: start, Record: rec}
	if rec != nil {
		b.End = start + rec.NumRows()
	} else {
		b.End = start
	}
	return b
}

// NumRows is the number of rows still in the record.
func (b *Batch) NumRows() int64 {
	if b.Record == nil {
		return 0
	}
	return b.Record.NumRows()
}

// Row returns the split row offset of record row i.
func (b *Batch) Row(i int) int64 {
	if b.Rows == nil {
		return b.Start + int64(i)
	}
	return b.Rows[i]
}

// SetAccount installs the account the batch reports to. The engine sets
// it before the sink has the batch; tests set their own.
func (b *Batch) SetAccount(a Account) {
	b.account = a
	b.receipts, _ = a.(ReceiptAccount)
}

// WantsReceipts says whether the batch's account keeps a delivery ledger:
// a sink then reports its delivered rows with DeliveredRows (which rows,
// their messageIds), else with Delivered (how many). A sink asks once per
// batch, and keeps what receipts need only when it is true.
func (b *Batch) WantsReceipts() bool { return b.receipts != nil }

// DeliveredRows reports rows as delivered, as Delivered(len(rows)) does,
// telling an account that keeps a ledger which they are (see
// ReceiptAccount.Receipt).
func (b *Batch) DeliveredRows(status int, rows []int64, ids [][]byte) {
	if b.receipts != nil && len(rows) > 0 {
		b.receipts.Receipt(status, rows, ids)
	}
	b.Delivered(len(rows))
}

// Delivered reports n of the batch's rows as delivered.
func (b *Batch) Delivered(n int) {
	if b.account != nil && n > 0 {
		b.account.Delivered(n)
	}
}

// DeadLetter sets one of the batch's rows aside (see Account.DeadLetter).
func (b *Batch) DeadLetter(ctx context.Context, r Reject) error {
	if b.account == nil {
		return fmt.Errorf("%s row %d cannot be delivered (%s) and there is no dead-letter file", b.Split, r.Row, r.Reason)
	}
	return b.account.DeadLetter(ctx, r)
}

// Ack ends the batch (see Account.Done). A sink calls it exactly once per
// batch it accepted; later calls do nothing.
func (b *Batch) Ack(err error) {
	if b.acked {
		return
	}
	b.acked = true
	if b.account != nil {
		b.account.Done(err)
	}
}

// Release drops the batch's record reference.
func (b *Batch) Release() {
	if b.Record != nil {
		b.Record.Release()
		b.Record = nil
	}
}

// ReplaceRecord swaps in a new record with the same rows (a transform that
// adds, removes or rewrites columns) and releases the old one.
func (b *Batch) ReplaceRecord(rec arrow.Record) {
	if b.Record != nil && b.Record != rec {
		b.Record.Release()
	}
	b.Record = rec
}
