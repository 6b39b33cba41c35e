package state

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline"
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
	d, err := OpenDeadLetters(filepath.Join(t.TempDir(), "dl.ndjson"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	store := &partsStore{parts: map[int][]byte{}}
	c, err := NewDeadLetterCopier(store, d)
	if err != nil {
		t.Fatal(err)
	}
	cp := NewCheckpoint("p", time.Now())
	reject := func(row int64) {
		if _, err := d.Write("s", pipeline.Reject{Row: row, Stage: "sink", Reason: "bad"}); err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	save := func(saved bool) {
		end, err := c.Before(context.Background(), cp)
		if err != nil {
			t.Fatal(err)
		}
		c.After(cp, end, saved)
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

// A resumed run rejects again the rows it reads again (those past the
// checkpoint's offsets); each is kept once, however often the run is
// retried. Rows a resumed run cannot meet again are not remembered.
func TestDeadLettersKeepARowOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dl.ndjson")
	cp := NewCheckpoint("p", time.Now())
	cp.Splits["a"] = SplitState{Offset: 10}
	cp.Splits["done"] = SplitState{Offset: 5, Done: true}
	rows := []struct {
		split string
		row   int64
		stage string
	}{{"a", 3, "source"}, {"a", 12, "sink"}, {"a", 12, "transform:timestamp"}, {"b", 0, "sink"}, {"done", 1, "sink"}}
	for run := 0; run < 4; run++ {
		d, err := OpenDeadLetters(path, run == 0, cp.Pending)
		if err != nil {
			t.Fatal(err)
		}
		wrote := 0
		for _, r := range rows {
			ok, err := d.Write(r.split, pipeline.Reject{Row: r.row, Stage: r.stage, Reason: "bad"})
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				wrote++
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		// The first run writes all 5; later ones only the two rows a
		// resume never reads again, which these runs meet anyway.
		if want := map[bool]int{true: 5, false: 2}[run == 0]; wrote != want {
			t.Fatalf("run %d wrote %d dead letters, want %d", run, wrote, want)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counter, lines, distinct := NewRowCounter(), 0, 0
	if err := ScanDeadLetters(path, f, func(l *DeadLetterLine) {
		lines++
		if counter.Add(l) {
			distinct++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if lines != 5+3*2 || distinct != 5 {
		t.Fatalf("%d lines, %d distinct rows; want 11 and 5", lines, distinct)
	}
}
