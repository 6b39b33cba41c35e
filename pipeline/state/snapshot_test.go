package state

import (
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble"
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
	keys := [][]byte{key(a, 0), key(a, many-1), key(b, 0), key(b, 9)}
	var seen []string
	err = snap.SeenMany(keys, func(int) bool { return true }, func(i int, ref RowRef) {
		seen = append(seen, fmt.Sprintf("%s@%d:%d", keys[i], ref.Split, ref.Row))
	})
	if want := []string{"2-000000@2:0", "2-000009@2:9"}; err != nil || fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("seen %v (%v); want %v", seen, err, want)
	}
}

// A sent entry says whether the current pass wrote it, and what the key
// had before the pass; the pass number outlives a reopening.
func TestSentEntriesKnowTheirPass(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snapshot")
	snap, err := OpenSnapshot(dir, false, false)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(snap *Snapshot, key string) (e Sent, found bool) {
		t.Helper()
		err := snap.SentMany([][]byte{[]byte(key)}, func(int) bool { return true }, func(_ int, s Sent) { e, found = s, true })
		if err != nil {
			t.Fatal(err)
		}
		return e, found
	}
	write := func(key string, h Hash, before *Hash) {
		t.Helper()
		wb := snap.NewBatch()
		wb.MarkSent([]byte(key), h, before)
		if err := wb.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := snap.StartPass(); err != nil { // pass 1
		t.Fatal(err)
	}
	write("a", Hash{1}, nil)
	write("b", Hash{1}, nil)
	if e, ok := lookup(snap, "a"); !ok || !e.InPass || e.HadBefore || e.Hash != (Hash{1}) {
		t.Fatalf("a in its pass: %+v %v", e, ok)
	}
	if err := snap.StartPass(); err != nil { // pass 2
		t.Fatal(err)
	}
	write("a", Hash{2}, &Hash{1})
	if e, ok := lookup(snap, "b"); !ok || e.InPass || e.Hash != (Hash{1}) {
		t.Fatalf("b, written by the pass before: %+v %v", e, ok)
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	if snap, err = OpenSnapshot(dir, false, false); err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if e, ok := lookup(snap, "a"); !ok || !e.InPass || !e.HadBefore || e.Before != (Hash{1}) || e.Hash != (Hash{2}) {
		t.Fatalf("a, changed in pass 2, after reopening: %+v %v", e, ok)
	}
	snap.AssumeNewPass() // what a preview of pass 3 sees
	if e, _ := lookup(snap, "a"); e.InPass {
		t.Fatalf("a in a preview of the next pass: %+v", e)
	}
	// An entry of a snapshot written before passes were numbered: a bare
	// hash, of no pass.
	if err := snap.db.Set(prefixed(prefixSent, []byte("c"), nil), []byte("0123456789abcdef"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if e, ok := lookup(snap, "c"); !ok || e.InPass || string(e.Hash[:]) != "0123456789abcdef" {
		t.Fatalf("a bare hash: %+v %v", e, ok)
	}
}

// BenchmarkSnapshotLookups compares a Get per key with SentMany's one
// walk in key order, over a snapshot of a million keys, for a batch of
// 8,192 neighbouring keys (a table read in key order) and of keys spread
// over the table.
func BenchmarkSnapshotLookups(b *testing.B) {
	const n, batch = 1_000_000, 8192
	snap, err := OpenSnapshot(filepath.Join(b.TempDir(), "snapshot"), false, false)
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	key := func(i int) []byte { return []byte(fmt.Sprintf("u%d", i)) }
	wb := snap.NewBatch()
	for i := range n {
		wb.MarkSent(key(i), Hash{byte(i)}, nil)
		if wb.Len() >= 1<<14 || i == n-1 {
			if err := wb.Commit(); err != nil {
				b.Fatal(err)
			}
			wb = snap.NewBatch()
		}
	}
	r := rand.New(rand.NewSource(1))
	keysOf := map[string]func() [][]byte{
		"neighbours": func() [][]byte {
			start, ks := r.Intn(n-batch), make([][]byte, batch)
			for i := range ks {
				ks[i] = key(start + i)
			}
			return ks
		},
		"spread": func() [][]byte {
			ks := make([][]byte, batch)
			for i := range ks {
				ks[i] = key(r.Intn(n))
			}
			return ks
		},
	}
	for _, name := range []string{"neighbours", "spread"} {
		b.Run(name+"/get", func(b *testing.B) {
			for range b.N {
				for _, k := range keysOf[name]() {
					v, closer, err := snap.db.Get(prefixed(prefixSent, k, nil))
					if err != nil || len(v) != len(Hash{}) {
						b.Fatal(err)
					}
					closer.Close()
				}
			}
		})
		b.Run(name+"/walk", func(b *testing.B) {
			for range b.N {
				found := 0
				if err := snap.SentMany(keysOf[name](), func(int) bool { return true }, func(int, Sent) { found++ }); err != nil || found != batch {
					b.Fatal(found, err)
				}
			}
		})
	}
}
