package bigquery

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"
)

// A peek learns the columns from tables.get, or from a dry run of the
// query (planned, not run, not billed), and starts no session nor job.
func TestPeekColumns(t *testing.T) {
	srv, mem := eventsServer(t, "p.d.events", 3)
	rec := events(memory.NewGoAllocator(), 2, 0)
	srv.AddQuery("SELECT id, event FROM `p.d.events`", rec)
	rec.Release()
	srv.AddQueryError("SELECT nope FROM `p.d.events`", "Unrecognized name: nope at [1:8]")
	ctx := context.Background()
	for _, tt := range []struct{ conf, where, names, err string }{
		{"table: p.d.events", "table p.d.events", "id,event,ts", ""},
		{"table: p.d.events\ncolumns: [ts, id, gone]", "the columns: list read from table p.d.events", "id,ts", ""},
		{"project: p\nquery: SELECT id, event FROM `p.d.events`", "the query's result", "id,event,ts", ""},
		{"project: p\nquery: SELECT nope FROM `p.d.events`", "", "", "Unrecognized name: nope"},
		{"table: p.d.missing", "", "", "not found"},
	} {
		src := newSource(t, srv, tt.conf, newState(), mem)
		if !src.PeekRemote() {
			t.Fatal("a BigQuery peek is a request")
		}
		names, where, err := src.PeekColumns(ctx)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.conf, err, tt.err)
			}
			continue
		}
		if err != nil || where != tt.where || !reflect.DeepEqual(names, strings.Split(tt.names, ",")) {
			t.Errorf("%s: %v %q %v", tt.conf, names, where, err)
		}
	}
	c := srv.Counts()
	if c.TablesGet != 3 || c.DryRuns != 2 || c.JobsInsert != 0 || c.CreateReadSession != 0 {
		t.Fatalf("counts %+v", c)
	}
	noRESTSurprises(t, srv)
}
