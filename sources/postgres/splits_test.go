package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
)

// A value with no Arrow (or JSON) form rejects its row, with the column
// and the reason, and the split goes on.
func TestBadValuesRejectTheirRows(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE bad (id int PRIMARY KEY, d date, ts timestamptz, n numeric, f float8[])`,
		`INSERT INTO bad VALUES
		 (1, '2024-01-01', '2024-01-01 00:00:00+00', 1.5, '{1}'),
		 (2, 'infinity', now(), 1, NULL),
		 (3, NULL, '-infinity', 1, NULL),
		 (4, NULL, NULL, 'NaN', NULL),
		 (5, NULL, NULL, 1e400, NULL),
		 (6, NULL, NULL, 1e-400, NULL),
		 (7, NULL, NULL, NULL, '{1,NaN}'),
		 (8, '2024-01-08', NULL, -2, NULL)`)
	for _, text := range []bool{false, true} {
		env := newEnv(t)
		src := d.source(t, env, "table: bad\nstream: cursor")
		src.textWire = text
		rows, rejects := readAll(t, src, nil, 3)
		if text { // arrays come through to_json there, which writes NaN as "NaN"
			sameIDs(t, ids(t, rows), []int64{1, 6, 7, 8})
		} else {
			sameIDs(t, ids(t, rows), []int64{1, 6, 8})
		}
		got := map[int64]string{}
		for _, r := range rejects {
			var v map[string]any
			if err := json.Unmarshal(r.Values, &v); err != nil {
				t.Fatalf("reject values %s: %v", r.Values, err)
			}
			got[int64(v["id"].(float64))] = r.Column + ": " + r.Reason
			if r.Stage != "source" {
				t.Errorf("reject stage %q", r.Stage)
			}
		}
		want := map[int64]string{
			2: `d: column "d": date is infinity`,
			3: `ts: column "ts": timestamp is -infinity`,
			4: `n: column "n": numeric NaN`,
			5: `n: column "n": numeric 1`,
			7: `f: column "f": array element NaN`,
		}
		if text {
			delete(want, 7)
		}
		for id, w := range want {
			if !strings.HasPrefix(got[id], w) {
				t.Errorf("text %v: row %d rejected as %q, want %q...", text, id, got[id], w)
			}
		}
	}
}

// A table is read in key ranges over parallel connections that all read
// the snapshot exported when the run planned: rows inserted, updated or
// deleted by another connection during the run do not show.
func TestParallelSplitsReadOneSnapshot(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	// Even ids only, so that writes can land inside every range.
	d.exec(t, `CREATE TABLE events (id bigint PRIMARY KEY, name text NOT NULL)`,
		`INSERT INTO events SELECT 2*g, 'e' || g FROM generate_series(1, 20000) g`, `ANALYZE events`)
	env := newEnv(t)
	src := d.source(t, env, "table: public.events\nmax_splits: 4\nrows_per_split: 1000")
	src.SetColumns(pipeline.AllColumns)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 4 {
		t.Fatalf("%d splits, want 4: %v", len(splits), splits)
	}
	if src.currentSnapshot() == "" {
		t.Fatal("no exported snapshot")
	}
	// Read the first batch of every split, write from another connection,
	// then read the rest.
	var mu sync.Mutex
	var all []int64
	readers := make([]pipeline.RecordReader, len(splits))
	collect := func(b *pipeline.Batch) {
		defer b.Release()
		col := b.Record.Column(0)
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < col.Len(); i++ {
			var v int64
			fmt.Sscan(col.ValueStr(i), &v)
			all = append(all, v)
		}
	}
	for i, sp := range splits {
		rd, err := src.Open(context.Background(), sp, pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id", "name"}}, BatchRows: 500})
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		readers[i] = rd
		b, err := rd.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		collect(b)
	}
	d.exec(t, `INSERT INTO events SELECT 2*g+1, 'new' FROM generate_series(1, 20000) g`,
		`DELETE FROM events WHERE id % 10 = 0`, `UPDATE events SET name = 'changed' WHERE id % 4 = 2`)
	var wg sync.WaitGroup
	for i, rd := range readers {
		wg.Add(1)
		go func(i int, rd pipeline.RecordReader) {
			defer wg.Done()
			for {
				b, err := rd.Next(context.Background())
				if err != nil {
					if err.Error() != "EOF" {
						t.Errorf("split %d: %v", i, err)
					}
					return
				}
				collect(b)
			}
		}(i, rd)
	}
	wg.Wait()
	want := make([]int64, 0, 20000)
	for g := int64(1); g <= 20000; g++ {
		want = append(want, 2*g)
	}
	sortInts(all)
	sameIDs(t, all, want)
}

func sortInts(l []int64) { sort.Slice(l, func(i, j int) bool { return l[i] < l[j] }) }
