package pipeline

import (
	"fmt"
	"sync"
)

// tracker keeps, per split, the highest contiguous acknowledged row. Batches
// are registered in read order and may be acknowledged in any order; the
// offset only advances over a prefix of acknowledged batches, so a
// checkpoint never records a row that is not durable.
type tracker struct {
	mu     sync.Mutex
	splits map[string]*splitProgress
	dirty  bool
}

type splitProgress struct {
	offset  int64 // rows [0, offset) acknowledged
	next    int64 // where the next batch must start
	pending []*pendingRange
	eof     bool
	failed  error
}

type pendingRange struct {
	start, end int64
	acked      bool
}

func newTracker() *tracker { return &tracker{splits: map[string]*splitProgress{}} }

// open starts tracking a split read from offset.
func (t *tracker) open(split string, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.splits[split] = &splitProgress{offset: offset, next: offset}
}

// register records a batch [start, end) and returns its acknowledgement.
func (t *tracker) register(split string, start, end int64) (func(error), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := t.splits[split]
	if sp == nil {
		return nil, fmt.Errorf("internal error: split %s not opened", split)
	}
	if start != sp.next || end < start {
		return nil, fmt.Errorf("source bug: split %s returned rows [%d,%d) but %d was expected next", split, start, end, sp.next)
	}
	sp.next = end
	r := &pendingRange{start: start, end: end}
	sp.pending = append(sp.pending, r)
	return func(err error) { t.ack(split, r, err) }, nil
}

func (t *tracker) ack(split string, r *pendingRange, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := t.splits[split]
	if err != nil {
		if sp.failed == nil {
			sp.failed = err
		}
		return
	}
	r.acked = true
	n := 0
	for n < len(sp.pending) && sp.pending[n].acked {
		sp.offset = sp.pending[n].end
		n++
	}
	if n > 0 {
		sp.pending = append(sp.pending[:0], sp.pending[n:]...)
		t.dirty = true
	}
}

// finish marks a split read to its end.
func (t *tracker) finish(split string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp := t.splits[split]; sp != nil {
		sp.eof = true
		t.dirty = true
	}
}

// snapshot returns every tracked split's durable state, and whether any
// changed since the last snapshot.
func (t *tracker) snapshot() (map[string]SplitState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]SplitState, len(t.splits))
	for id, sp := range t.splits {
		out[id] = SplitState{Offset: sp.offset, Done: sp.eof && len(sp.pending) == 0 && sp.failed == nil}
	}
	changed := t.dirty
	t.dirty = false
	return out, changed
}

// unacked counts rows registered but not yet acknowledged.
func (t *tracker) unacked() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, sp := range t.splits {
		n += sp.next - sp.offset
	}
	return n
}
