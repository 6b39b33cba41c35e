package transforms

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

func TestStrip(t *testing.T) {
	archive := []col{
		{"type", str, `["track"]`},
		{"messageId", str, `["m1"]`},
		{"sentAt", str, `["2024-01-01T00:00:00Z"]`},
		{"received_at", str, `["x"]`},
		{"_metadata", record.JSON, `["{\"bundled\":[]}"]`},
		{"version", i64, `[2]`},
		{"context", record.JSON, `["{\"ip\":\"1.2.3.4\",\"library\":{\"name\":\"analytics.js\",\"version\":\"2\"}}"]`},
		{"properties", record.JSON, `["{\"total\":1.50,\"internal_a\":1,\"internal_b\":{\"x\":1},\"nested\":{\"internal_c\":1}}"]`},
		{"properties.plan", str, `["pro"]`},
		{"properties.internal_id", str, `["secret"]`},
	}
	tests := []struct {
		name     string
		conf     string
		wantCols []string
		wantRow  string
	}{
		{name: "preset", conf: "preset: segment-replay",
			wantCols: []string{"type", "context", "properties", "properties.plan", "properties.internal_id"}},
		{name: "preset keeping messageId", conf: "preset: segment-replay\nkeep: [messageId]",
			wantCols: []string{"type", "messageId", "context", "properties", "properties.plan", "properties.internal_id"}},
		{name: "globs in columns and JSON, order and numbers kept", conf: `fields: ["properties.internal_*"]`,
			wantRow: `type=track messageId=m1 sentAt=2024-01-01T00:00:00Z received_at=x _metadata={"bundled":[]} version=2 context={"ip":"1.2.3.4","library":{"name":"analytics.js","version":"2"}} properties={"total":1.50,"nested":{"internal_c":1}} properties.plan=pro`},
		{name: "nested path in JSON", conf: "fields: [context.library.version, properties.nested.internal_c]",
			wantRow: `type=track messageId=m1 sentAt=2024-01-01T00:00:00Z received_at=x _metadata={"bundled":[]} version=2 context={"ip":"1.2.3.4","library":{"name":"analytics.js"}} properties={"total":1.50,"internal_a":1,"internal_b":{"x":1},"nested":{}} properties.plan=pro properties.internal_id=secret`},
		{name: "whole object column and its sub-columns", conf: "fields: [properties]",
			wantCols: []string{"type", "messageId", "sentAt", "received_at", "_metadata", "version", "context"}},
		{name: "keep inside JSON", conf: `fields: ["properties.internal_*"]` + "\nkeep: [properties.internal_a]",
			wantRow: `type=track messageId=m1 sentAt=2024-01-01T00:00:00Z received_at=x _metadata={"bundled":[]} version=2 context={"ip":"1.2.3.4","library":{"name":"analytics.js","version":"2"}} properties={"total":1.50,"internal_a":1,"nested":{"internal_c":1}} properties.plan=pro`},
		{name: "nothing matches: zero change", conf: "fields: [traits.email]",
			wantCols: []string{"type", "messageId", "sentAt", "received_at", "_metadata", "version", "context", "properties", "properties.plan", "properties.internal_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := applyTransform(t, "strip", tt.conf, "", archive...)
			if tt.wantCols != nil && !equalStrings(columnNames(b.Record), tt.wantCols) {
				t.Errorf("columns = %v\nwant      %v", columnNames(b.Record), tt.wantCols)
			}
			if tt.wantRow != "" && rows(b)[0] != tt.wantRow {
				t.Errorf("row = %s\nwant  %s", rows(b)[0], tt.wantRow)
			}
		})
	}
}

func TestStripBadJSON(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "strip", "fields: [context.library]")
	b := pipeline.NewBatch("s", 10, mkRecord(t, mem, col{"context", record.JSON,
		`["{\"library\":1,\"ip\":\"x\"}", "{\"library\":", "[1,2]", null, "{ \"a\" : \"b\\\"}\" , \"library\" : {} }"]`}))
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	want := []string{`context={"ip":"x"}`, `context=[1,2]`, ``, `context={"a" : "b\"}"}`}
	if !equalStrings(rows(b), want) {
		t.Errorf("rows = %q\nwant   %q", rows(b), want)
	}
	if r := reasons(b); len(r) != 1 || !strings.HasPrefix(r[0], "11:context:context: not valid JSON") {
		t.Errorf("rejects = %q", r)
	}
}

func TestStripConfigErrors(t *testing.T) {
	for conf, want := range map[string]string{
		"{}":               "strip removes nothing",
		"fields: ['a.[b']": `"a.[b" is not a valid path pattern`,
		"preset: segment":  `"segment" is not an allowed value`,
		"fields: [a..b]":   `"a..b" is not a valid path pattern`,
	} {
		_, err := buildTransform(memory.DefaultAllocator, "strip", conf)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want %q", conf, err, want)
		}
	}
}

// TestStripRowsWithAndWithoutTheKey mixes rows the fast path copies
// without parsing (no "library" text), rows it must parse, a key written
// with a JSON escape, and nulls, in one column.
func TestStripRowsWithAndWithoutTheKey(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "strip", "fields: [context.library]")
	full := mkRecord(t, mem, col{"context", record.JSON,
		`[null, "{\"ip\":\"1\"}", "{\"ip\":\"2\",\"library\":{\"name\":\"a\"}}", "{\"\\u006cibrary\":1,\"ip\":\"3\"}", "{\"ip\" : \"4\"}", null]`})
	rec := full.NewSlice(1, 6) // a non-zero offset: the null bitmap is copied from it
	full.Release()
	b := pipeline.NewBatch("s", 0, rec)
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	want := []string{`context={"ip":"1"}`, `context={"ip":"2"}`, `context={"ip":"3"}`, `context={"ip" : "4"}`, ``}
	if got := rows(b); !equalStrings(got, want) {
		t.Errorf("rows = %q\nwant   %q", got, want)
	}
}

// A batch whose JSON holds nothing to strip still loses its rows of
// invalid JSON, and their dead letters show the text as read.
func TestStripBadJSONWithNothingToStrip(t *testing.T) {
	mem := newMem(t)
	defer mem.AssertSize(t, 0)
	tr := mustTransform(t, mem, "strip", "fields: [context.library]")
	b := pipeline.NewBatch("s", 0, mkRecord(t, mem, col{"context", record.JSON, `["{\"ip\":\"x\"}", "{\"library\":"]`}))
	defer b.Release()
	if err := tr.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, b)
	if b.NumRows() != 1 || len(b.Rejects) != 1 || !strings.Contains(string(b.Rejects[0].Values), `{\"library\":`) {
		t.Fatalf("%d rows kept, rejects %+v", b.NumRows(), b.Rejects)
	}
}
