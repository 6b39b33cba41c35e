package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline"
)

// stopAfter plans a run and reads the given split for n batches, as a run
// killed after acknowledging them; it returns the rows read and the
// state the checkpoint would keep (the split's offset is the last batch's
// End).
func stopAfter(t *testing.T, d db, body string, split, n, batch int) (*testEnv, []pipeline.Split, []row) {
	t.Helper()
	env := newEnv(t)
	src := d.source(t, env, body)
	src.SetColumns(pipeline.AllColumns)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := readSplit(t, src, splits[split], pipeline.ReadOptions{BatchRows: batch}, n)
	if err != nil {
		t.Fatal(err)
	}
	src.Close() // the run dies: its snapshot with it
	return env, splits, rows
}

// resume is the next run on the same state: it reads split from offset
// to its end and returns the statements it opened with.
func resume(t *testing.T, d db, prev *testEnv, body string, split string, offset int64, batch int) ([]row, []string, *testEnv) {
	t.Helper()
	env := newEnv(t)
	env.state = pipeline.NewMemoryState(prev.state.Copy(), nil)
	src := d.source(t, env, body)
	var mu sync.Mutex
	var stmts []string
	src.trace = func(_, sql string) { mu.Lock(); stmts = append(stmts, sql); mu.Unlock() }
	src.SetColumns(pipeline.AllColumns)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range splits {
		if sp.ID == split {
			rows, _, err := readSplit(t, src, sp, pipeline.ReadOptions{Offset: offset, BatchRows: batch}, 0)
			if err != nil {
				t.Fatal(err)
			}
			return rows, stmts, env
		}
	}
	t.Fatalf("split %s is not planned on resume (%v)", split, splits)
	return nil, nil, nil
}

// A resumed run starts each split after its last acknowledged key: the
// rows before it are not read again (not even skipped on the server), and
// rows deleted before the key meanwhile do not shift the offsets of the
// rows after it.
func TestResumeAfterTheLastAcknowledgedKey(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, v text)`,
		`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10000) g`, `ANALYZE t`)
	for _, stream := range []string{"copy", "cursor"} {
		t.Run(stream, func(t *testing.T) {
			body := "table: t\nmax_splits: 2\nrows_per_split: 1000\nstream: " + stream
			prev, splits, first := stopAfter(t, d, body, 0, 3, 100)
			if len(first) != 300 {
				t.Fatalf("first run read %d rows", len(first))
			}
			lastKey := idOf(t, first[len(first)-1])
			d.exec(t, `DELETE FROM t WHERE id <= 50`) // before the key: must not shift what follows
			defer d.exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g`)
			rows, stmts, _ := resume(t, d, prev, body, splits[0].ID, 300, 100)
			if len(stmts) != 1 || !strings.Contains(stmts[0], `"id" > 300`) || strings.Contains(stmts[0], "OFFSET") {
				t.Fatalf("resumed with %q, want a start after key %d and no OFFSET", stmts, lastKey)
			}
			if idOf(t, rows[0]) != lastKey+1 || rows[0].off != 300 {
				t.Fatalf("resumed at %s (offset %d), want id %d at offset 300", rows[0].json, rows[0].off, lastKey+1)
			}
			for i, r := range rows {
				if idOf(t, r) != lastKey+1+int64(i) || r.off != 300+int64(i) {
					t.Fatalf("row %d: %s at offset %d", i, r.json, r.off)
				}
			}
		})
	}
}

func idOf(t *testing.T, r row) int64 {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.json), &m); err != nil {
		t.Fatal(err)
	}
	return int64(m["id"].(float64))
}

