package file

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/sinks/message"
)

// A batch whose account keeps a delivery ledger is told, at the fsync,
// which rows are in the file with which messageId (no HTTP status); a
// plain account only how many.
func TestReceiptsAtTheFsync(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	dir := t.TempDir()
	s := openSink(t, Options{Path: filepath.Join(dir, "out.ndjson"), SyncInterval: time.Hour})
	dl := &deadLetters{WantReceipts: true}
	plain := &deadLetters{}
	if err := s.Write(context.Background(), dl.Watch(makeBatch(mem, "s", 100, 20))); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), plain.Watch(makeBatch(mem, "t", 0, 20))); err != nil {
		t.Fatal(err)
	}
	if len(dl.Receipts()) != 0 {
		t.Fatal("receipts before the fsync")
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := dl.Receipts()
	if int64(len(got)) != dl.Delivered() || len(got)+dl.Count() != 20 || dl.Count() == 0 {
		t.Fatalf("%d receipts, %d delivered, %d rejected", len(got), dl.Delivered(), dl.Count())
	}
	for _, r := range got {
		if r.Split != "s" || r.Row%7 == 3 || r.MessageID != message.DeriveID("p", "s", r.Row) || r.Status != 0 {
			t.Fatalf("receipt %+v", r)
		}
	}
	if plain.Delivered() == 0 || len(plain.Receipts()) != 0 {
		t.Fatalf("plain account: %d delivered, %d receipts", plain.Delivered(), len(plain.Receipts()))
	}
}
