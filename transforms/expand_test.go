package transforms

import (
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/backfillhq/backfill/pipeline/record"
)

func TestExpand(t *testing.T) {
	str := arrow.BinaryTypes.String
	msgs := `[
		"{\"type\":\"track\",\"event\":\"Order \\\"Big\\\" Completed\",\"userId\":\"u1\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"properties\":{\"total\":9.5},\"_metadata\":{\"bundled\":[]}}",
		"{\"type\":\"identify\",\"userId\":\"u2\",\"traits\":{\"plan\":\"pro\"},\"event\":null}",
		"\"just a string\"",
		"{\"type\":\"track\",",
		null,
		"{\"type\":\"track\",\"a.b\":1}",
		"{\"type\":\"track\",\"userId\":42,\"event\":\"E\"}"
	]`
	b := applyTransform(t, "expand", "column: message\nkeep: [source_file]", "",
		col{"message", record.JSON, msgs},
		col{"source_file", str, `["a","a","a","a","a","a","b"]`},
		col{"_key", str, `["k0","k1","k2","k3","k4","k5","k6"]`},
		col{"other", str, `["x","x","x","x","x","x","x"]`})
	got := rows(b)
	want := []string{
		`source_file=a _key=k0 type=track event=Order "Big" Completed userId="u1" timestamp=2024-03-01T10:00:00Z properties={"total":9.5} _metadata={"bundled":[]}`,
		`source_file=a _key=k1 type=identify userId="u2" traits={"plan":"pro"}`,
		`source_file=b _key=k6 type=track event=E userId=42`,
	}
	if !equalStrings(got, want) {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// userId held a number in one row: the column is JSON, so the sink
	// checks it as a non-string id; every other key of only strings is a
	// string column.
	types := map[string]string{}
	for _, f := range b.Record.Schema().Fields() {
		types[f.Name] = f.Type.String()
	}
	if !record.IsJSON(fieldType(b.Record, "userId")) || types["event"] != "utf8" || types["timestamp"] != "utf8" || types["type"] != "utf8" {
		t.Fatalf("types %v", types)
	}
	wantReasons := []string{
		`2:message:message holds a string, not a message object`,
		`3:message:message holds invalid JSON: byte 17: unexpected end of JSON, expected a key string`,
		`4:message:message is null: there is no message to send`,
		`5:message:message has the key "a.b", which cannot be a message field (empty, or with a '.')`,
	}
	if r := reasons(b); !equalStrings(r, wantReasons) {
		t.Fatalf("rejects:\n%s", strings.Join(r, "\n"))
	}
}

func TestExpandErrors(t *testing.T) {
	applyTransform(t, "expand", "column: payload", `expand: column "payload" is not in the data (did you mean "payloads"?)`,
		col{"payloads", arrow.BinaryTypes.String, `["{}"]`})
	applyTransform(t, "expand", "column: n", `expand: column "n" is int64; expand reads JSON text`,
		col{"n", arrow.PrimitiveTypes.Int64, `[1]`})
	if _, err := buildTransform(newMem(t), "expand", "keep: [a]"); err == nil || !strings.Contains(err.Error(), "column") {
		t.Fatalf("no column: %v", err)
	}
}

func fieldType(rec arrow.Record, name string) arrow.DataType {
	if i := colIndex(rec.Schema(), name); i >= 0 {
		return rec.Schema().Field(i).Type
	}
	return nil
}

// A CSV column of JSON text (a Snowflake VARIANT unloaded to CSV) expands
// like a JSON column.
func TestExpandTextColumn(t *testing.T) {
	b := applyTransform(t, "expand", "column: EVENT", "",
		col{"EVENT", arrow.BinaryTypes.String, `["{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"plan\":\"pro\"}}"]`})
	if got := rows(b); len(got) != 1 || got[0] != `type=identify userId=u traits={"plan":"pro"}` {
		t.Fatalf("rows %q", got)
	}
}

// A key repeated in a message: the last value wins, as encoding/json
// decodes it, a null too (a null used to leave the earlier value in
// place; FuzzExpand's property).
func TestExpandRepeatedKeyLastWins(t *testing.T) {
	b := applyTransform(t, "expand", "column: message", "",
		col{"message", record.JSON, `["{\"a\":1,\"a\":null,\"b\":\"x\"}","{\"a\":\"y\",\"a\":2}","{\"a\":null,\"a\":\"z\"}"]`})
	want := []string{`b=x`, `a=2`, `a="z"`}
	if got := rows(b); !equalStrings(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
}
