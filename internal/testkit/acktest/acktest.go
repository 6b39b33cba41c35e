// Package acktest gives sink tests an account for each batch
// (pipeline.Account) that records what the sink said of its rows: how
// many were delivered, which were dead-lettered and why, and every
// batch's ack.
package acktest

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
)

// Recorder records the fates of the rows of every batch it watches.
type Recorder struct {
	Max int   // > 0: refuse dead letters past this many, as max_rejects does
	Err error // non-nil: refuse every dead letter with it
	// OnAck, when set, is called after each ack is recorded, with the
	// batch's key ("split[start:end]") and error, on the goroutine that
	// acked: a test acts on it (stops a run once a batch is delivered,
	// say) instead of sleeping or polling. It must not block for long.
	OnAck func(key string, err error)
	// WantReceipts, when set before Watch, makes each account keep a
	// delivery ledger (pipeline.ReceiptAccount): the sink then reports
	// which rows it delivered, with their messageIds (Receipts).
	WantReceipts bool

	mu        sync.Mutex
	receipts  []Receipt
	rejects   []pipeline.Reject
	delivered int64
	acks      map[string]int
	errs      map[string]error
	errList   []error // every ack's error, in order
}

// Watch gives b an account that records into r, and returns b.
func (r *Recorder) Watch(b *pipeline.Batch) *pipeline.Batch {
	a := &account{r: r, key: fmt.Sprintf("%s[%d:%d]", b.Split, b.Start, b.End), split: b.Split}
	if r.WantReceipts {
		b.SetAccount(receiptAccount{a})
	} else {
		b.SetAccount(a)
	}
	return b
}

type account struct {
	r     *Recorder
	key   string
	split string
}

// Receipt is one delivered row a sink reported (Recorder.WantReceipts).
type Receipt struct {
	Split     string
	Row       int64
	MessageID string
	Status    int
}

type receiptAccount struct{ *account }

func (a receiptAccount) Receipt(status int, rows []int64, ids [][]byte) {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for i, row := range rows {
		a.r.receipts = append(a.r.receipts, Receipt{Split: a.split, Row: row, MessageID: string(ids[i]), Status: status})
	}
}

// Receipts returns the delivered rows reported so far (WantReceipts).
func (r *Recorder) Receipts() []Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Receipt(nil), r.receipts...)
}

func (a *account) Delivered(n int) {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	a.r.delivered += int64(n)
}

func (a *account) DeadLetter(_ context.Context, rej pipeline.Reject) error {
	r := a.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.rejects = append(r.rejects, rej)
	if r.Max > 0 && len(r.rejects) > r.Max {
		return fmt.Errorf("too many rejects: %d", len(r.rejects))
	}
	return nil
}

func (a *account) Done(err error) {
	r := a.r
	r.mu.Lock()
	if r.acks == nil {
		r.acks, r.errs = map[string]int{}, map[string]error{}
	}
	r.acks[a.key]++
	if err != nil {
		r.errs[a.key] = err
		r.errList = append(r.errList, err)
	}
	r.mu.Unlock()
	if r.OnAck != nil {
		r.OnAck(a.key, err)
	}
}

// All returns the dead letters recorded so far.
func (r *Recorder) All() []pipeline.Reject {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]pipeline.Reject(nil), r.rejects...)
}

// Count is how many dead letters were recorded.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rejects)
}

// Delivered is how many rows the sink reported delivered.
func (r *Recorder) Delivered() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered
}

// Errs returns the error of every batch acked with one, by batch.
func (r *Recorder) Errs() map[string]error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.errs)
}

// Check fails t unless exactly batches batches were acked, each once; it
// returns how many were acked without an error and how many with one.
func (r *Recorder) Check(t testing.TB, batches int) (ok, failed int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.acks) != batches {
		t.Errorf("%d batches acked, want %d", len(r.acks), batches)
	}
	for k, n := range r.acks {
		if n != 1 {
			t.Errorf("batch %s acked %d times", k, n)
		}
	}
	return len(r.acks) - len(r.errs), len(r.errs)
}

// Notify gives b an account that sends its ack's error on the channel it
// returns, and counts nothing else; dead letters are refused.
func Notify(b *pipeline.Batch) <-chan error {
	ch := make(chan error, 1)
	b.SetAccount(notify(ch))
	return ch
}

type notify chan error

func (notify) Delivered(int) {}
func (notify) DeadLetter(context.Context, pipeline.Reject) error {
	return fmt.Errorf("no dead-letter file in this test")
}
func (n notify) Done(err error) { n <- err }

// AckOf says how many times the batch of key ("split[start:end]") was
// acked, and with what error.
func (r *Recorder) AckOf(key string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[key], r.errs[key]
}

// Acks counts every ack so far and lists the errors of those with one.
func (r *Recorder) Acks() (n int, errs []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.acks {
		n += k
	}
	return n, append([]error(nil), r.errList...)
}
