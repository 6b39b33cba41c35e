package pipeline

import (
	"github.com/apache/arrow/go/v15/arrow"
)

// Batch is a contiguous range of one split's rows on its way through the
// pipeline. It accounts for every row in [Start, End): each is either in
// Record (its offset in Rows), in Rejects, or counted in Filtered.
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

	ack func(error)
}

// Reject is one row that cannot be delivered, and why. It is written to the
// dead-letter file.
type Reject struct {
	Row    int64  // split row offset
	Stage  string // "source", "transform:NAME", "sink"
	Column string // the offending column, when one is to blame
	Reason string
	// Raw is the row as read (a CSV line, an NDJSON line), when the record
	// could not be built from it; Message is the encoded message, when the
	// sink rejected it.
	Raw     string
	Message []byte
	Status  int    // HTTP status, for a sink rejection
	Body    string // HTTP response body, for a sink rejection
}

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

// SetAck installs the callback that Ack calls. The runner sets it.
func (b *Batch) SetAck(fn func(error)) { b.ack = fn }

// Ack reports that every row of the batch is durable (err == nil), or that
// delivery failed for good. A sink calls it exactly once per batch it
// accepted.
func (b *Batch) Ack(err error) {
	if b.ack != nil {
		fn := b.ack
		b.ack = nil
		fn(err)
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
