package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// What `backfill schema` prints, read by a real JSON Schema validator as
// an editor reads it, takes the shipped pipelines as written (${VAR} in
// boolean and number fields, a transform named alone) and flags a wrong
// value.
func TestSchemaCommandTakesShippedPipelines(t *testing.T) {
	code, out, stderr := runCLI(t, "", "schema")
	if code != exitOK {
		t.Fatalf("schema: exit %d\n%s", code, stderr)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "https://backfill.invalid/pipeline.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	check := func(name string, data []byte) error {
		t.Helper()
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(inst)
	}
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "configs", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no configs")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(f, data); err != nil {
			t.Errorf("%s does not match `backfill schema`: %v", filepath.Base(f), err)
		}
	}
	const good = "name: x\nsource: {file: {path: a.csv}}\ntransforms: [message_id]\nsink: {file: {path: out.ndjson}}\nworkers: ${WORKERS:-4}\n"
	if err := check("good", []byte(good)); err != nil {
		t.Errorf("%s: %v", good, err)
	}
	for _, bad := range []string{
		strings.Replace(good, "${WORKERS:-4}", "many", 1),
		strings.Replace(good, "[message_id]", "[mesage_id]", 1),
		good + "on_error: sotp\n",
	} {
		if check("bad", []byte(bad)) == nil {
			t.Errorf("the schema takes\n%s", bad)
		}
	}
}
