package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/backfillhq/backfill/pipeline"
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/sources/file"
	_ "github.com/backfillhq/backfill/transforms"
)

// Load reports every problem of a pipeline file at once, each with its
// line and column, a JSON pointer to the value and a stable code, which is
// what `backfill validate` prints and what `backfill run` refuses to start
// with.
func ExampleLoad() {
	yaml := `name: orders
source:
  file:
    path: ${ORDERS_DIR}/*.parquet
    formt: parquet
transforms:
  - timestamp: {field: created_at, on_missing: guess}
  - strp: {fields: [sentAt]}
sink:
  file: {path: out.ndjson}
`
	lookupEnv := func(string) (string, bool) { return "", false } // ORDERS_DIR is not set
	_, err := pipeline.Load("orders.yaml", []byte(yaml), pipeline.LoadOptions{LookupEnv: lookupEnv})
	var errs pipeline.ConfigErrors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Printf("%d:%d %s %s\n", e.Line, e.Col, e.Code, e.Path)
		}
		fmt.Println()
		fmt.Println(err)
	}
	// Output:
	// 4:11 unset_env /source/file/path
	// 5:5 unknown_field /source/file/formt
	// 7:48 invalid_value /transforms/0/timestamp/on_missing
	// 8:5 unknown_plugin /transforms/1/strp
	//
	// orders.yaml:4:11: /source/file/path: environment variable ORDERS_DIR is not set (export ORDERS_DIR, or write ${ORDERS_DIR:-default})
	// orders.yaml:5:5: /source/file/formt: unknown field "formt" (did you mean "format"?)
	// orders.yaml:7:48: /transforms/0/timestamp/on_missing: "guess" is not an allowed value (one of: reject, skip, now)
	// orders.yaml:8:5: /transforms/1/strp: unknown transform "strp" (did you mean "strip"?)
}

// Run reads every split, applies the transforms, delivers to the sink and
// checkpoints; every row read ends up delivered or in the dead-letter file.
// A second run resumes from the checkpoint and has nothing left to do.
func ExampleRun() {
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
`
	cfg, err := pipeline.Load("signups.yaml", []byte(yaml), pipeline.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for run := 1; run <= 2; run++ {
		rep, err := pipeline.Run(context.Background(), cfg, pipeline.RunOptions{})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("run %d: %s, read %d, delivered %d, rejected %d, splits skipped %d\n",
			run, rep.Status, rep.RowsRead, rep.RowsDelivered, rep.RowsRejected, rep.SplitsSkipped)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.ndjson"))
	fmt.Print(strings.Count(string(out), "\n"), " messages in out.ndjson\n")
	dead, _ := os.ReadFile(pipeline.DeadLetterPath(cfg, 0, 1))
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
