package message_test

import (
	"fmt"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/message"
)

// A record whose columns are named by message path becomes one JSON message
// per row: nested paths nest, nulls are left out, timestamps are RFC 3339
// UTC with milliseconds, and every message gets a deterministic messageId.
// A row Segment would drop after a 200 comes back as a reject instead.
func ExampleEncoder_Encode() {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "type", Type: arrow.BinaryTypes.String},
		{Name: "event", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "userId", Type: arrow.BinaryTypes.String},
		{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "properties.total", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "properties.plan", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	rec, _, err := array.RecordFromJSON(memory.NewGoAllocator(), schema, strings.NewReader(`[
		{"type": "track", "event": "Order Completed", "userId": "u1", "timestamp": "2024-03-01T12:00:00.250Z", "properties.total": 19.9, "properties.plan": "pro"},
		{"type": "track", "event": null, "userId": "u2", "timestamp": "2024-03-01T12:00:01Z", "properties.total": 5},
		{"type": "identify", "userId": "u3", "timestamp": "2024-03-01T12:00:02Z", "properties.total": null}
	]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	b := pipeline.NewBatch("orders.parquet", 0, rec) // the batch owns rec
	defer b.Release()

	enc := message.NewEncoder(message.Options{Pipeline: "orders-2024", Version: "1.0.0"})
	rejects, err := enc.Encode(b, func(row int, msg []byte) error {
		fmt.Printf("row %d: %s\n", row, msg)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rejects {
		fmt.Printf("rejected row %d, column %s: %s\n", r.Row, r.Column, r.Reason)
	}
	// Output:
	// row 0: {"type":"track","event":"Order Completed","userId":"u1","timestamp":"2024-03-01T12:00:00.250Z","properties":{"total":19.9,"plan":"pro"},"messageId":"72eb71cc-bd92-57cb-8029-1a0e38105b56","context":{"library":{"name":"backfill","version":"1.0.0"}}}
	// row 2: {"type":"identify","userId":"u3","timestamp":"2024-03-01T12:00:02.000Z","messageId":"6cc8b48e-25c7-5e8f-b8c7-725b6a1086a0","context":{"library":{"name":"backfill","version":"1.0.0"}}}
	// rejected row 1, column event: track message has no event
}

// A derived messageId depends only on the pipeline's name, the split and
// the row's offset in it, so a retry, a resumed run and a rerun send the
// same id and Segment drops the copies. It is a version-5 UUID, so other
// tools can recompute it, e.g. Python's
// uuid.uuid5(uuid.UUID(Namespace), "orders-2024\0orders.parquet\0" + "0"),
// which gives the same ids as below.
func ExampleDeriveID() {
	fmt.Println(message.DeriveID("orders-2024", "orders.parquet", 0))
	fmt.Println(message.DeriveID("orders-2024", "orders.parquet", 1))
	fmt.Println(message.DeriveID("orders-2024-replay", "orders.parquet", 0)) // another pipeline: other ids
	// Output:
	// 72eb71cc-bd92-57cb-8029-1a0e38105b56
	// e010b07c-2b95-5d6a-b2de-b7952a3db936
	// 2bd79966-6e89-57c4-961d-8c98506f106d
}
