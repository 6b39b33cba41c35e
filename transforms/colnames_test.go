package transforms

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// withDataColumns is rec as a reader gives it: data names every column
// of the input, rec holds the projected ones.
func withDataColumns(rec arrow.Record, data ...string) arrow.Record {
	md := pipeline.DataColumnsMetadata(rec.Schema().Metadata(), data)
	out := array.NewRecord(arrow.NewSchema(rec.Schema().Fields(), &md), rec.Columns(), rec.NumRows())
	rec.Release()
	return out
}

// At run time a missing column is suggested among all the data's columns,
// though the reader gave only the projected ones.
func TestMissingColumnSuggestsAmongTheDataColumns(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	data := []string{"order_id", "customer_id", "event_name", "amount"}
	for _, tt := range []struct{ name, conf, want string }{
		{"map", "type: track\nevent: event_name\nuserId: customerid",
			`map: userId: column "customerid" is not in the data (did you mean "customer_id"?); columns: order_id, customer_id, event_name, amount`},
		{"timestamp", "field: created", `timestamp: column "created" is not in the data; columns: order_id, customer_id, event_name, amount`},
		{"cast", "fields: {amout: float64}", `cast: column "amout" is not in the data (did you mean "amount"?)`},
		{"filter", "expr: amout > 1", `filter: amout > 1: column "amout" is not in the data (did you mean "amount"?)`},
		// In the data, not in the record: not "did you mean" itself.
		{"message_id", "key: [customer_id]", `message_id: column "customer_id" is in the data but not in the record here`},
	} {
		tr := mustTransform(t, mem, tt.name, tt.conf)
		b := pipeline.NewBatch("s", 0, withDataColumns(mkRecord(t, mem, col{"event_name", arrow.BinaryTypes.String, `["x"]`}), data...))
		err := tr.Apply(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
		b.Release()
	}
}

// Map renames into message paths: its output no longer carries the data's
// columns. Rename renames them in the list.
func TestRenamingTransformsKeepTheDataColumnsTrue(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	rec := func() arrow.Record {
		return withDataColumns(mkRecord(t, mem, col{"customer_id", arrow.BinaryTypes.String, `["c"]`}), "id", "customer_id")
	}
	b := pipeline.NewBatch("s", 0, rec())
	defer b.Release()
	if err := mustTransform(t, mem, "map", "type: identify\nuserId: customer_id").Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := pipeline.DataColumns(b.Record.Schema()); got != nil {
		t.Fatalf("after map: %v", got)
	}
	b2 := pipeline.NewBatch("s", 0, rec())
	defer b2.Release()
	if err := mustTransform(t, mem, "rename", "fields: {customer_id: uid}").Apply(context.Background(), b2); err != nil {
		t.Fatal(err)
	}
	if got := pipeline.DataColumns(b2.Record.Schema()); !reflect.DeepEqual(got, []string{"id", "uid"}) {
		t.Fatalf("after rename: %v", got)
	}
}

// The projection asks for what each transform reads: timestamp's field
// (not its output), cast's and rename's columns whether or not a later
// transform reads them.
func TestRequiresNameWhatApplyReads(t *testing.T) {
	mem := newMem(t)
	for _, tt := range []struct{ name, conf, want string }{
		{"timestamp", "field: created_at", "{false [created_at x]}"},
		{"timestamp", "field: created_at\nto: ts", "{false [created_at timestamp x]}"},
		{"cast", "fields: {amount: float64}", "{false [amount timestamp x]}"},
		{"rename", "fields: {a: b, c: timestamp}", "{false [a c x]}"},
	} {
		tr := mustTransform(t, mem, tt.name, tt.conf)
		got := tr.(pipeline.Projector).Requires(pipeline.Columns{Names: []string{"timestamp", "x"}})
		if fmt.Sprint(got) != tt.want {
			t.Errorf("%s %q: Requires = %v, want %s", tt.name, tt.conf, got, tt.want)
		}
		if all := tr.(pipeline.Projector).Requires(pipeline.AllColumns); !all.All {
			t.Errorf("%s: Requires(all) = %v", tt.name, all)
		}
	}
}

// Each transform reports a missing column at the value naming it, coded
// unknown_column; one that does without it reports nothing.
func TestColumnErrorPositions(t *testing.T) {
	mem := newMem(t)
	// buildTransform indents the body by 6 under "  - NAME:" at line 5.
	for _, tt := range []struct{ name, conf, column, want string }{
		{"map", "type: identify\nuserId: uid\ntraits: {email: mail, id: uid}", "uid",
			"test.yaml:7:15: /transforms/0/map/userId: M (H)\ntest.yaml:8:33: /transforms/0/map/traits/id: M (H)"},
		{"map", "type: track\nuserId: {column: uid}", "uid", "test.yaml:7:24: /transforms/0/map/userId/column: M (H)"},
		{"map", "type: track\nuserId: uid", "type", ""},
		{"timestamp", "{}", "timestamp", "test.yaml:6:7: /transforms/0/timestamp/field: M (H)"},
		{"timestamp", "field: ts\non_missing: now", "ts", ""},
		{"filter", `drop: 'a == "b" || b > 1'`, "b", "test.yaml:6:26: /transforms/0/filter/drop: M (H)"},
		{"filter", "expr: x > 1\nafter: 2024-01-01\nfield: ts", "ts", "test.yaml:8:14: /transforms/0/filter/field: M (H)"},
		{"rename", "fields:\n  a/b: c", "a/b", "test.yaml:7:9: /transforms/0/rename/fields/a~1b: M (H)"},
		{"message_id", "{}", "messageId", "test.yaml:6:7: /transforms/0/message_id/from: M (H)"},
		{"expand", "column: m\nkeep: [k]", "k", "test.yaml:7:14: /transforms/0/expand/keep/0: M (H)"},
	} {
		tr := mustTransform(t, mem, tt.name, tt.conf)
		err := tr.(pipeline.ColumnNamer).ColumnError(tt.column, "M", "H")
		got := ""
		if err != nil {
			ces := config.AsConfigErrors(err)
			for _, e := range ces {
				if e.Code != config.CodeUnknownColumn {
					t.Errorf("%s: code %s", tt.name, e.Code)
				}
			}
			got = ces.Error()
		}
		if got != tt.want {
			t.Errorf("%s %q, column %q:\n got %q\nwant %q", tt.name, tt.conf, tt.column, got, tt.want)
		}
	}
}

// identNode finds where an expression reads a name: not in a string
// literal, not as a member after '.'.
func TestIdentNode(t *testing.T) {
	for _, tt := range []struct {
		source string // as written in the file, one line
		style  yaml.Style
		ident  string
		col    int
	}{
		{`a == "b" || b > 1`, 0, "b", 13},
		{`x.b > 1 && b`, 0, "b", 12},
		{`'e == "it''s" && b'`, yaml.SingleQuotedStyle, "b", 18},
		{`"e == 'b' && b"`, yaml.DoubleQuotedStyle, "b", 14},
		{`"e == \"b\" && b"`, yaml.DoubleQuotedStyle, "b", 1}, // escapes before it: the value's start
		{`"user_id != nil"`, yaml.DoubleQuotedStyle, "user_id", 2},
		{`nope`, 0, "b", 1},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("k: "+tt.source), &doc); err != nil {
			t.Fatal(err)
		}
		n := doc.Content[0].Content[1]
		n.Column -= 3 // "k: "
		if n.Style != tt.style {
			t.Fatalf("%s: style %v", tt.source, n.Style)
		}
		got := identNode(n, tt.ident)
		if got.Line != 1 || got.Column != tt.col {
			t.Errorf("%s: %s at column %d, want %d", tt.source, tt.ident, got.Column, tt.col)
		}
	}
}
