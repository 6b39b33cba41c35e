package state

import (
	"fmt"
	"path/filepath"
	"testing"
)

// ForgetSeenIn removes the marks of one split only, past the size of one
// write batch.
func TestForgetSeenInOneSplit(t *testing.T) {
	snap, err := OpenSnapshot(filepath.Join(t.TempDir(), "snapshot"), false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	const a, b, many = 1, 2, 70_000 // above the 65,536 deletes of one batch
	key := func(split, i int) []byte { return []byte(fmt.Sprintf("%d-%06d", split, i)) }
	wb := snap.NewBatch()
	for i := range many {
		wb.MarkSeen(key(a, i), RowRef{Split: a, Row: int64(i)})
	}
	for i := range 10 {
		wb.MarkSeen(key(b, i), RowRef{Split: b, Row: int64(i)})
	}
	if err := wb.Commit(); err != nil {
		t.Fatal(err)
	}
	n, err := snap.ForgetSeenIn(a)
	if err != nil || n != many {
		t.Fatalf("forgot %d (%v); want %d", n, err, many)
	}
	for _, c := range []struct {
		key  []byte
		seen bool
	}{{key(a, 0), false}, {key(a, many-1), false}, {key(b, 0), true}, {key(b, 9), true}} {
		ref, seen, err := snap.Seen(c.key, nil)
		if err != nil || seen != c.seen {
			t.Errorf("%s: seen %v (%+v, %v); want %v", c.key, seen, ref, err, c.seen)
		}
	}
}
