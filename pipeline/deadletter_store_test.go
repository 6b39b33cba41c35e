package pipeline

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// partsStore keeps dead-letter parts in memory.
type partsStore struct{ parts map[int][]byte }

func (s *partsStore) PutDeadLetters(_ context.Context, _ string, part int, r io.ReadSeeker, size int64) error {
	data, err := io.ReadAll(r)
	if err == nil && int64(len(data)) != size {
		err = io.ErrUnexpectedEOF
	}
	s.parts[part] = data
	return err
}

func (s *partsStore) ReadDeadLetters(context.Context, string, int, func(io.Reader) error) error {
	return nil
}

func (s *partsStore) DeadLetterLocation(run string) string { return "mem://" + run }

// A part whose checkpoint failed to save is written again, whole, under the
// same number, so the stored parts hold every dead letter exactly once.
func TestDeadLetterCopiesNeverOverlap(t *testing.T) {
	d, err := openDeadLetters(filepath.Join(t.TempDir(), "dl.ndjson"), true, false, nil, func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	store := &partsStore{parts: map[int][]byte{}}
	c := &deadLetterCopier{store: store, file: d}
	cp := newCheckpoint("p", time.Now())
	reject := func(row int64) {
		if err := d.Write(context.Background(), "s", Reject{Row: row, Stage: "sink", Reason: "bad"}); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	save := func(saved bool) {
		end, err := c.before(cp)
		if err != nil {
			t.Fatal(err)
		}
		c.after(cp, end, saved)
	}
	reject(1)
	reject(2)
	save(false) // part 1 stored, its checkpoint not
	reject(3)
	save(true) // part 1 again, with rows 1-3
	save(true) // nothing new: no part
	reject(4)
	save(true)
	lines := func(b []byte) int { return bytes.Count(b, []byte("\n")) }
	if len(store.parts) != 2 || lines(store.parts[1]) != 3 || lines(store.parts[2]) != 1 || cp.DeadLetterParts != 2 {
		t.Fatalf("parts %d: 1 has %d lines, 2 has %d; checkpoint counts %d", len(store.parts), lines(store.parts[1]), lines(store.parts[2]), cp.DeadLetterParts)
	}
}
