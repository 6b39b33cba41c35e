// Command gen writes the benchmark's Parquet file.
package main

import (
	"flag"
	"log"

	"github.com/backfillhq/backfill/bench/internal/events"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows to write")
	out := flag.String("out", "events.parquet", "the Parquet file")
	flag.Parse()
	if err := events.Write(*out, *rows); err != nil {
		log.Fatal(err)
	}
}
