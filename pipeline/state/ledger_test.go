package state

import (
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// readLedgerDir reads every part of a ledger folder, in part order.
func readLedgerDir(t *testing.T, dir string) (rows []LedgerRow, parts []string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadLedgerPart(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rows = append(rows, got...)
		parts = append(parts, filepath.Base(name))
	}
	return rows, parts
}

func delivered(rows ...int64) *LedgerRows {
	r := &LedgerRows{}
	ids := make([][]byte, len(rows))
	for i, row := range rows {
		ids[i] = []byte(fmt.Sprintf("id-%d", row))
	}
	r.Deliver(200, rows, ids, time.UnixMilli(1_700_000_000_123))
	return r
}

// What is appended comes back from the Parquet parts, column by column;
// a part is cut at each Cut and whenever Rows are in, and each is a whole
// file of its own.
func TestLedgerPartsHoldWhatWasAppended(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	root := t.TempDir()
	ctx := context.Background()
	l, err := OpenLedger(ctx, LedgerOptions{Where: root, Name: "p", Run: "RUN", Shard: 1, Shards: 3, Rows: 4, Alloc: mem})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "p", "RUN-shard-1-of-3")
	if l.Location() != dir+"/" {
		t.Fatalf("location %s", l.Location())
	}
	l.Append("a.csv", delivered(0, 1))
	rj := &LedgerRows{}
	rj.Reject(2, "transform:timestamp", 0, nil, time.UnixMilli(5))
	rj.Reject(3, "sink", 400, []byte("id-3"), time.UnixMilli(6))
	l.Append("a.csv", rj)
	// 4 rows: a part is cut for the writer; Cut adds none.
	n := l.Cut()
	if n != 1 {
		t.Fatalf("cut %d parts, want 1", n)
	}
	l.Append("b.csv", delivered(7))
	n = l.Cut()
	if err := l.Flush(ctx, n); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rows, parts := readLedgerDir(t, dir)
	if strings.Join(parts, ",") != "part-000001.parquet,part-000002.parquet" {
		t.Fatalf("parts %v", parts)
	}
	want := []LedgerRow{
		{Split: "a.csv", Row: 0, MessageID: "id-0", Fate: FateDelivered, Status: 200, AckedAt: time.UnixMilli(1_700_000_000_123).UTC()},
		{Split: "a.csv", Row: 1, MessageID: "id-1", Fate: FateDelivered, Status: 200, AckedAt: time.UnixMilli(1_700_000_000_123).UTC()},
		{Split: "a.csv", Row: 2, Fate: FateRejected, Stage: "transform:timestamp", AckedAt: time.UnixMilli(5).UTC()},
		{Split: "a.csv", Row: 3, MessageID: "id-3", Fate: FateRejected, Stage: "sink", Status: 400, AckedAt: time.UnixMilli(6).UTC()},
		{Split: "b.csv", Row: 7, MessageID: "id-7", Fate: FateDelivered, Status: 200, AckedAt: time.UnixMilli(1_700_000_000_123).UTC()},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("read\n%v\nwant\n%v", rows, want)
	}
	if l.Rows() != 5 {
		t.Fatalf("rows %d", l.Rows())
	}
}

