package config

import (
	"encoding/json"

	"go.yaml.in/yaml/v3"
)

// InterpolatedDocument is a pipeline file as the parser sees it, after
// ${VAR} interpolation, decoded as JSON decodes: what the JSON Schema is
// checked against in tests.
func InterpolatedDocument(data []byte, lookup func(string) (string, bool)) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	p := &parser{file: "", reg: NewRegistry(), lookup: lookup}
	p.interpolate(&doc, "")
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(b, &out)
}
