// Package plugins imports every plugin compiled into the binary, so the
// binary and the tests that load the shipped pipelines see the same set.
package plugins

import (
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/sinks/segment"
	_ "github.com/backfillhq/backfill/sources/bigquery"
	_ "github.com/backfillhq/backfill/sources/file"
	_ "github.com/backfillhq/backfill/sources/postgres"
	_ "github.com/backfillhq/backfill/sources/s3"
	_ "github.com/backfillhq/backfill/transforms"
)
