package segment

import (
	"context"
	"net/http"
	"testing"
	"unsafe"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/internal/testkit/segmenttest"
	"github.com/backfillhq/backfill/sinks/message"
)

// A batch whose account keeps a delivery ledger is told which rows were
// delivered, with the messageId each carried and the status that
// acknowledged it: exactly the ids the collector stored, through retries
// and 400 splits; the rows it rejected are dead letters, not receipts.
func TestReceiptsNameEveryDeliveredRowAndItsMessageID(t *testing.T) {
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}, Seed: 7, Fail500: 0.1, RetryAfter: "0",
		Reject: func(m segmenttest.Message) string {
			if string(m.UserID) == `"user-13"` {
				return "refused"
			}
			return ""
		}})
	defer srv.Close()
	dl := &deadLetters{WantReceipts: true}
	s := newSink(t, srv.URL(), "request:\n  concurrency: 3\n  retry:\n    initial_backoff: 1ms\n    max_backoff: 5ms\nbatch:\n  max_events: 100\n")
	kind := func(row int) rowKind {
		if row%500 == 3 {
			return noEvent
		}
		return good
	}
	sendAll(t, s, dl.Watch(makeBatch(mem, "a", 0, 3000, kind)), dl.Watch(makeBatch(mem, "b", 100, 2000, kind)))
	got := dl.Receipts()
	if int64(len(got)) != dl.Delivered() || len(got) == 0 {
		t.Fatalf("%d receipts for %d rows delivered", len(got), dl.Delivered())
	}
	stored := srv.IDs()
	seen := map[string]bool{}
	for _, r := range got {
		if want := message.DeriveID("test", r.Split, r.Row); r.MessageID != want || r.Status != http.StatusOK {
			t.Fatalf("receipt %+v: want messageId %s and status 200", r, want)
		}
		if stored[r.MessageID] == 0 {
			t.Fatalf("receipt for %s, which the collector did not store", r.MessageID)
		}
		seen[r.MessageID] = true
	}
	if len(seen) != len(got) || len(stored) != len(got) {
		t.Fatalf("%d receipts, %d distinct; the collector stored %d ids", len(got), len(seen), len(stored))
	}
	if dl.Count() == 0 || len(got)+dl.Count() != 5000 {
		t.Fatalf("%d receipts and %d dead letters for 5000 rows", len(got), dl.Count())
	}
}

// Without a ledger a batch wants no receipts: nothing is reported but
// counts. The messageId's offset a msgRef keeps fills what was padding.
func TestNoReceiptsWithoutALedger(t *testing.T) {
	if n := unsafe.Sizeof(msgRef{}); n != 32 {
		t.Fatalf("msgRef is %d bytes, want 32", n)
	}
	mem := arrowtest.CheckedMem(t)
	srv := segmenttest.NewServer(segmenttest.Options{WriteKeys: []string{"KEY"}})
	defer srv.Close()
	dl := &deadLetters{}
	s := newSink(t, srv.URL(), "")
	b := dl.Watch(makeBatch(mem, "a", 0, 100, nil))
	if b.WantsReceipts() {
		t.Fatal("a plain account wants receipts")
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dl.Delivered() != 100 || len(dl.Receipts()) != 0 {
		t.Fatalf("delivered %d, %d receipts", dl.Delivered(), len(dl.Receipts()))
	}
}
