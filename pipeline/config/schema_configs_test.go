package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/backfillhq/backfill/pipeline/config"
	_ "github.com/backfillhq/backfill/sinks/file"
	_ "github.com/backfillhq/backfill/sinks/segment"
	_ "github.com/backfillhq/backfill/sources/bigquery"
	_ "github.com/backfillhq/backfill/sources/file"
	_ "github.com/backfillhq/backfill/sources/s3"
	_ "github.com/backfillhq/backfill/transforms"
)

// Every shipped pipeline passes the loader (rules included) and the JSON
// Schema `backfill schema` prints, with its ${VAR} defaults.
func TestShippedConfigsMatchSchema(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no configs")
	}
	lookup := func(k string) (string, bool) {
		if k == "SEGMENT_WRITE_KEY" {
			return "test-key", true
		}
		return "", false
	}
	schema := config.JSONSchema(nil)
	for _, f := range files {
		if _, err := config.LoadFile(f, config.LoadOptions{LookupEnv: lookup}); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := config.InterpolatedDocument(data, lookup)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if errs := config.SchemaErrors(schema, doc); len(errs) > 0 {
			t.Errorf("%s does not match the schema: %v", filepath.Base(f), errs)
		}
	}
}
