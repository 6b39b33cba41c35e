package config

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

// The schema takes what the loader takes: ${VAR} references in integer
// fields, a transform written as its name alone (`- strip`), and a name
// alone only for a plugin whose empty config the loader takes.
func TestSchemaTakesReferencesAndBareNames(t *testing.T) {
	reg := testRegistry()
	schema := JSONSchema(reg)
	const src = `
name: orders-2024
source:
  s3:
    bucket: acme
    timeout: ${TIMEOUT:-30s}
    max_keys: ${MAX_KEYS:-100}
transforms:
  - strip
  - strip: {preset: segment-replay}
sink:
  segment:
    write_key: ${KEY}
    gzip: ${GZIP:-true}
    batch:
      max_events: ${MAX:-500}
workers: ${WORKERS}
`
	if _, err := Load("p.yaml", []byte(src), LoadOptions{Registry: reg, LookupEnv: env("KEY", "k", "WORKERS", "2")}); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	if errs := SchemaErrors(schema, v); len(errs) > 0 {
		t.Errorf("the schema rejects what the loader takes: %v", errs)
	}
	// The s3 source needs a bucket: not one to write alone.
	if errs := SchemaErrors(schema, map[string]any{"name": "x", "source": "s3", "sink": "segment"}); len(errs) == 0 {
		t.Error("the schema takes `source: s3`, which has no bucket")
	}
	if errs := SchemaErrors(schema, map[string]any{"name": "x", "source": map[string]any{"s3": map[string]any{"bucket": "b"}},
		"sink": map[string]any{"segment": map[string]any{"write_key": "k"}}, "transforms": []any{"strip"}}); len(errs) > 0 {
		t.Errorf("- strip: %v", errs)
	}
}
