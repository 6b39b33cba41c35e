package transforms

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

// Every transform that reads values gives the same rows, rejects and
// filtered counts whether its string columns come plain or as dictionaries.
func TestTransformsReadDictionaryColumns(t *testing.T) {
	s := arrow.BinaryTypes.String
	tests := []struct {
		name, transform, conf string
		cols                  []col
	}{
		{"cast", "cast", "fields: {n: int64, when: timestamp}",
			[]col{{"n", s, `["1","2","x",null,"1"]`}, {"when", s, `["2024-01-01T00:00:00Z","2024-01-01T00:00:00Z","2024-01-02",null,"no"]`}}},
		{"filter expression", "filter", `expr: event == "Order Completed" && plan in ["pro", "free"]`,
			[]col{{"event", s, `["Order Completed","Signed Up","Order Completed",null,"Order Completed"]`}, {"plan", s, `["pro","pro","enterprise","pro","free"]`}}},
		{"filter on a sub-path column", "filter", `expr: properties.plan != "free"`,
			[]col{{"properties.plan", s, `["pro","free",null,"free"]`}}},
		{"timestamp", "timestamp", "field: created",
			[]col{{"created", s, `["2024-01-01T00:00:00Z","2024-01-01T00:00:00Z","garbage",null]`}}},
		{"integrations from a column", "integrations", "from_column: dest\ndestinations: {All: false}",
			[]col{{"dest", s, `["{\"Vero\":true}","{\"Vero\":true}","[1]",null]`}}},
		{"message_id from keys", "message_id", "key: [order, kind]",
			[]col{{"order", s, `["o1","o2","o1",null]`}, {"kind", s, `["a","a","b","b"]`}}},
		{"message_id keeps the ids there are", "message_id", "key: [order]\nmode: keep",
			[]col{{"messageId", s, `["keep-me",null,"keep-me",null]`}, {"order", s, `["o1","o2","o3","o4"]`}}},
		{"expand", "expand", "column: message",
			[]col{{"message", s, `["{\"type\":\"track\",\"event\":\"A\"}","{\"type\":\"track\",\"event\":\"A\"}","{bad",null]`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMem(t)
			defer mem.AssertSize(t, 0)
			run := func(dict bool) (rowsOut, rejects []string, filtered int64) {
				tr := mustTransform(t, mem, tt.transform, tt.conf)
				rec := mkRecord(t, mem, tt.cols...)
				if dict {
					rec = arrowtest.DictionaryColumns(t, mem, rec, arrow.PrimitiveTypes.Int32)
				}
				b := pipeline.NewBatch("s", 0, rec)
				defer b.Release()
				if err := tr.Apply(context.Background(), b); err != nil {
					t.Fatalf("dictionaries=%v: %v", dict, err)
				}
				checkAccounting(t, b)
				return rows(b), reasons(b), b.Filtered
			}
			wantRows, wantRejects, wantFiltered := run(false)
			gotRows, gotRejects, gotFiltered := run(true)
			if !equalStrings(gotRows, wantRows) || !equalStrings(gotRejects, wantRejects) || gotFiltered != wantFiltered {
				t.Errorf("from dictionaries:\n rows %q\n rejects %q\n filtered %d\nplain:\n rows %q\n rejects %q\n filtered %d",
					gotRows, gotRejects, gotFiltered, wantRows, wantRejects, wantFiltered)
			}
			if len(wantRows)+len(wantRejects) == 0 || strings.Join(wantRows, "") == "" {
				t.Fatalf("the case keeps no row: it compares nothing")
			}
		})
	}
}
