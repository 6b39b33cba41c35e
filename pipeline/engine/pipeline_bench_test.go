package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/sources/file"
	_ "github.com/backfillhq/backfill/transforms"
)

// BenchmarkParquetMapFileSink runs the whole engine on 1M rows: a Parquet
// dump read a row group at a time, map and timestamp transforms, encoded
// into the file sink. One op is one full run.
func BenchmarkParquetMapFileSink(b *testing.B) {
	const rows = 1_000_000
	dir := b.TempDir()
	in := filepath.Join(dir, "orders.parquet")
	f, err := os.Create(in)
	if err != nil {
		b.Fatal(err)
	}
	if err := sampledata.WriteOrdersParquet(f, rows, 1); err != nil {
		b.Fatal(err)
	}
	f.Close()
	yaml := fmt.Sprintf(`name: bench
source: {file: {path: %s}}
transforms:
  - map:
      type: track
      event: event_name
      userId: customer_id
      anonymousId: anonymous_id
      timestamp: created_at
      properties: {order_id: order_id, total: amount, currency: currency, plan: plan}
      context: {ip: ip, userAgent: user_agent, traits: {email: email}}
  - timestamp: {field: timestamp}
sink: {file: {path: %s/out.ndjson}}
state: %s/state
`, in, dir, dir)
	cfg, err := config.Load("bench.yaml", []byte(yaml), config.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := New(cfg, Options{Fresh: true}).Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if rep.RowsDelivered != rows {
			b.Fatalf("delivered %d rows", rep.RowsDelivered)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows*b.N), "ns/row")
}

// BenchmarkEncodeCheckpoint encodes the checkpoint of a run over 100k S3
// objects (a few years of a Segment archive), which every save writes.
func BenchmarkEncodeCheckpoint(b *testing.B) {
	cp := &state.Checkpoint{Version: 1, Name: "archive", Splits: map[string]state.SplitState{}}
	for i := 0; i < 100_000; i++ {
		cp.Splits[fmt.Sprintf("s3://acme-archive/segment-logs/src123/%d/part-%05d.gz", 1700000000000+i/100*86400000, i%100)] =
			state.SplitState{Offset: 12345, Done: true, Version: "etag 0123456789abcdef0123456789abcdef"}
	}
	var n int
	for i := 0; i < b.N; i++ {
		data, err := state.Encode(cp)
		if err != nil {
			b.Fatal(err)
		}
		n = len(data)
	}
	b.ReportMetric(float64(n), "bytes")
}
