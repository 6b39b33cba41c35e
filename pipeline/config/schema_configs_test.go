package config_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	_ "github.com/backfillhq/backfill/internal/plugins"
	"github.com/backfillhq/backfill/pipeline/config"
)

// pipelineFile is a pipeline the project shows: a file of configs/, or a
// YAML example of the README with a top-level source.
type pipelineFile struct {
	name  string // configs/x.yaml, README.md:42
	data  []byte
	valid bool // the README's bad.yaml is shown for its errors
}

func shippedPipelines(t *testing.T) []pipelineFile {
	t.Helper()
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "configs", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no configs")
	}
	var out []pipelineFile
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pipelineFile{name: "configs/" + filepath.Base(f), data: data, valid: true})
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	examples := 0
	text := string(readme)
	for prevEnd := 0; ; {
		i := strings.Index(text[prevEnd:], "```yaml\n")
		if i < 0 {
			break
		}
		start := prevEnd + i + len("```yaml\n")
		j := strings.Index(text[start:], "\n```")
		if j < 0 {
			t.Fatalf("README.md: a ```yaml block is not closed")
		}
		block := text[start : start+j+1]
		before := text[prevEnd:start]
		prevEnd = start + j + len("\n```")
		var top map[string]any
		if yaml.Unmarshal([]byte(block), &top) != nil || top["source"] == nil {
			continue // not a pipeline
		}
		examples++
		line := strings.Count(text[:start], "\n") + 1
		// The invalid example is the one the line above introduces as
		// bad.yaml.
		lines := strings.Split(strings.TrimSpace(strings.TrimSuffix(before, "```yaml\n")), "\n")
		out = append(out, pipelineFile{name: fmt.Sprintf("README.md:%d", line), data: []byte(block),
			valid: !strings.Contains(lines[len(lines)-1], "bad.yaml")})
	}
	if examples < 2 {
		t.Fatalf("found %d pipeline examples in README.md, want the concepts one and bad.yaml", examples)
	}
	return out
}

// Every shipped pipeline and README example, as written (${VAR}
// references included, not replaced), is valid for `backfill schema` when
// the loader takes it, and invalid when it does not (README's bad.yaml).
// The schema is checked by a real JSON Schema validator.
func TestShippedPipelinesMatchSchema(t *testing.T) {
	sch, err := config.CompileSchema(config.JSONSchema(config.Default))
	if err != nil {
		t.Fatalf("backfill schema does not compile: %v", err)
	}
	lookup := func(k string) (string, bool) {
		if k == "SEGMENT_WRITE_KEY" {
			return "test-key", true
		}
		return "", false
	}
	for _, f := range shippedPipelines(t) {
		t.Run(f.name, func(t *testing.T) {
			_, lerr := config.Load(f.name, f.data, config.LoadOptions{LookupEnv: lookup})
			if (lerr == nil) != f.valid {
				t.Errorf("the loader says %v, want valid %v", lerr, f.valid)
			}
			var v any
			if err := yaml.Unmarshal(f.data, &v); err != nil {
				t.Fatal(err)
			}
			doc, err := config.JSONValue(v)
			if err != nil {
				t.Fatal(err)
			}
			serr := sch.Validate(doc)
			if (serr == nil) != f.valid {
				t.Errorf("the schema says %v, want valid %v", serr, f.valid)
			}
		})
	}
}

// The schema `backfill schema` prints is a draft 2020-12 schema: it holds
// against the draft's meta-schema.
func TestSchemaMatchesMetaSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat() // patterns are regular expressions
	meta, err := c.Compile("https://json-schema.org/draft/2020-12/schema")
	if err != nil {
		t.Fatal(err)
	}
	schema := config.JSONSchema(config.Default)
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema is %v", schema["$schema"])
	}
	doc, err := config.JSONValue(schema)
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.Validate(doc); err != nil {
		t.Fatalf("the schema breaks the 2020-12 meta-schema: %v", err)
	}
}

// The schema takes a ${VAR} reference wherever the loader does (before it
// checks types), keeps literal values strict, and takes a plugin written
// as its name alone exactly when the loader does.
func TestSchemaTakesReferences(t *testing.T) {
	sch, err := config.CompileSchema(config.JSONSchema(config.Default))
	if err != nil {
		t.Fatal(err)
	}
	const base = "name: x\nsource: {file: {path: a.csv}}\nsink: {file: {path: out.ndjson}}\n"
	vars := map[string]string{"N": "3", "PRESET": "segment-replay"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, c := range []struct {
		yaml  string
		valid bool
	}{
		{"workers: ${N}", true},
		{"workers: ${N:-4}", true},
		{"workers: 4", true},
		{"workers: many", false},
		{"workers: $${N}", false}, // "$$" is a literal "$": the string "${N}"
		{"workers: 4.5", false},
		{"on_error: ${ON_ERROR:-stop}", true},
		{"on_error: stop", true},
		{"on_error: stopp", false},
		{"on_error:", true},
		{"checkpoint_interval: ${EVERY:-5s}", true},
		{"checkpoint_interval: 1m30s", true},
		{"checkpoint_interval: 5x", false},
		{"checkpoint_failure_timeout: 0", true},
		{"state: ${STATE:-.backfill}/state", true},
		{"max_rejects: 1000", true}, // a string field takes any scalar's text
		{"batch_rows: [1]", false},
		{"source:\n  file:\n    path: a.csv\n    csv:\n      header: ${HEADER:-true}", true},
		{"source:\n  file:\n    path: a.csv\n    csv:\n      header: yes please", false},
		{"transforms: [message_id]", true},
		{"transforms: [strip]", false}, // strip needs fields or a preset
		{"transforms: [stirp]", false},
		{"transforms:\n  - strip:\n      preset: ${PRESET}", true}, // not in a flow {}: "{" and "}" end it
		{"transforms: [{strip: {preset: all}}]", false},
	} {
		doc := base + c.yaml + "\n"
		if strings.HasPrefix(c.yaml, "source:") {
			doc = strings.Replace(base, "source: {file: {path: a.csv}}\n", "", 1) + c.yaml + "\n"
		}
		_, lerr := config.Load("p.yaml", []byte(doc), config.LoadOptions{LookupEnv: lookup})
		if (lerr == nil) != c.valid {
			t.Errorf("%s: the loader says %v, want valid %v", c.yaml, lerr, c.valid)
		}
		var v any
		if err := yaml.NewDecoder(bytes.NewReader([]byte(doc))).Decode(&v); err != nil {
			t.Fatal(err)
		}
		jv, err := config.JSONValue(v)
		if err != nil {
			t.Fatal(err)
		}
		if serr := sch.Validate(jv); (serr == nil) != c.valid {
			t.Errorf("%s: the schema says %v, want valid %v", c.yaml, serr, c.valid)
		}
	}
}
