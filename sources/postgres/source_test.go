package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
)

// A query with parameters is one split, read with a cursor (COPY takes no
// parameters); a projection reads only the columns asked for.
func TestQueryWithParams(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE e (id int PRIMARY KEY, kind text, at date)`,
		`INSERT INTO e SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, date '2024-01-01' + g FROM generate_series(1, 100) g`)
	env := newEnv(t)
	src := d.source(t, env, `query: "SELECT id, kind, at FROM e WHERE kind = $1 AND at >= $2 ORDER BY id;"
params: ["a", 2024-03-01]`)
	var stmts []string
	src.trace = func(_, sql string) { stmts = append(stmts, sql) }
	src.SetColumns(pipeline.Columns{Names: []string{"id"}})
	splits, err := src.Splits(context.Background())
	if err != nil || len(splits) != 1 {
		t.Fatalf("splits %v, %v", splits, err)
	}
	rows, _, err := readSplit(t, src, splits[0], pipeline.ReadOptions{Columns: pipeline.Columns{Names: []string{"id"}}, BatchRows: 7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 2024-03-01 is day 60 of 2024: ids 60..100, even.
	var got []int64
	for _, r := range rows {
		if strings.Contains(r.json, "kind") {
			t.Fatalf("projected out column read: %s", r.json)
		}
		got = append(got, idOf(t, r))
	}
	var want []int64
	for g := int64(60); g <= 100; g += 2 {
		want = append(want, g)
	}
	sameIDs(t, got, want)
	if !strings.HasPrefix(stmts[0], `SELECT "id" FROM (SELECT id, kind, at FROM e WHERE kind = $1 AND at >= $2 ORDER BY id) AS q`) {
		t.Errorf("statement %s", stmts[0])
	}
	if !strings.Contains(env.logs.String(), "COPY takes no parameters") {
		t.Errorf("no note on the cursor:\n%s", env.logs.String())
	}
	// A resume skips on the server (a query has no key to resume after).
	rows, _, err = readSplit(t, src, splits[0], pipeline.ReadOptions{Offset: 15, Columns: pipeline.Columns{Names: []string{"id"}}, BatchRows: 7}, 0)
	if err != nil || len(rows) != 6 || idOf(t, rows[0]) != 90 || !strings.HasSuffix(stmts[len(stmts)-1], "OFFSET 15") {
		t.Fatalf("resumed: %v %s %s", err, fmtRows(rows), stmts[len(stmts)-1])
	}
}

// The connection holding the run's snapshot is lost: the next split to
// open finds the snapshot gone, exports a new one, warns, and reads.
func TestLostSnapshotIsExportedAgain(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t SELECT g FROM generate_series(1, 100) g`)
	env := newEnv(t)
	src := d.source(t, env, "table: t\nmax_splits: 1")
	src.SetColumns(pipeline.AllColumns)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	old := src.currentSnapshot()
	d.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'backfill' AND state = 'idle in transaction'`)
	rows, _, err := readSplit(t, src, splits[0], pipeline.ReadOptions{BatchRows: 50}, 0)
	if err != nil || len(rows) != 100 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if src.currentSnapshot() == old || !strings.Contains(env.logs.String(), "exported a new one") {
		t.Fatalf("snapshot %s (was %s); logs:\n%s", src.currentSnapshot(), old, env.logs.String())
	}
}

// Credentials as psql takes them: PG* variables and ~/.pgpass (PGPASSFILE)
// when the config gives no password; a wrong password's error never
// shows it.
func TestCredentialsFromTheEnvironment(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t VALUES (1)`)
	pass := filepath.Join(t.TempDir(), "pgpass")
	os.WriteFile(pass, []byte(fmt.Sprintf("127.0.0.1:%d:%s:%s:%s\n", d.srv.Port, d.name, d.srv.User, d.srv.Password)), 0o600)
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", fmt.Sprint(d.srv.Port))
	t.Setenv("PGDATABASE", d.name)
	t.Setenv("PGUSER", d.srv.User)
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("PGPASSFILE", pass)
	env := newEnv(t)
	conf, err := load("table: t")
	if err != nil {
		t.Fatal(err)
	}
	src, err := New(conf, &pipeline.Env{Name: "pg", State: env.state, Alloc: env.mem})
	if err != nil {
		t.Fatal(err)
	}
	defer src.(*Source).Close()
	rows, _ := readAll(t, src, nil, 10)
	if len(ids(t, rows)) != 1 {
		t.Fatalf("rows %v", rows)
	}

	secret := "not-the-password-" + d.srv.Password[:4]
	for _, body := range []string{
		"host: 127.0.0.1\nport: " + fmt.Sprint(d.srv.Port) + "\nuser: postgres\nsslmode: disable\npassword: " + secret + "\ntable: t",
		"url: postgres://postgres:" + secret + "@127.0.0.1:" + fmt.Sprint(d.srv.Port) + "/" + d.name + "?sslmode=disable\ntable: t",
	} {
		conf, err := load(body)
		if err != nil {
			t.Fatal(err)
		}
		src, err := New(conf, &pipeline.Env{Name: "pg", State: env.state, Alloc: env.mem})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Splits(context.Background())
		src.(*Source).Close()
		if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "password") {
			t.Fatalf("error %v: want a password failure that does not show the password", err)
		}
	}
}