// A resumed run removes the parts written after its checkpoint (their
// rows are read again) and what a write cut short left, and numbers its
// parts on from the checkpoint's.
func TestLedgerResumePrunesPartsPastTheCheckpoint(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	l, err := OpenLedger(ctx, LedgerOptions{Where: root, Name: "p", Run: "RUN"})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 3; i++ {
		l.Append("s", delivered(i))
		if err := l.Flush(ctx, l.Cut()); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	dir := filepath.Join(root, "p", "RUN")
	os.WriteFile(filepath.Join(dir, ".part-000004.parquet-123.tmp"), []byte("cut short"), 0o644)
	// The checkpoint counts 2 parts: part 3 was written after it.
	l, err = OpenLedger(ctx, LedgerOptions{Where: root, Name: "p", Run: "RUN", Parts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("after pruning: %v", entries)
	}
	l.Append("s", delivered(2))
	if n := l.Cut(); n != 3 {
		t.Fatalf("next part %d, want 3", n)
	}
	if err := l.Flush(ctx, 3); err != nil {
		t.Fatal(err)
	}
	rows, _ := readLedgerDir(t, dir)
	if len(rows) != 3 || rows[2].Row != 2 {
		t.Fatalf("rows %v", rows)
	}
}

// A part that cannot be written stays, and is written whole under its
// number by the next Flush.
func TestLedgerFailedPartIsWrittenAgain(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	l, err := OpenLedger(ctx, LedgerOptions{Where: root, Name: "p", Run: "RUN"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Join(root, "p", "RUN")
	// A file where the folder must go: every write fails.
	os.MkdirAll(filepath.Dir(dir), 0o755)
	os.WriteFile(dir, nil, 0o644)
	l.Append("s", delivered(0, 1))
	n := l.Cut()
	if err := l.Flush(ctx, n); err == nil {
		t.Fatal("a write into a file went through")
	}
	os.Remove(dir)
	l.Append("s", delivered(2))
	n = l.Cut()
	if err := l.Flush(ctx, n); err != nil {
		t.Fatal(err)
	}
	rows, parts := readLedgerDir(t, dir)
	if len(parts) != 2 || len(rows) != 3 {
		t.Fatalf("parts %v rows %v", parts, rows)
	}
}

// Rows a resumed run finds in the ledger already are dropped, delivered
// and rejected alike, with their messageIds kept in step.
func TestLedgerRowsDrop(t *testing.T) {
	r := delivered(10, 11, 12, 13)
	r.Reject(14, "sink", 400, nil, time.Now())
	r.Reject(15, "source", 0, nil, time.Now())
	r.Drop(func(row int64) bool { return row == 11 || row == 12 || row == 15 })
	if r.Len() != 3 || fmt.Sprint(r.row) != "[10 13]" || string(r.ids) != "id-10id-13" || r.idEnd[1] != int32(len("id-10id-13")) || r.rejects[0].row != 14 {
		t.Fatalf("after drop: %v %q %v %v", r.row, r.ids, r.idEnd, r.rejects)
	}
}

// BenchmarkLedgerPart appends a part's worth of delivered rows, with
// UUID messageIds, and writes it: the ledger's cost per row.
func BenchmarkLedgerPart(b *testing.B) {
	const n = DefaultLedgerRows
	rows := make([]int64, n)
	ids := make([][]byte, n)
	for i := range rows {
		rows[i] = int64(i)
		sum := sha1.Sum([]byte(strconv.Itoa(i)))
		ids[i] = fmt.Appendf(nil, "%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	}
	l, err := OpenLedger(context.Background(), LedgerOptions{Where: b.TempDir(), Name: "bench", Run: "r1"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	at := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var r LedgerRows
		for i := 0; i < n; i += 500 { // as a sink reports, a request at a time
			r.Deliver(200, rows[i:min(i+500, n)], ids[i:min(i+500, n)], at)
		}
		l.Append("s3://bucket/events/part-0001.parquet", &r)
		if err := l.Flush(context.Background(), l.Cut()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}

// TestLedgerHoldsFewPartsInMemory appends many parts' worth of rows with
// the writing goroutine stopped (a writer that cannot keep up): the parts
// cut and not yet written never pass maxPendingParts, and every row
// reaches a part.
func TestLedgerHoldsFewPartsInMemory(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLedger(context.Background(), LedgerOptions{Where: dir, Name: "p", Run: "r", Rows: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.stop()
	<-l.doneBg
	for i := range 100 {
		var r LedgerRows
		rows := make([]int64, 25)
		for j := range rows {
			rows[j] = int64(i*25 + j)
		}
		r.Deliver(200, rows, nil, time.Now())
		l.Append("split", &r)
		l.mu.Lock()
		pending := len(l.full)
		l.mu.Unlock()
		if pending > maxPendingParts {
			t.Fatalf("after %d appends, %d parts wait in memory", i+1, pending)
		}
	}
	if err := l.Flush(context.Background(), l.Cut()); err != nil {
		t.Fatal(err)
	}
	if l.Rows() != 2500 {
		t.Fatalf("%d rows written, want 2500", l.Rows())
	}
}
