package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline"
)

// Redshift cannot run here. Its SQL is checked as text (sql_test.go); the
// parts of it Postgres also speaks run against Postgres here: the
// dialect's transactions, cursors, text format, a split key with ties.
func TestRedshiftDialectOnPostgres(t *testing.T) {
	t.Parallel()
	d := newDB(t)
	d.exec(t, `CREATE TABLE ev (id int, grp int, name varchar(20), at timestamp)`,
		`INSERT INTO ev SELECT g, g / 3, 'n' || g, timestamp '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 900) g`,
		`INSERT INTO ev VALUES (901, NULL, 'no group', NULL)`)
	body := "dialect: redshift\ntable: ev\nsplit_by: grp\nmax_splits: 3"
	env := newEnv(t)
	src := d.source(t, env, body)
	rows, _ := readAll(t, src, nil, 50)
	sameIDs(t, ids(t, rows), seq(1, 902))
	if len(rows) != 4 { // three ranges and the NULLs
		t.Fatalf("%d splits", len(rows))
	}
	// Resumed inside a group of equal keys.
	prev, splits, first := stopAfter(t, d, body, 0, 1, 50)
	resumed, stmts, _ := resume(t, d, prev, body, splits[0].ID, 50, 50)
	if !strings.Contains(stmts[0], `"grp" >= 16 ORDER BY "grp"`) {
		t.Errorf("statement %s", stmts[0])
	}
	all := append(first, resumed...)
	whole, _, _ := resume(t, d, prev, body, splits[0].ID, 0, 50)
	if len(all) != len(whole) {
		t.Fatalf("%d rows over two runs, want %d", len(all), len(whole))
	}
	seen := map[int64]bool{}
	for _, r := range all {
		if seen[idOf(t, r)] {
			t.Fatalf("id %d read twice", idOf(t, r))
		}
		seen[idOf(t, r)] = true
	}
}

// unload runs UNLOAD once (a stand-in writes what Redshift would: Parquet
// files and a manifest, on MinIO) and reads the manifest's files with the
// s3 source's reader; a resumed run does not unload again.
func TestUnloadReadsTheManifestFromS3(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "unload")
	d := newDB(t)
	d.exec(t, `CREATE TABLE orders (id int, amount numeric)`, `INSERT INTO orders VALUES (1, 2)`)
	body := fmt.Sprintf(`dialect: redshift
table: orders
where: "amount > 0"
unload:
  s3: s3://unload/backfill/
  iam_role: arn:aws:iam::123456789012:role/unload
  endpoint: %s
  path_style: true
  region: us-east-1
  access_key_id: %s
  secret_access_key: %s`, srv.Endpoint, srv.AccessKey, srv.SecretKey)
	var unloads []string
	fake := func(ctx context.Context, sql, prefix string) error {
		unloads = append(unloads, sql)
		_, key, _ := splitS3(prefix)
		var entries []string
		for i, rows := range []int{1200, 800} {
			var b bytes.Buffer
			if err := sampledata.WriteOrdersParquetRowGroups(&b, rows, int64(i), 500); err != nil {
				return err
			}
			k := fmt.Sprintf("%s%04d_part_00.parquet", key, i)
			srv.Put(t, "unload", k, b.Bytes())
			entries = append(entries, fmt.Sprintf(`{"url":"s3://unload/%s","meta":{"content_length":%d,"record_count":%d}}`, k, b.Len(), rows))
		}
		srv.Put(t, "unload", key+"manifest", []byte(`{"entries":[`+strings.Join(entries, ",")+`]}`))
		return nil
	}
	env := newEnv(t)
	src := d.source(t, env, body)
	src.unloader = fake
	src.SetColumns(pipeline.AllColumns)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 2 || len(unloads) != 1 {
		t.Fatalf("%d splits after %d unloads", len(splits), len(unloads))
	}
	if !strings.HasPrefix(unloads[0], `UNLOAD ('SELECT "id", "amount" FROM "orders" WHERE (amount > 0)') TO 's3://unload/backfill/pg-test/`) ||
		!strings.Contains(unloads[0], "IAM_ROLE 'arn:aws:iam::123456789012:role/unload' FORMAT AS PARQUET MANIFEST") {
		t.Errorf("unload: %s", unloads[0])
	}
	n := 0
	for _, sp := range splits {
		rows, _, err := readSplit(t, src, sp, pipeline.ReadOptions{Offset: 100, BatchRows: 300}, 0)
		if err != nil {
			t.Fatal(err)
		}
		n += len(rows)
	}
	if n != 2000-200 {
		t.Fatalf("read %d rows from offset 100 of each file", n)
	}
	var st unloadState
	json.Unmarshal([]byte(env.state.Copy()[keyUnload]), &st)
	if !st.Done || !strings.HasPrefix(st.Prefix, "s3://unload/backfill/pg-test/") {
		t.Fatalf("unload state %+v", st)
	}
	// The resumed run lists the same files without unloading again.
	env2 := newEnv(t)
	env2.state = pipeline.NewMemoryState(env.state.Copy(), nil)
	src2 := d.source(t, env2, body)
	src2.unloader = fake
	src2.SetColumns(pipeline.AllColumns)
	again, err := src2.Splits(context.Background())
	if err != nil || len(again) != 2 || again[0].ID != splits[0].ID || len(unloads) != 1 {
		t.Fatalf("resumed: %v, %v; %d unloads", again, err, len(unloads))
	}
}
