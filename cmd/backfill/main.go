// Command backfill loads historical event data into Segment from a
// declarative YAML pipeline: one source, a chain of transforms, one sink.
package main

import (
	"os"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}
