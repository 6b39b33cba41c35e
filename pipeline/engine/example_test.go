package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/sources/file"
	_ "github.com/backfillhq/backfill/transforms"
)

// A run reads every split, applies the transforms, delivers to the sink and
// checkpoints; every row read ends up delivered or in the dead-letter file.
// A second run resumes from the checkpoint and has nothing left to do.
func ExampleRun_Run() {
	dir, err := os.MkdirTemp("", "backfill-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	csv := "user_id,plan,amount\nu1,pro,19.90\nu2,free,not-a-number\nu3,pro,5\n"
	if err := os.WriteFile(filepath.Join(dir, "signups.csv"), []byte(csv), 0o644); err != nil {
		fmt.Println(err)
		return
	}
	yaml := `name: signups
source:
  file:
    path: ` + dir + `/*.csv
    csv: {columns: {amount: float64}}
transforms:
  - map: {type: identify, userId: user_id, traits: {plan: plan, ltv: amount}}
sink:
  file: {path: ` + dir + `/out.ndjson}
state: ` + dir + `/state
on_error: dead_letter # the default: a bad row is set aside, the run goes on
max_rejects: none     # this input is a third bad; the default (10%) would stop the run
`
	cfg, err := config.Load("signups.yaml", []byte(yaml), config.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for run := 1; run <= 2; run++ {
		rep, err := engine.New(cfg, engine.Options{}).Run(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("run %d: %s, read %d, delivered %d, rejected %d, splits skipped %d\n",
			run, rep.Status, rep.RowsRead, rep.RowsDelivered, rep.RowsRejected, rep.SplitsSkipped)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.ndjson"))
	fmt.Print(strings.Count(string(out), "\n"), " messages in out.ndjson\n")
	dead, _ := os.ReadFile(filepath.Join(dir, "state", "signups", "dead-letters.ndjson"))
	var letter struct {
		Row            int64
		Column, Reason string
	}
	if err := json.Unmarshal(dead, &letter); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("dead letter: row %d, column %s: %s\n", letter.Row, letter.Column, strings.ReplaceAll(letter.Reason, dir, "DIR"))
	// Output:
	// run 1: ok, read 3, delivered 2, rejected 1, splits skipped 0
	// run 2: ok, read 0, delivered 0, rejected 0, splits skipped 1
	// 2 messages in out.ndjson
	// dead letter: row 1, column amount: DIR/signups.csv line 3, column "amount": expected float64, got "not-a-number"
}
