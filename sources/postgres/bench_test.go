package postgres

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/jackc/pgx/v5"

	"github.com/backfillhq/backfill/internal/testkit/pgtest"
	"github.com/backfillhq/backfill/pipeline"
)

// The source alone, to a null sink:
//
//	go test -run '^$' -bench Source -benchtime 1x ./sources/postgres -pg.rows 1000000
//
// With -pg.url (or PG_BENCH_URL) it uses that database and creates the
// table there once (bench_<rows>), so that a 10M-row table is made once;
// without, it starts a test cluster and fills it. bench/README.md has the
// figures and the \copy anchor.
var (
	benchRows = flag.Int("pg.rows", 1_000_000, "rows in the benchmark table")
	benchURL  = flag.String("pg.url", os.Getenv("PG_BENCH_URL"), "a database for the benchmark table (default: a test cluster)")
)

// benchTable makes (or finds) the events table of n rows and returns its
// database URL and name.
func benchTable(b *testing.B, n int) (string, string) {
	b.Helper()
	url := *benchURL
	if url == "" {
		srv := pgtest.Shared(b)
		url = srv.URL(srv.NewDatabase(b))
	}
	table := fmt.Sprintf("bench_%d", n)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	var have int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&have); err == nil && have == int64(n) {
		return url, table
	}
	// Segment-like events: ids, a user, an event name, an amount, a time
	// and a JSON object of properties (about 190 bytes a row in COPY text).
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + table,
		"CREATE TABLE " + table + ` (id bigint PRIMARY KEY, user_id text NOT NULL, anonymous_id uuid, event text NOT NULL,
			amount double precision, created_at timestamptz NOT NULL, properties jsonb)`,
		fmt.Sprintf(`INSERT INTO %s SELECT g, 'user_' || (g %% 100003), md5(g::text)::uuid, 'Order Completed ' || (g %% 13),
			(g %% 10000) / 100.0, timestamptz '2024-01-01' + g * interval '1 second',
			jsonb_build_object('order_id', g, 'total', (g %% 10000) / 100.0, 'currency', 'USD', 'coupon', CASE WHEN g %% 5 = 0 THEN 'SPRING' END)
			FROM generate_series(1, %d) g`, table, n),
		"VACUUM ANALYZE " + table,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	return url, table
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSource reads the whole table into Arrow batches (every column)
// and drops them: rows/s and this process's CPU per row, with COPY and
// with a cursor, over one connection and over four splits read at once.
func BenchmarkSource(b *testing.B) {
	url, table := benchTable(b, *benchRows)
	for _, c := range []struct{ name, body string }{
		{"copy/1-split", "stream: copy\nmax_splits: 1"},
		{"cursor/1-split", "stream: cursor\nmax_splits: 1"},
		{"copy/4-splits", "stream: copy\nmax_splits: 4"},
		{"cursor/4-splits", "stream: cursor\nmax_splits: 4"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var rows int64
			cpu0, t0 := cpuTime(), time.Now()
			for i := 0; i < b.N; i++ {
				rows = benchRead(b, url, "table: "+table+"\nrows_per_split: 1\n"+c.body)
			}
			el, cpu := time.Since(t0), cpuTime()-cpu0
			total := float64(rows) * float64(b.N)
			b.ReportMetric(total/el.Seconds(), "rows/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/row")
		})
	}
}

// benchRead reads every split of a source, as many at once as there are
// splits (the engine's workers), and returns the rows read.
func benchRead(b *testing.B, url, body string) int64 {
	conf, err := load("url: " + url + "\n" + body)
	if err != nil {
		b.Fatal(err)
	}
	src, err := New(conf, &pipeline.Env{Name: "bench", Alloc: memory.DefaultAllocator, State: pipeline.NewMemoryState(nil, nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer src.(*Source).Close()
	src.(*Source).SetColumns(pipeline.AllColumns)
	splits, err := src.Splits(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	for _, sp := range splits {
		wg.Add(1)
		go func(sp pipeline.Split) {
			defer wg.Done()
			rd, err := src.Open(context.Background(), sp, pipeline.ReadOptions{Columns: pipeline.AllColumns, BatchRows: 8192})
			if err != nil {
				b.Error(err)
				return
			}
			defer rd.Close()
			for {
				bt, err := rd.Next(context.Background())
				if err == io.EOF {
					return
				}
				if err != nil {
					b.Error(err)
					return
				}
				n.Add(bt.End - bt.Start)
				bt.Release()
			}
		}(sp)
	}
	wg.Wait()
	return n.Load()
}
