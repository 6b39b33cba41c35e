package config

import (
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// WritePluginDoc prints a plugin's reference, every field with its type,
// default, allowed values and example, from its spec.
func WritePluginDoc(w io.Writer, p *Plugin) { writePluginDoc(w, p, textDoc) }

// WritePluginMarkdown prints a plugin's reference as Markdown, from its
// spec: the same content as WritePluginDoc, for PLUGINS.md.
func WritePluginMarkdown(w io.Writer, p *Plugin) { writePluginDoc(w, p, markdownDoc) }

// docStyle is how a plugin's reference is laid out: as text for a
// terminal, or as Markdown.
type docStyle struct {
	head        func(w io.Writer, p *Plugin)
	description string // Printf formats, each taking one string
	rules       string
	extra       string // the extra element's description and type
	fields      func(w io.Writer, fields []*Field)
	example     func(w io.Writer, name, title string, lines []string)
	markdown    bool
}

var textDoc = docStyle{
	head:        func(w io.Writer, p *Plugin) { fmt.Fprintf(w, "%s %s: %s\n", p.Kind, p.Name, p.Spec.Summary) },
	description: "\n%s\n",
	rules:       "\nRules: %s.\n",
	extra:       "\nAny other key: %s (%s)\n",
	fields: func(w io.Writer, fields []*Field) {
		fmt.Fprintf(w, "\nFields:\n")
		writeFields(w, fields, "  ")
	},
	example: func(w io.Writer, name, title string, lines []string) {
		fmt.Fprintf(w, "\nExample: %s\n    %s:\n", title, name)
		for _, line := range lines {
			fmt.Fprintf(w, "      %s\n", line)
		}
	},
}

var markdownDoc = docStyle{
	head: func(w io.Writer, p *Plugin) {
		fmt.Fprintf(w, "### %s `%s`\n\n%s.\n\n", p.Kind, p.Name, strings.TrimSuffix(p.Spec.Summary, "."))
	},
	description: "%s\n\n",
	rules:       "Rules: %s.\n\n",
	extra:       "Any other key: %s (%s).\n\n",
	fields: func(w io.Writer, fields []*Field) {
		fmt.Fprintf(w, "| field | type | default | description |\n|---|---|---|---|\n")
		writeMarkdownFields(w, fields, "")
		fmt.Fprintln(w)
	},
	example: func(w io.Writer, name, title string, lines []string) {
		fmt.Fprintf(w, "Example: %s\n\n```yaml\n%s:\n", title, name)
		for _, line := range lines {
			fmt.Fprintf(w, "  %s\n", line)
		}
		fmt.Fprintf(w, "```\n\n")
	},
	markdown: true,
}

func writePluginDoc(w io.Writer, p *Plugin, st docStyle) {
	st.head(w, p)
	if p.Spec.Description != "" {
		fmt.Fprintf(w, st.description, strings.TrimSpace(p.Spec.Description))
	}
	if len(p.Spec.Fields()) > 0 {
		st.fields(w, p.Spec.Fields())
	}
	if r := rulesLine(p.Spec.root, st.markdown); r != "" {
		fmt.Fprintf(w, st.rules, r)
	}
	if x := p.Spec.root.extra; x != nil {
		fmt.Fprintf(w, st.extra, x.desc, typeName(x))
	}
	for _, ex := range p.Spec.Examples() {
		st.example(w, p.Name, ex.Title, strings.Split(strings.TrimRight(ex.YAML, "\n"), "\n"))
	}
}

func writeFields(w io.Writer, fields []*Field, indent string) {
	for _, f := range fields {
		var attrs []string
		attrs = append(attrs, typeName(f))
		if !f.optional {
			attrs = append(attrs, "required")
		}
		if f.hasDef && f.def != nil && f.def != "" && f.kind != KindObject {
			attrs = append(attrs, fmt.Sprintf("default %v", yamlInline(f.def)))
		}
		if f.secret {
			attrs = append(attrs, "secret")
		}
		fmt.Fprintf(w, "%s%s (%s)\n", indent, f.name, strings.Join(attrs, ", "))
		if f.desc != "" {
			fmt.Fprintf(w, "%s    %s\n", indent, f.desc)
		}
		if len(f.enum) > 0 {
			fmt.Fprintf(w, "%s    one of: %s\n", indent, strings.Join(f.enum, ", "))
		}
		if f.example != nil {
			fmt.Fprintf(w, "%s    example: %s\n", indent, yamlInline(f.example))
		}
		if f.kind == KindObject {
			writeFields(w, f.fields, indent+"  ")
		}
		if f.kind == KindList && f.elem != nil && f.elem.kind == KindObject {
			writeFields(w, f.elem.fields, indent+"  - ")
		}
	}
}

func typeName(f *Field) string {
	switch f.kind {
	case KindList:
		if f.elem != nil {
			return "list of " + typeName(f.elem)
		}
	case KindMap:
		if f.elem != nil {
			return "map of " + typeName(f.elem)
		}
	case KindString:
		if len(f.enum) > 0 {
			return "enum"
		}
	}
	return f.kind.String()
}

func yamlInline(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSpace(string(out))
	if strings.Contains(s, "\n") {
		var n yaml.Node
		if n.Encode(v) == nil {
			n.Style = yaml.FlowStyle
			for _, c := range n.Content {
				c.Style = yaml.FlowStyle
			}
			if b, err := yaml.Marshal(&n); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
	}
	return s
}

// JSONSchema returns a JSON Schema (draft 2020-12) of pipeline files for
// the plugins in reg, for editors and CI linting.
func JSONSchema(reg *Registry) map[string]any {
	if reg == nil {
		reg = Default
	}
	return fieldSchema(pipelineSpec(), reg, true)
}

func fieldSchema(f *Field, reg *Registry, root bool) map[string]any {
	s := map[string]any{}
	if root {
		s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		s["title"] = "backfill pipeline"
	}
	if f.desc != "" && !root {
		s["description"] = f.desc
	}
	if f.hasDef && f.def != nil {
		s["default"] = f.def
		if d, ok := f.def.(time.Duration); ok {
			s["default"] = d.String() // as written in the file, not in nanoseconds
		}
	}
	if f.example != nil {
		s["examples"] = []any{f.example}
	}
	optional := !root && (f.optional || f.kind == KindObject && !hasRequired(f))
	switch f.kind {
	case KindString:
		if len(f.enum) == 0 {
			// The loader takes any scalar's text: rate_limit: 1000. A
			// ${VAR} reference is a string.
			s["type"] = []any{"string", "number", "boolean"}
			break
		}
		enum := make([]any, 0, len(f.enum))
		for _, e := range f.enum {
			enum = append(enum, e)
		}
		s["anyOf"] = scalarOrReference(optional, map[string]any{"type": "string", "enum": enum})
	case KindInt:
		s["anyOf"] = scalarOrReference(optional, map[string]any{"type": "integer"})
	case KindFloat:
		s["anyOf"] = scalarOrReference(optional, map[string]any{"type": "number"})
	case KindBool:
		s["anyOf"] = scalarOrReference(optional, map[string]any{"type": "boolean"})
	case KindDuration:
		s["anyOf"] = scalarOrReference(optional, map[string]any{"type": "string", "pattern": durationPattern},
			map[string]any{"const": 0})
	case KindObject:
		s["type"] = "object"
		props := map[string]any{}
		var req []string
		for _, c := range f.fields {
			props[c.name] = fieldSchema(c, reg, false)
			if !c.optional && (c.kind != KindObject || hasRequired(c)) { // as the parser
				req = append(req, c.name)
			}
		}
		s["properties"] = props
		s["additionalProperties"] = false
		if f.extra != nil {
			s["additionalProperties"] = fieldSchema(f.extra, reg, false)
		}
		if len(req) > 0 {
			s["required"] = req
		}
		if len(f.rules) > 0 {
			s["allOf"] = f.rulesSchema()
		}
	case KindList:
		s["type"] = "array"
		s["items"] = fieldSchema(f.elem, reg, false)
	case KindMap:
		s["type"] = "object"
		s["additionalProperties"] = fieldSchema(f.elem, reg, false)
	case kindPlugin:
		var one []any
		for _, name := range reg.Names(f.pluginKind) {
			p, _ := reg.Lookup(f.pluginKind, name)
			body := fieldSchema(p.Spec.root, reg, false)
			body["description"] = p.Spec.Summary
			one = append(one, map[string]any{
				"type": "object", "properties": map[string]any{name: body},
				"required": []string{name}, "additionalProperties": false,
			})
		}
		if bare := bareNames(reg, f.pluginKind); len(bare) > 0 {
			// `- strip`: the plugin with its defaults.
			one = append(one, map[string]any{"enum": bare,
				"description": "a " + f.pluginKind.String() + " with its defaults, written as its name alone"})
		}
		s["oneOf"] = one
	}
	if optional {
		// The parser takes null (`key:`, an empty ${VAR:-}) as the field
		// left out.
		switch t := s["type"].(type) {
		case string:
			s["type"] = []any{t, "null"}
		case []any:
			s["type"] = append(t, "null")
		}
	}
	return s
}

// durationPattern is what time.ParseDuration reads: "1h30m", "1.5s",
// "-2m", "0".
const durationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// referencePattern matches a string holding a ${VAR} or ${VAR:-default}
// reference (not one escaped as $${VAR}). The loader replaces references
// before it checks a field's type, and re-types the result: `workers:
// ${N}` is an integer when N is. So the schema takes a reference wherever
// it takes a scalar.
const referencePattern = `^([^$]|\$\$|\$[^${])*\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`

// scalarOrReference is anyOf's alternatives for a scalar field: its
// literal values, strict (type, enum, pattern), null when it may be left
// out, or a ${VAR} reference.
func scalarOrReference(optional bool, literal ...map[string]any) []any {
	out := make([]any, 0, len(literal)+2)
	for _, l := range literal {
		out = append(out, l)
	}
	if optional {
		out = append(out, map[string]any{"type": "null"})
	}
	return append(out, map[string]any{"type": "string", "pattern": referencePattern,
		"description": "a ${VAR} or ${VAR:-default} reference, replaced when the file is loaded"})
}

// bareNames are the plugins of a kind that may be written as their name
// alone (`- strip`), which the loader reads as the plugin with an empty
// config: those whose config parses empty, rules included.
func bareNames(reg *Registry, kind PluginKind) []any {
	var out []any
	for _, name := range reg.Names(kind) {
		pl, _ := reg.Lookup(kind, name)
		p := &parser{file: "", reg: reg, lookup: envLookup}
		p.object(pl.Spec.root, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, "")
		if len(p.errs) == 0 {
			out = append(out, name)
		}
	}
	return out
}

func writeMarkdownFields(w io.Writer, fields []*Field, prefix string) {
	// A <placeholder> would read as an HTML tag, and vanish.
	cell := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;").Replace
	for _, f := range fields {
		def := ""
		switch {
		case !f.optional:
			def = "required"
		case f.hasDef && f.def != nil && f.def != "" && f.kind != KindObject:
			def = "`" + yamlInline(f.def) + "`"
		}
		desc := f.desc
		if len(f.enum) > 0 {
			desc += "; one of: " + strings.Join(f.enum, ", ")
		}
		if f.example != nil {
			desc += "; e.g. `" + yamlInline(f.example) + "`"
		}
		if f.secret {
			desc += " (secret)"
		}
		fmt.Fprintf(w, "| `%s%s` | %s | %s | %s |\n", prefix, f.name, typeName(f), cell(def), cell(desc))
		if f.kind == KindObject {
			writeMarkdownFields(w, f.fields, prefix+f.name+".")
		}
		if f.kind == KindList && f.elem != nil && f.elem.kind == KindObject {
			writeMarkdownFields(w, f.elem.fields, prefix+f.name+"[].")
		}
	}
}
