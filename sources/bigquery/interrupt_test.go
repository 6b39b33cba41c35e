package bigquery

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
)

// A run stopped while BigQuery runs its query keeps the job's id in the
// checkpoint: the rerun reads that job's result instead of running (and
// paying for) the query again.
func TestStopWhileTheQueryRunsKeepsTheJob(t *testing.T) {
	srv, mem := eventsServer(t, "", 0)
	const sql = "SELECT id, event, ts FROM proj.web.tracks"
	rec := events(memory.NewGoAllocator(), 10, 100)
	srv.AddQuery(sql, rec)
	rec.Release()
	dir := t.TempDir()
	yaml := fmt.Sprintf("name: bq-stop\nsource:\n  bigquery:\n    project: billing\n    query: %q\n"+
		"    endpoint: %s\n    storage_endpoint: %s\n    insecure: true\n    no_auth: true\nsink: {nop: {}}\nstate: %s\n",
		sql, srv.URL, srv.GRPCAddr, dir)
	reg := testRegistry()
	cfg, err := config.Load("p.yaml", []byte(yaml), config.LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	waiting, release := srv.HoldJobs()
	ctx, stop := context.WithCancel(context.Background())
	go func() { <-waiting; stop() }() // Ctrl-C while the query runs
	rep, err := engine.New(cfg, engine.Options{Registry: reg, Alloc: mem}).Run(ctx)
	if !errors.Is(err, engine.ErrInterrupted) || rep.Status != "interrupted" {
		t.Fatalf("err %v, status %s (%s)", err, rep.Status, rep.Error)
	}
	cp, err := state.NewDirStore(dir, "bq-stop", 0, 1).Load(context.Background())
	if err != nil || cp == nil || cp.SourceState[keyJobID] == "" {
		t.Fatalf("checkpoint %+v, %v: want the query job's id", cp, err)
	}
	release()
	rep, err = engine.New(cfg, engine.Options{Registry: reg, Alloc: mem}).Run(context.Background())
	if err != nil || rep.RowsRead != 10 {
		t.Fatalf("rerun: %v, %+v", err, rep)
	}
	if c := srv.Counts(); c.JobsInsert != 1 {
		t.Fatalf("the query ran %d times, want once", c.JobsInsert)
	}
}
