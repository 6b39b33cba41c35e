package configs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/internal/testkit/bqtest"
)

func bqEnv(srv *bqtest.Server, dir string) map[string]string {
	return map[string]string{
		"BQ_ENDPOINT": srv.URL, "BQ_STORAGE_ENDPOINT": srv.GRPCAddr, "BQ_INSECURE": "true", "BQ_NO_AUTH": "true",
		"BQ_BILLING_PROJECT": "acme-prod", "OUT": filepath.Join(dir, "out.ndjson"),
	}
}

func ts(t time.Time) arrow.Timestamp { return arrow.Timestamp(t.UnixMicro()) }

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// tracksTable is a Segment warehouse tracks table: 60 rows, one every 5
// days from 2024-01-01, so the config's where (first half of 2024) keeps
// the first 37.
func tracksTable(mem memory.Allocator) arrow.Record {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "user_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "anonymous_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "event", Type: arrow.BinaryTypes.String},
		{Name: "event_text", Type: arrow.BinaryTypes.String},
		{Name: "timestamp", Type: tsType},
		{Name: "received_at", Type: tsType},
		{Name: "context_ip", Type: arrow.BinaryTypes.String},
		{Name: "context_page_url", Type: arrow.BinaryTypes.String},
		{Name: "total", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	base := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 60; i++ {
		at := base.Add(time.Duration(i) * 5 * 24 * time.Hour)
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("orig-%d", i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("u%d", i%7))
		b.Field(2).(*array.StringBuilder).AppendNull()
		b.Field(3).(*array.StringBuilder).Append("order_completed")
		b.Field(4).(*array.StringBuilder).Append("Order Completed")
		b.Field(5).(*array.TimestampBuilder).Append(ts(at))
		b.Field(6).(*array.TimestampBuilder).Append(ts(at.Add(time.Second)))
		b.Field(7).(*array.StringBuilder).Append(fmt.Sprintf("10.0.0.%d", i))
		b.Field(8).(*array.StringBuilder).Append("https://shop.example/checkout")
		b.Field(9).(*array.Float64Builder).Append(float64(i) + 0.5)
	}
	return b.NewRecord()
}

func TestBigQueryTableConfigEndToEnd(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	srv := bqtest.New(t)
	rec := tracksTable(mem)
	srv.AddTable("acme-prod.segment_web.tracks", rec)
	rec.Release()
	dir := t.TempDir()
	env := bqEnv(srv, dir)
	mustRun(t, dir, env, "run", "--progress", "none", configPath("bigquery-table.yaml"))

	msgs := readNDJSON(t, env["OUT"])
	if len(msgs) != 37 {
		t.Fatalf("%d messages, want the 37 rows in the first half of 2024", len(msgs))
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		if m["type"] != "track" || m["event"] != "Order Completed" || m["userId"] == nil {
			t.Fatalf("not mapped by convention: %v", m)
		}
		if at(m, "context", "ip") == nil || at(m, "context", "page", "url") != "https://shop.example/checkout" || at(m, "properties", "total") == nil {
			t.Fatalf("context/properties not mapped: %v", m)
		}
		if at(m, "integrations", "All") != false || at(m, "integrations", "Amplitude") != true || at(m, "integrations", "Warehouses", "all") != false {
			t.Fatalf("integrations: %v", m["integrations"])
		}
		id, _ := m["messageId"].(string)
		if id == "" || strings.HasPrefix(id, "orig-") || ids[id] {
			t.Fatalf("message id %q not re-derived or not unique", id)
		}
		ids[id] = true
		if !strings.HasPrefix(m["timestamp"].(string), "2024-0") || m["received_at"] != nil || m["receivedAt"] != nil {
			t.Fatalf("timestamp or received_at: %v", m)
		}
	}
	c := srv.Counts()
	if c.CreateReadSession != 1 || c.ReadRows < 1 || c.TabledataList != 0 {
		t.Fatalf("not the Storage Read path: %+v", c)
	}
	req := srv.SessionRequests()[0]
	if got := req.GetReadSession().GetReadOptions().GetRowRestriction(); !strings.Contains(got, "2024-07-01") {
		t.Errorf("where not pushed down: %q", got)
	}
}

