package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
)

// A sync run releases every Arrow buffer it builds (the messageId column,
// the rows it drops), stops Pebble's goroutines when it ends (TestMain's
// goleak), and its account adds up: unchanged rows are filtered.
func TestSyncReleasesMemoryAndAccounts(t *testing.T) {
	dir := t.TempDir()
	write := func(plan string) {
		var b strings.Builder
		b.WriteString("user_id,plan\n")
		for i := 0; i < 5000; i++ {
			p := "free"
			if i%10 == 0 {
				p = plan
			}
			fmt.Fprintf(&b, "u%d,%s\n", i, p)
		}
		os.WriteFile(filepath.Join(dir, "users.csv"), []byte(b.String()), 0o644)
	}
	cfg, err := config.Load("p.yaml", []byte(`name: users
source: {file: {path: `+dir+`/users.csv, csv: {header: true}}}
transforms:
  - map: {type: identify, userId: user_id, traits: {plan: plan}}
sink: {file: {path: `+dir+`/out.ndjson}}
state: `+dir+`/state
batch_rows: 700
sync: {primary_key: [userId]}
`), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		plan                string
		added, changed, hit int64
	}{{"free", 5000, 0, 0}, {"pro", 0, 500, 4500}, {"pro", 0, 0, 5000}} {
		write(c.plan)
		mem := arrowtest.CheckedMem(t)
		rep, err := engine.New(cfg, engine.Options{Alloc: mem}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s, rows := rep.Sync, rep.Rows()
		if s.Added != c.added || s.Changed != c.changed || s.Unchanged != c.hit || rows.Filtered != c.hit ||
			rows.Delivered != c.added+c.changed || rows.Read != rows.Delivered+rows.Filtered+rows.Rejected+rows.Unacked {
			t.Fatalf("plan %s: %+v, rows %+v", c.plan, s, rows)
		}
	}
}