// A key with ties (split_by a column that is not unique) resumes exactly
// too: on a table after (key, ctid), on a view (no ctid) from the key's
// first row, dropping the ties already handed out. Every row is read once
// across the two runs, at the same offsets.
func TestResumeAKeyWithTies(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE g (id int PRIMARY KEY, grp int NOT NULL, at timestamptz NOT NULL)`,
		`INSERT INTO g SELECT i, i / 7, timestamptz '2024-01-01' + (i / 13) * interval '1 minute' FROM generate_series(1, 3000) i`,
		`ANALYZE g`, `CREATE VIEW gv AS SELECT * FROM g`)
	for _, c := range []struct{ name, body, order string }{
		{"table", "table: g\nsplit_by: grp", orderTID},
		{"view", "table: gv\nsplit_by: grp", orderTies},
		{"timestamp", "table: g\nsplit_by: at", orderTID},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := c.body + "\nmax_splits: 3\nrows_per_split: 500\nstream: cursor"
			prev, splits, first := stopAfter(t, d, body, 1, 2, 50) // 100 rows: a boundary inside a group of 7 (and 13)
			var p plan
			json.Unmarshal([]byte(prev.state.Copy()[keyPlan]), &p)
			if p.Order != c.order {
				t.Fatalf("order %q, want %q", p.Order, c.order)
			}
			// Every row of the split, read whole in one go, for reference.
			whole, _, _ := resume(t, d, prev, body, splits[1].ID, 0, 50)
			rows, stmts, _ := resume(t, d, prev, body, splits[1].ID, 100, 50)
			if strings.Contains(stmts[0], "OFFSET") {
				t.Errorf("resumed with OFFSET: %s", stmts[0])
			}
			got := append(append([]row{}, first...), rows...)
			if len(got) != len(whole) {
				t.Fatalf("%d rows over two runs, want %d", len(got), len(whole))
			}
			for i := range whole {
				if got[i].json != whole[i].json || got[i].off != whole[i].off {
					t.Fatalf("row %d: %d %s, want %d %s", i, got[i].off, got[i].json, whole[i].off, whole[i].json)
				}
			}
		})
	}
}

// When the acknowledged offset is older than the boundaries a split kept
// (more batches in flight than it keeps), the reader starts from the
// newest boundary before it and skips the rest on the server; with none,
// from the split's start.
func TestResumeWithoutTheExactBoundary(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id bigint PRIMARY KEY)`, `INSERT INTO t SELECT g FROM generate_series(1, 1000) g`)
	body := "table: t\nmax_splits: 1"
	prev, splits, _ := stopAfter(t, d, body, 0, 4, 100)
	// Keep the boundary at 200 only: resume at 350.
	var pos map[string][]boundary
	json.Unmarshal([]byte(prev.state.Copy()[keyPositions]), &pos)
	pos[splits[0].ID] = pos[splits[0].ID][1:2]
	b, _ := json.Marshal(pos)
	prev.state.Set(keyPositions, string(b))
	rows, stmts, env := resume(t, d, prev, body, splits[0].ID, 350, 100)
	if !strings.Contains(stmts[0], `"id" > 200`) || !strings.Contains(stmts[0], "OFFSET 150") {
		t.Fatalf("statement %s", stmts[0])
	}
	if idOf(t, rows[0]) != 351 || len(rows) != 650 {
		t.Fatalf("resumed at %s, %d rows", rows[0].json, len(rows))
	}
	if !strings.Contains(env.logs.String(), "older key") {
		t.Errorf("no warning:\n%s", env.logs.String())
	}
	// No boundary at all.
	prev.state.Set(keyPositions, "")
	rows, stmts, _ = resume(t, d, prev, body, splits[0].ID, 350, 100)
	if !strings.Contains(stmts[0], "OFFSET 350") || idOf(t, rows[0]) != 351 {
		t.Fatalf("statement %s, first row %s", stmts[0], rows[0].json)
	}
}

// A split whose connection is terminated mid-read (pg_terminate_backend
// from another session) is reopened after the last key it handed on,
// within the same snapshot, and reads every row once.
func TestDroppedConnectionIsRetried(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, pad text)`,
		`INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g`, `ANALYZE t`)
	admin := d.srv.Connect(t, d.name)
	for _, stream := range []string{"copy", "cursor"} {
		t.Run(stream, func(t *testing.T) {
			env := newEnv(t)
			// The server sends the rows slowly (a pause every 1000 rows),
			// so that it is still sending when its backend is terminated.
			src := d.source(t, env, "table: t\nmax_splits: 1\nstream: "+stream+
				"\nwhere: \"id % 1000 <> 0 OR pg_sleep(0.02)::text IS NOT NULL\"")
			src.SetColumns(pipeline.AllColumns)
			splits, err := src.Splits(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var stmts []string
			src.trace = func(_, sql string) { mu.Lock(); stmts = append(stmts, sql); mu.Unlock() }
			rd, err := src.Open(context.Background(), splits[0], pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id"}}, BatchRows: 1000})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			var got []int64
			kill := func() {
				// The split's backend: the one running our statement (not
				// the snapshot's, which is idle in its transaction).
				var n int
				// COPY: while the server still sends (active); a cursor's
				// backend idles between FETCHes.
				verb := map[string]string{"copy": "COPY%", "cursor": "FETCH%"}[stream]
				active := map[string]string{"copy": "active", "cursor": "%"}[stream]
				deadline := time.Now().Add(10 * time.Second)
				for n == 0 && time.Now().Before(deadline) {
					if err := admin.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
						WHERE datname = current_database() AND application_name = 'backfill' AND query LIKE $1 AND state LIKE $2
						AND pid <> pg_backend_pid()`, verb, active).Scan(&n); err != nil {
						t.Fatal(err)
					}
				}
				if n != 1 {
					t.Fatalf("terminated %d backends", n)
				}
			}
			for i := 0; ; i++ {
				if i == 5 {
					kill()
				}
				b, err := rd.Next(context.Background())
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatal(err)
					}
					break
				}
				col := b.Record.Column(0)
				for j := 0; j < col.Len(); j++ {
					var v int64
					json.Unmarshal([]byte(col.ValueStr(j)), &v)
					got = append(got, v)
				}
				b.Release()
			}
			sameIDs(t, got, seq(1, 60001))
			if len(stmts) != 2 || !strings.Contains(stmts[1], `"id" > `) {
				t.Fatalf("statements %q: want a reopen after the last key", stmts)
			}
			if !strings.Contains(env.logs.String(), "connection lost") {
				t.Errorf("no warning:\n%s", env.logs.String())
			}
		})
	}
}
