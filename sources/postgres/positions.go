package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A boundary is where a batch handed out ended: its End offset and the key
// of its last row (with the ctid for a key with ties, or how many rows of
// that key value the split has handed out). A reader resumed at offset
// End starts right after that row, without reading the rows before it.
//
// The engine acknowledges batches (and checkpoints their End) some time
// after they are handed out; a split keeps its last keptBoundaries
// boundaries, which covers the batches in flight many times over. Should
// the acknowledged offset be older than all of them, the reader starts
// from the oldest it has and skips the difference on the server (OFFSET),
// or from the split's start.
type boundary struct {
	Off  int64
	Key  int64
	Ties int64  // rows with this key value handed out (orderTies)
	TID  string // the last row's ctid (orderTID)
}

const keptBoundaries = 64

func (b boundary) MarshalJSON() ([]byte, error) {
	if b.TID != "" {
		return json.Marshal([]any{b.Off, b.Key, b.Ties, b.TID})
	}
	return json.Marshal([]int64{b.Off, b.Key, b.Ties})
}

func (b *boundary) UnmarshalJSON(data []byte) error {
	var a []any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keys are int64 (timestamps in microseconds): not through float64
	if err := dec.Decode(&a); err != nil {
		return err
	}
	if len(a) < 3 {
		return fmt.Errorf("boundary %s: want [offset, key, ties(, tid)]", data)
	}
	num := func(v any) (int64, error) {
		n, ok := v.(json.Number)
		if !ok {
			return 0, fmt.Errorf("boundary %s: %v is not a number", data, v)
		}
		return n.Int64()
	}
	var err error
	if b.Off, err = num(a[0]); err != nil {
		return err
	}
	if b.Key, err = num(a[1]); err != nil {
		return err
	}
	if b.Ties, err = num(a[2]); err != nil {
		return err
	}
	if len(a) > 3 {
		b.TID, _ = a[3].(string)
	}
	return nil
}

// loadPositions reads the boundaries a resumed run left.
func (s *Source) loadPositions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.positions = map[string][]boundary{}
	if v := s.get(keyPositions); v != "" {
		if err := json.Unmarshal([]byte(v), &s.positions); err != nil {
			s.positions = map[string][]boundary{}
			if s.env.Logger != nil {
				s.env.Logger.Warn("postgres: the stored split positions are unreadable; resumed splits skip their acknowledged rows on the server", "error", err)
			}
		}
	}
}

// resumePoint is the boundary to resume split at offset from: exact when
// its Off is offset, else the newest one before it; ok false when none.
func (s *Source) resumePoint(split string, offset int64) (boundary, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best boundary
	found := false
	for _, b := range s.positions[split] {
		if b.Off <= offset && (!found || b.Off > best.Off) {
			best, found = b, true
		}
	}
	return best, found
}

// record keeps a boundary of split, and puts the positions in the state
// (saved with the next checkpoint, which holds the offsets they serve).
func (s *Source) record(split string, b boundary) {
	s.mu.Lock()
	if s.positions == nil {
		s.positions = map[string][]boundary{}
	}
	l := append(s.positions[split], b)
	if len(l) > keptBoundaries {
		l = append(l[:0], l[len(l)-keptBoundaries:]...)
	}
	s.positions[split] = l
	data, _ := json.Marshal(s.positions)
	s.mu.Unlock()
	s.env.State.Set(keyPositions, string(data))
}
