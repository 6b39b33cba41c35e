package main

import (
	"fmt"
	"strings"
	"testing"

	arrowtype "github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/bqtest"
	"github.com/backfillhq/backfill/internal/testkit/pgtest"
	"github.com/backfillhq/backfill/internal/testkit/s3test"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
)

// syncSourceRun runs a sync pipeline whose source block is source against
// a new collector: it returns how many messages the collector stored and
// the run's stderr.
func syncSourceRun(t *testing.T, dir, source string) (int64, string) {
	t.Helper()
	col := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
	defer col.Close()
	cfg := syncPipelineFrom(t, dir, source, col.URL(), "  deleted: {type: track, event: User Deleted}\n")
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if v := col.ViolationList(); len(v) > 0 {
		t.Fatalf("the collector saw violations: %v", v[:min(3, len(v))])
	}
	return col.Stats().Messages, stderr
}

// A sync reads a Postgres table in parallel key ranges: the second run
// sends the 20 edited and 10 added users and a message for each of the 5
// deleted, and the third nothing.
func TestSyncFromPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	pg.Exec(t, db,
		`create table users (id bigint primary key, user_id text not null, email text, plan text)`,
		`insert into users select g, 'u' || g, 'u' || g || '@example.com', 'free' from generate_series(1, 2000) g`)
	dir := t.TempDir()
	source := fmt.Sprintf("{postgres: {url: %q, table: users, max_splits: 4}}", pg.URL(db))

	if n, stderr := syncSourceRun(t, dir, source); n != 2000 {
		t.Fatalf("first run sent %d; want 2000\n%s", n, stderr)
	}
	pg.Exec(t, db,
		`update users set plan = 'pro' where id % 100 = 0`,
		`insert into users select g, 'u' || g, 'u' || g || '@example.com', 'free' from generate_series(2001, 2010) g`,
		`delete from users where id between 501 and 505`)
	if n, stderr := syncSourceRun(t, dir, source); n != 20+10+5 {
		t.Fatalf("second run sent %d; want 20 edited + 10 added + 5 deleted\n%s", n, stderr)
	}
	if n, stderr := syncSourceRun(t, dir, source); n != 0 {
		t.Fatalf("third run sent %d; want 0\n%s", n, stderr)
	}
}

// A sync over S3 objects (one split each): an edit in one object sends
// only the edited rows, a removed object's users get their message.
func TestSyncFromS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "acme")
	srv.SetCredentialsEnv(t)
	put := func(part, from, to int, edited func(i int) bool) {
		var b strings.Builder
		b.WriteString("user_id,email,plan\n")
		for i := from; i < to; i++ {
			plan := "free"
			if edited != nil && edited(i) {
				plan = "pro"
			}
			fmt.Fprintf(&b, "u%d,u%d@example.com,%s\n", i, i, plan)
		}
		srv.Put(t, "acme", fmt.Sprintf("users/part-%d.csv", part), []byte(b.String()))
	}
	for p := 0; p < 3; p++ {
		put(p, p*500, (p+1)*500, nil)
	}
	dir := t.TempDir()
	source := fmt.Sprintf("{s3: {bucket: acme, prefix: users/, endpoint: %q, path_style: true, region: %s, csv: {header: true}}}",
		srv.Endpoint, s3test.Region)

	if n, stderr := syncSourceRun(t, dir, source); n != 1500 {
		t.Fatalf("first run sent %d; want 1500\n%s", n, stderr)
	}
	put(1, 500, 1000, func(i int) bool { return i%50 == 0 }) // 10 edited
	if _, err := srv.Client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String("acme"), Key: aws.String("users/part-2.csv")}); err != nil {
		t.Fatal(err)
	}
	if n, stderr := syncSourceRun(t, dir, source); n != 10+500 {
		t.Fatalf("second run sent %d; want 10 edited + 500 deleted\n%s", n, stderr)
	}
	if n, stderr := syncSourceRun(t, dir, source); n != 0 {
		t.Fatalf("third run sent %d; want 0\n%s", n, stderr)
	}
}

// A sync reads a BigQuery table through the Storage Read API: the second
// run, over the table with 10 users edited and 5 gone, sends those 15.
func TestSyncFromBigQuery(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := bqtest.New(t)
	table := func(edited, removed func(i int) bool) {
		sc := arrowtype.NewSchema([]arrowtype.Field{
			{Name: "user_id", Type: arrowtype.BinaryTypes.String},
			{Name: "email", Type: arrowtype.BinaryTypes.String},
			{Name: "plan", Type: arrowtype.BinaryTypes.String},
		}, nil)
		b := array.NewRecordBuilder(mem, sc)
		defer b.Release()
		for i := 0; i < 1000; i++ {
			if removed != nil && removed(i) {
				continue
			}
			plan := "free"
			if edited != nil && edited(i) {
				plan = "pro"
			}
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("u%d", i))
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("u%d@example.com", i))
			b.Field(2).(*array.StringBuilder).Append(plan)
		}
		rec := b.NewRecord()
		defer rec.Release()
		srv.AddTable("acme-prod.crm.users", rec)
	}
	dir := t.TempDir()
	source := fmt.Sprintf("{bigquery: {endpoint: %q, storage_endpoint: %q, insecure: true, no_auth: true, table: acme-prod.crm.users, project: acme-prod}}",
		srv.URL, srv.GRPCAddr)

	table(nil, nil)
	if n, stderr := syncSourceRun(t, dir, source); n != 1000 {
		t.Fatalf("first run sent %d; want 1000\n%s", n, stderr)
	}
	table(func(i int) bool { return i%100 == 7 }, func(i int) bool { return i >= 995 })
	if n, stderr := syncSourceRun(t, dir, source); n != 10+5 {
		t.Fatalf("second run sent %d; want 10 edited + 5 deleted\n%s", n, stderr)
	}
	if n, stderr := syncSourceRun(t, dir, source); n != 0 {
		t.Fatalf("third run sent %d; want 0\n%s", n, stderr)
	}
}
