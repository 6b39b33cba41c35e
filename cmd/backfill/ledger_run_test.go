package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/sampledata"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
	"github.com/backfillhq/backfill/sinks/message"
)

// readLedger reads every part under root (dot files, a write cut short,
// are not parts), as any Parquet reader would: pqarrow here.
func readLedger(t *testing.T, root string) (rows []state.LedgerRow, parts []string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		parts = append(parts, path)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(parts)
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := state.ReadLedgerPart(f)
		f.Close()
		if err != nil {
			t.Fatalf("ledger part %s is not readable: %v", p, err)
		}
		rows = append(rows, got...)
	}
	return rows, parts
}

type rowKey struct {
	split string
	row   int64
}

// distinctRows counts the distinct (split, row) of rows.
func distinctRows(rows []state.LedgerRow) int {
	seen := make(map[rowKey]bool, len(rows))
	for _, r := range rows {
		seen[rowKey{r.Split, r.Row}] = true
	}
	return len(seen)
}

// copyOrderFiles writes one Parquet file of rows orders into dir, and
// copies it to make files files: faster than writing each.
func copyOrderFiles(t *testing.T, dir string, files, rows int) {
	t.Helper()
	writeOrderFiles(t, dir, 1, rows)
	data, err := os.ReadFile(filepath.Join(dir, "orders-0.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < files; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("orders-%d.parquet", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeOrderFiles writes files Parquet files of rows orders each into dir.
func writeOrderFiles(t *testing.T, dir string, files, rows int) {
	t.Helper()
	for i := 0; i < files; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("orders-%d.parquet", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := sampledata.WriteOrdersParquet(f, rows, int64(i)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

const ordersMap = `  - map: {type: track, event: event_name, userId: customer_id, anonymousId: anonymous_id, timestamp: created_at, properties: {total: amount}}`

// TestLedgerMillionRows sends 1M rows to a collector with a ledger: its
// files hold a row per message, 1M distinct messageIds, each the id the
// collector received (and each the id derived from its split and row),
// acknowledged with a 200.
func TestLedgerMillionRows(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 1M messages; ./scripts/test.sh runs it without -short")
	}
	const files, rows = 4, 250_000
	dir := t.TempDir()
	copyOrderFiles(t, dir, files, rows) // four splits, each its own ids
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, SkipValidation: true})
	defer srv.Close()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: million
source: {file: {path: %s/*.parquet}}
transforms:
%s
sink:
  segment:
    endpoint: %s
    write_key: KEY
    request: {rate_limit: "0", concurrency: 4}
state: %s/state
ledger: %s/ledger
`, dir, ordersMap, srv.URL(), dir, dir)), 0o644)
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	got, parts := readLedger(t, filepath.Join(dir, "ledger"))
	received := srv.IDs()
	ids := make(map[string]bool, len(got))
	for _, r := range got {
		if r.Fate != state.FateDelivered || r.Status != 200 || r.AckedAt.IsZero() || received[r.MessageID] == 0 ||
			r.MessageID != message.DeriveID("million", r.Split, r.Row) {
			t.Fatalf("ledger row %+v: want delivered with a 200, under the id the collector got", r)
		}
		ids[r.MessageID] = true
	}
	if len(got) != files*rows || len(ids) != files*rows || distinctRows(got) != files*rows || len(received) != files*rows {
		t.Fatalf("the ledger holds %d rows, %d distinct messageIds, %d distinct rows; the collector got %d ids; want %d each",
			len(got), len(ids), distinctRows(got), len(received), files*rows)
	}
	want := fmt.Sprintf("ledger     %d rows -> %s", files*rows, filepath.Join(dir, "ledger", "million"))
	if !strings.Contains(stderr, want) {
		t.Errorf("summary without %q:\n%s", want, stderr)
	}
	t.Logf("%d rows in %d parts", len(got), len(parts))
}

// rejectsPipeline writes a CSV of 100 rows, one in ten of each kind: a
// value the source cannot read, a time the timestamp transform cannot,
// a row the filter drops, and a message the collector refuses (400); the
// rest are delivered. It returns the pipeline file, with ledger (when not
// empty) as its `ledger:`.
func rejectsPipeline(t *testing.T, dir, endpoint, ledger string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("user_id,event,ts,qty\n")
	for i := 0; i < 100; i++ {
		user, event, ts, qty := fmt.Sprintf("u%d", i), "Order Completed", fmt.Sprintf("2024-03-01T10:00:%02dZ", i%60), "1"
		switch i % 10 {
		case 1:
			qty = "many"
		case 2:
			ts = "not-a-date"
		case 3:
			event = "skip"
		case 4:
			user = "refuse"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", user, event, ts, qty)
	}
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte(b.String()), 0o644)
	cfg := filepath.Join(dir, "p.yaml")
	yaml := fmt.Sprintf(`name: rejects
source: {file: {path: %s/in.csv, csv: {header: true, columns: {qty: int64}}}}
transforms:
  - filter: {expr: 'event != "skip"'}
  - map: {type: track, event: event, userId: user_id, timestamp: ts, properties: {qty: qty}}
  - timestamp: {field: timestamp}
sink:
  segment:
    endpoint: %s
    write_key: KEY
    request: {rate_limit: "0", retry: {initial_backoff: 1ms, max_backoff: 5ms}}
state: %s/state
max_rejects: none
`, dir, endpoint, dir)
	if ledger != "" {
		yaml += "ledger: " + ledger + "\n"
	}
	os.WriteFile(cfg, []byte(yaml), 0o644)
	return cfg
}

func refuse(m segmenttest.Message) string {
	if string(m.UserID) == `"refuse"` {
		return "not this user"
	}
	return ""
}

// Rejected rows are in the ledger with their stage, and a sink's with
// the HTTP status and the messageId it refused; filtered rows are not in
// it.
func TestLedgerHoldsRejectedRowsWithStageAndStatus(t *testing.T) {
	dir := t.TempDir()
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, Reject: refuse})
	defer srv.Close()
	cfg := rejectsPipeline(t, dir, srv.URL(), filepath.Join(dir, "ledger"))
	if code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	got, _ := readLedger(t, filepath.Join(dir, "ledger"))
	count := map[string]int{}
	for _, r := range got {
		key := r.Fate + " " + r.Stage
		count[key]++
		switch key {
		case "delivered ":
			if r.Status != 200 || srv.Count(r.MessageID) != 1 || r.MessageID != message.DeriveID("rejects", r.Split, r.Row) {
				t.Errorf("delivered %+v", r)
			}
		case "rejected sink":
			if r.Status != 400 || r.MessageID != message.DeriveID("rejects", r.Split, r.Row) || r.Row%10 != 4 {
				t.Errorf("rejected by the sink: %+v, want status 400 and the message's id", r)
			}
		case "rejected source":
			if r.Status != 0 || r.MessageID != "" || r.Row%10 != 1 {
				t.Errorf("rejected by the source: %+v", r)
			}
		case "rejected transform:timestamp":
			if r.Status != 0 || r.MessageID != "" || r.Row%10 != 2 {
				t.Errorf("rejected by the transform: %+v", r)
			}
		default:
			t.Errorf("unexpected ledger row %+v", r)
		}
		if r.Row%10 == 3 {
			t.Errorf("a filtered row is in the ledger: %+v", r)
		}
	}
	want := map[string]int{"delivered ": 60, "rejected sink": 10, "rejected source": 10, "rejected transform:timestamp": 10}
	if fmt.Sprint(count) != fmt.Sprint(want) || distinctRows(got) != 90 {
		t.Fatalf("ledger rows by fate and stage: %v, want %v", count, want)
	}
}

// The shards of a sharded run write their own folders: together they hold
// every row, each once.
func TestLedgerShardsWriteTheirOwnFiles(t *testing.T) {
	dir := t.TempDir()
	writeOrderFiles(t, dir, 6, 500)
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`name: shards
source: {file: {path: %s/*.parquet}}
transforms:
%s
sink: {file: {path: %s/out.ndjson}}
state: %s/state
ledger: %s/ledger
`, dir, ordersMap, dir, dir, dir)), 0o644)
	byShard := map[string]int{}
	var all []state.LedgerRow
	for i := 0; i < 2; i++ {
		if code, _, stderr := runCLI(t, "", "run", "--progress", "none", "--shard", fmt.Sprintf("%d/2", i), cfg); code != 0 {
			t.Fatalf("shard %d: exit %d\n%s", i, code, stderr)
		}
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "ledger", "shards", "*"))
	for _, run := range runs {
		rows, parts := readLedger(t, run)
		if len(parts) == 0 {
			t.Fatalf("%s holds no part", run)
		}
		suffix := run[strings.LastIndex(run, "-shard-"):]
		byShard[suffix] += len(rows)
		all = append(all, rows...)
	}
	if len(byShard) != 2 || byShard["-shard-0-of-2"] == 0 || byShard["-shard-1-of-2"] == 0 {
		t.Fatalf("ledger folders %v: want one per shard", runs)
	}
	if len(all) != 3000 || distinctRows(all) != 3000 {
		t.Fatalf("the shards' ledgers hold %d rows, %d distinct; want 3000", len(all), distinctRows(all))
	}
}

// receiptsSink delivers every batch at once and notes whether its account
// wanted receipts.
type receiptsSink struct {
	wanted, plain int
}

func (s *receiptsSink) Open(context.Context) error { return nil }
func (s *receiptsSink) Write(_ context.Context, b *pipeline.Batch) error {
	if b.WantsReceipts() {
		s.wanted++
		rows := make([]int64, b.NumRows())
		ids := make([][]byte, len(rows))
		for i := range rows {
			rows[i] = b.Row(i)
			ids[i] = []byte(fmt.Sprint(rows[i]))
		}
		b.DeliveredRows(0, rows, ids)
	} else {
		s.plain++
		b.Delivered(int(b.NumRows()))
	}
	b.Release()
	b.Ack(nil)
	return nil
}
func (s *receiptsSink) Close(context.Context) error { return nil }

// Without `ledger:` nothing is written and no batch asks its sink for
// receipts: the sinks keep and report counts only, as before. With it,
// every batch does.
func TestNoLedgerNoFileNoReceipts(t *testing.T) {
	dir := t.TempDir()
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, Reject: refuse})
	defer srv.Close()
	cfg := rejectsPipeline(t, dir, srv.URL(), "")
	code, _, stderr := runCLI(t, "", "run", "--progress", "none", cfg)
	if code != 0 || strings.Contains(stderr, "ledger") {
		t.Fatalf("exit %d, or a ledger in the summary:\n%s", code, stderr)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "ledger") {
			t.Fatalf("a run without ledger: wrote %s", e.Name())
		}
	}
	if _, parts := readLedger(t, dir); len(parts) != 0 {
		t.Fatalf("parts written without a ledger: %v", parts)
	}
	for _, ledger := range []string{"", filepath.Join(dir, "ledger")} {
		p, err := config.LoadFile(rejectsPipeline(t, dir, srv.URL(), ledger), config.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sink := &receiptsSink{}
		if _, err := engine.New(p, engine.Options{Fresh: true, Sink: sink}).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ledger == "" && (sink.wanted != 0 || sink.plain == 0) || ledger != "" && (sink.wanted == 0 || sink.plain != 0) {
			t.Fatalf("ledger %q: %d batches wanted receipts, %d did not", ledger, sink.wanted, sink.plain)
		}
	}
	if rows, _ := readLedger(t, filepath.Join(dir, "ledger")); len(rows) != 90 {
		t.Fatalf("the receipts sink's run: %d ledger rows, want 90 (70 delivered, 20 rejected before the sink)", len(rows))
	}
}
