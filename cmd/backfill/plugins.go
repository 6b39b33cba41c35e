package main

// The plugins compiled into the binary register themselves on import.
import (
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/sinks/segment"
	_ "github.com/backfillhq/backfill/sources/bigquery"
	_ "github.com/backfillhq/backfill/sources/file"
	_ "github.com/backfillhq/backfill/sources/postgres"
	_ "github.com/backfillhq/backfill/sources/s3"
	_ "github.com/backfillhq/backfill/transforms"
)
