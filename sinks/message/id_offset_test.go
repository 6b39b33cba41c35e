package message

import (
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
)

// During an emit, MessageIDOffset says where the message's messageId
// starts, and IDAt reads it: the derived one, or the data's, escapes
// decoded, wherever its column sits.
func TestMessageIDOffsetPointsAtTheMessageID(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	rec := makeRecord(t, mem,
		str("type", "track", "track", "track"),
		str("event", "A", "B", "C"),
		str("userId", "u", "u", "u"),
		str("messageId", nil, `own "quoted" \ id`, ""),
		str("properties.messageId", "not this one", "nor this", "x"))
	b := pipeline.NewBatch("split", 40, rec)
	defer b.Release()
	e := NewEncoder(Options{Pipeline: "p", SentAt: true})
	var got []string
	rejects, err := e.Encode(b, func(row int, msg []byte) error {
		got = append(got, string(IDAt(msg, e.MessageIDOffset())))
		return nil
	})
	if err != nil || len(rejects) != 0 {
		t.Fatal(err, rejects)
	}
	want := []string{DeriveID("p", "split", 40), `own "quoted" \ id`, DeriveID("p", "split", 42)}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("ids %q, want %q", got, want)
	}
	if IDAt([]byte(`{"a":1}`), 3) != nil || IDAt(nil, 0) != nil || IDAt([]byte(`"open`), 0) != nil {
		t.Fatal("IDAt read a string where none is")
	}
}
