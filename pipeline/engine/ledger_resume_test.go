package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/state"
)

// holdSink reports every batch's rows as receipts at once, but the one
// starting at row hold of split s00, which it keeps until Close: it is
// acknowledged after every later batch, or never.
type holdSink struct {
	hold      int64 // -1: none
	mu        sync.Mutex
	held      *pipeline.Batch
	delivered int
	onDeliver func(n int)
}

func (s *holdSink) Open(context.Context) error { return nil }
func (s *holdSink) Write(_ context.Context, b *pipeline.Batch) error {
	if b.Split == "s00" && b.Start == s.hold {
		s.mu.Lock()
		s.held = b
		s.mu.Unlock()
		return nil
	}
	rows := make([]int64, b.NumRows())
	ids := make([][]byte, len(rows))
	for i := range rows {
		rows[i] = b.Row(i)
		ids[i] = []byte(fmt.Sprintf("%s:%d", b.Split, rows[i]))
	}
	b.DeliveredRows(200, rows, ids)
	b.Release()
	b.Ack(nil)
	s.mu.Lock()
	s.delivered++
	n := s.delivered
	s.mu.Unlock()
	if s.onDeliver != nil {
		s.onDeliver(n)
	}
	return nil
}
func (s *holdSink) Close(context.Context) error {
	if s.held != nil {
		s.held.Release()
		s.held.Ack(fmt.Errorf("%w: held", pipeline.ErrStopped))
	}
	return nil
}

func ledgerRows(t *testing.T, dir string) []state.LedgerRow {
	t.Helper()
	parts, _ := filepath.Glob(filepath.Join(dir, "gen", "*", "part-*.parquet"))
	sort.Strings(parts)
	var out []state.LedgerRow
	for _, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := state.ReadLedgerPart(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rows...)
	}
	return out
}

// Rows acknowledged past a checkpoint's offset are in the ledger already
// (their batch was done before one ahead of them): the checkpoint records
// their range, and the resumed run, which reads and delivers them again,
// does not record them twice. Each row is in the ledger once.
func TestLedgerResumeRecordsRowsAheadOnce(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger")
	f := newFixture(t, 2, 100, "ledger: "+ledger+"\nworkers: 1\n")
	defer f.mem.AssertSize(t, 0)
	f.src.badRows = map[int64]bool{50: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// s00's rows in batches of 7: the first held, the 14 others done.
	first := &holdSink{hold: 0, onDeliver: func(n int) {
		if n == 14 {
			cancel()
		}
	}}
	if _, err := f.run(ctx, first, Options{}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("first run: %v", err)
	}
	cp := f.checkpoint()
	if cp.Ledger == nil || fmt.Sprint(cp.Ledger.Ahead) != "map[s00:[[7 100]]]" || cp.Splits["s00"].Offset != 0 {
		t.Fatalf("checkpoint: splits %v, ledger %+v", cp.Splits, cp.Ledger)
	}
	if rows := ledgerRows(t, ledger); len(rows) != 93 {
		t.Fatalf("after the first run the ledger holds %d rows, want 93 (s00's rows 7-99)", len(rows))
	}
	second := &holdSink{hold: -1}
	if _, err := f.run(context.Background(), second, Options{}); err != nil {
		t.Fatal(err)
	}
	rows := ledgerRows(t, ledger)
	seen := map[string]int{}
	for _, r := range rows {
		seen[fmt.Sprintf("%s:%d", r.Split, r.Row)]++
		if r.Fate == state.FateDelivered && r.MessageID != fmt.Sprintf("%s:%d", r.Split, r.Row) {
			t.Fatalf("row %+v", r)
		}
		if r.Row == 50 && (r.Fate != state.FateRejected || r.Stage != "source") {
			t.Fatalf("row %+v: want rejected at the source", r)
		}
	}
	if len(rows) != 200 || len(seen) != 200 {
		t.Fatalf("the ledger holds %d rows, %d distinct; want 200 each once", len(rows), len(seen))
	}
	if cp := f.checkpoint(); cp.Ledger == nil || len(cp.Ledger.Ahead) != 0 || cp.Ledger.Parts == 0 {
		t.Fatalf("final checkpoint's ledger %+v", cp.Ledger)
	}
}
