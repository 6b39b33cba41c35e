package config_test

import (
	"errors"
	"fmt"

	"github.com/backfillhq/backfill/pipeline/config"
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
	_, err := config.Load("orders.yaml", []byte(yaml), config.LoadOptions{LookupEnv: lookupEnv})
	var errs config.ConfigErrors
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
