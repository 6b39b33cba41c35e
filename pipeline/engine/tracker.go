package engine

import (
	"fmt"
	"sync"

	"github.com/backfillhq/backfill/pipeline/state"
)

// tracker keeps, per split, the highest contiguous acknowledged row. Batches
// are registered in read order and may be acknowledged in any order; the
// offset only advances over a prefix of acknowledged batches, so a
// checkpoint never records a row that is not durable. It sums the fates of
// the rows the offsets advanced over, for the checkpoint's account.
type tracker struct {
	mu     sync.Mutex
	splits map[string]*splitProgress
	acked  state.Fates // of the rows offsets advanced over, this run
	done   int         // splits whose every row read is acknowledged
	dirty  bool
}

type splitProgress struct {
	offset  int64 // rows [0, offset) acknowledged
	next    int64 // where the next batch must start
	pending []*pendingRange
	eof     bool
	failed  error
	done    bool // read to its end and every row acknowledged
}

type pendingRange struct {
	start, end int64
	acked      bool
	fates      state.Fates
}

func newTracker() *tracker { return &tracker{splits: map[string]*splitProgress{}} }

// open starts tracking a split read from offset.
func (t *tracker) open(split string, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.splits[split] = &splitProgress{offset: offset, next: offset}
}

// register records a batch [start, end).
func (t *tracker) register(split string, start, end int64) (*pendingRange, error) {
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
	return r, nil
}

// ack marks r done with its rows' fates and advances the split's offset
// over the acknowledged prefix.
func (t *tracker) ack(split string, r *pendingRange, f state.Fates) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := t.splits[split]
	r.acked, r.fates = true, f
	n := 0
	for n < len(sp.pending) && sp.pending[n].acked {
		sp.offset = sp.pending[n].end
		t.acked = t.acked.Add(sp.pending[n].fates)
		n++
	}
	if n > 0 {
		sp.pending = append(sp.pending[:0], sp.pending[n:]...)
		t.dirty = true
		t.countDone(sp)
	}
}

// fail records that r will not be acknowledged: the split cannot finish.
func (t *tracker) fail(split string, _ *pendingRange, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp := t.splits[split]; sp.failed == nil {
		sp.failed = err
	}
}

// finish marks a split read to its end.
func (t *tracker) finish(split string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp := t.splits[split]; sp != nil {
		sp.eof = true
		t.dirty = true
		t.countDone(sp)
	}
}

func (t *tracker) countDone(sp *splitProgress) {
	if !sp.done && sp.eof && len(sp.pending) == 0 && sp.failed == nil {
		sp.done = true
		t.done++
	}
}

// snapshot returns every tracked split's durable state and the fates of
// the rows acknowledged so far, and whether any changed since the last
// snapshot. With ahead, it also returns, per split, the row ranges
// acknowledged past its offset (batches done out of order), merged: a
// delivery ledger holds their rows already.
func (t *tracker) snapshot(ahead bool) (map[string]state.SplitState, state.Fates, bool, map[string][][2]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]state.SplitState, len(t.splits))
	var rs map[string][][2]int64
	if ahead {
		rs = map[string][][2]int64{}
	}
	for id, sp := range t.splits {
		out[id] = state.SplitState{Offset: sp.offset, Done: sp.done}
		if !ahead {
			continue
		}
		var ranges [][2]int64
		for _, p := range sp.pending {
			if !p.acked || p.end == p.start {
				continue
			}
			if n := len(ranges); n > 0 && ranges[n-1][1] == p.start {
				ranges[n-1][1] = p.end
			} else {
				ranges = append(ranges, [2]int64{p.start, p.end})
			}
		}
		if len(ranges) > 0 {
			rs[id] = ranges
		}
	}
	changed := t.dirty
	t.dirty = false
	return out, t.acked, changed, rs
}

// splitsDone counts the splits whose every row is acknowledged.
func (t *tracker) splitsDone() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
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