func TestBigQueryQueryConfigEndToEnd(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	srv := bqtest.New(t)
	raw, err := os.ReadFile(configPath("bigquery-query.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Source struct {
			BigQuery struct {
				Query string `yaml:"query"`
			} `yaml:"bigquery"`
		} `yaml:"source"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil || doc.Source.BigQuery.Query == "" {
		t.Fatalf("query not found in config: %v", err)
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "order_id", Type: arrow.BinaryTypes.String},
		{Name: "customer_id", Type: arrow.BinaryTypes.String},
		{Name: "created_at", Type: tsType},
		{Name: "total", Type: arrow.BinaryTypes.String},
		{Name: "currency", Type: arrow.BinaryTypes.String},
		{Name: "email", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	for i := 0; i < 25; i++ {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("ord_%d", i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("cus_%d", i%4))
		b.Field(2).(*array.TimestampBuilder).Append(ts(time.Date(2024, 2, 1, 0, i, 0, 0, time.UTC)))
		b.Field(3).(*array.StringBuilder).Append(fmt.Sprintf("%d.25", 10+i))
		b.Field(4).(*array.StringBuilder).Append("EUR")
		b.Field(5).(*array.StringBuilder).Append(fmt.Sprintf("c%d@example.com", i%4))
	}
	rec := b.NewRecord()
	b.Release()
	srv.AddQuery(doc.Source.BigQuery.Query, rec)
	rec.Release()

	dir := t.TempDir()
	env := bqEnv(srv, dir)
	mustRun(t, dir, env, "run", "--progress", "none", configPath("bigquery-query.yaml"))
	msgs := readNDJSON(t, env["OUT"])
	if len(msgs) != 25 {
		t.Fatalf("%d messages, want 25", len(msgs))
	}
	for _, m := range msgs {
		if m["event"] != "Order Completed" || at(m, "properties", "currency") != "EUR" || at(m, "context", "traits", "email") == nil {
			t.Fatalf("bad message %v", m)
		}
	}
	// Rerunning resumes a finished run: the query is not run again.
	c1 := srv.Counts()
	mustRun(t, dir, env, "run", "--progress", "none", configPath("bigquery-query.yaml"))
	if c2 := srv.Counts(); c2.JobsInsert != c1.JobsInsert {
		t.Errorf("query job re-run on resume: %+v -> %+v", c1, c2)
	}
}

func accounts(mem memory.Allocator, n int) arrow.Record {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "account_id", Type: arrow.BinaryTypes.String},
		{Name: "email", Type: arrow.BinaryTypes.String},
		{Name: "plan", Type: arrow.BinaryTypes.String},
		{Name: "seats", Type: arrow.PrimitiveTypes.Int64},
		{Name: "updated_at", Type: tsType},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	for i := 0; i < n; i++ {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("acct_%d", i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("a%d@example.com", i))
		b.Field(2).(*array.StringBuilder).Append("pro")
		b.Field(3).(*array.Int64Builder).Append(int64(i))
		b.Field(4).(*array.TimestampBuilder).Append(ts(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)))
	}
	return b.NewRecord()
}

func TestBigQueryIncrementalConfigAcrossRuns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	srv := bqtest.New(t)
	rec := accounts(mem, 10)
	srv.AddTable("acme-prod.crm.accounts", rec)
	rec.Release()
	dir := t.TempDir()
	env := bqEnv(srv, dir)
	env["STATE_DIR"] = filepath.Join(dir, "state")
	mustRun(t, dir, env, "run", "--progress", "none", configPath("bigquery-incremental.yaml"))
	if n := len(readNDJSON(t, env["OUT"])); n != 10 {
		t.Fatalf("first run: %d messages, want 10", n)
	}
	// Five newer rows arrive; the scheduled run reads only those.
	rec = accounts(mem, 15)
	srv.AddTable("acme-prod.crm.accounts", rec)
	rec.Release()
	mustRun(t, dir, env, "run", "--progress", "none", configPath("bigquery-incremental.yaml"))
	msgs := readNDJSON(t, env["OUT"])
	if len(msgs) != 15 {
		t.Fatalf("after the second run: %d messages, want 10 + 5", len(msgs))
	}
	second := map[any]bool{}
	for _, m := range msgs[10:] {
		second[m["userId"]] = true
	}
	for i := 10; i < 15; i++ {
		if !second[fmt.Sprintf("acct_%d", i)] {
			t.Fatalf("second run sent %v, want exactly the new accounts 10-14", second)
		}
	}
	// Nothing new: nothing sent.
	mustRun(t, dir, env, "run", "--progress", "none", configPath("bigquery-incremental.yaml"))
	if n := len(readNDJSON(t, env["OUT"])); n != 15 {
		t.Fatalf("a run with nothing new sent %d messages", n-15)
	}
}
