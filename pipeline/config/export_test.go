package config

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The JSON Schema of pipeline files is checked with a real validator,
// github.com/santhosh-tekuri/jsonschema (draft 2020-12, as editors and CI
// linters read it), not with one written for the tests.

// CompileSchema compiles a JSON Schema, or a fragment of one (draft
// 2020-12 when it names none). Compiling checks it against its
// meta-schema and its patterns as regular expressions.
func CompileSchema(schema any) (*jsonschema.Schema, error) {
	doc, err := JSONValue(schema)
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	const url = "https://backfill.invalid/pipeline.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// JSONValue is v as the validator takes it: v encoded as JSON and decoded
// again (numbers as json.Number).
func JSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// SchemaErrors checks a value (anything encoding/json encodes) against a
// JSON Schema or a fragment of one, and says where it fails: nil when it
// holds.
func SchemaErrors(schema, v any) []string {
	sch, err := CompileSchema(schema)
	if err != nil {
		return []string{"the schema does not compile: " + err.Error()}
	}
	doc, err := JSONValue(v)
	if err != nil {
		return []string{err.Error()}
	}
	if err := sch.Validate(doc); err != nil {
		return strings.Split(err.Error(), "\n")
	}
	return nil
}
