package config

import (
	"fmt"
	"time"
)

// Kind is the type of a config field.
type Kind int

const (
	KindString Kind = iota
	KindInt
	KindFloat
	KindBool
	KindDuration
	KindObject // fixed fields, each declared
	KindList   // a sequence of Elem
	KindMap    // free-form keys, each value an Elem
	KindAny    // any YAML value; the plugin interprets it
	kindPlugin // one key naming a registered plugin of pluginKind
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "integer"
	case KindFloat:
		return "number"
	case KindBool:
		return "boolean"
	case KindDuration:
		return "duration"
	case KindObject:
		return "object"
	case KindList:
		return "list"
	case KindMap:
		return "map"
	case kindPlugin:
		return "plugin"
	}
	return "any"
}

// Field declares one config field once: its type, default, allowed values,
// documentation and whether it is a secret. Parsing, validation, `backfill
// plugins` docs and the JSON Schema are all derived from it.
type Field struct {
	name       string
	desc       string
	kind       Kind
	elem       *Field   // KindList, KindMap
	fields     []*Field // KindObject
	def        any
	hasDef     bool
	optional   bool
	enum       []string
	example    any
	secret     bool
	check      func(v any) error
	pluginKind PluginKind // kindPlugin
	deprecated string
	extra      *Field  // KindObject: keys not declared are parsed as this
	rules      []*Rule // KindObject: cross-field rules (rules.go)
}

func newField(name, desc string, k Kind) *Field { return &Field{name: name, desc: desc, kind: k} }

// String declares a string field.
func String(name, desc string) *Field { return newField(name, desc, KindString) }

// Int declares an integer field.
func Int(name, desc string) *Field { return newField(name, desc, KindInt) }

// Float declares a number field.
func Float(name, desc string) *Field { return newField(name, desc, KindFloat) }

// Bool declares a boolean field.
func Bool(name, desc string) *Field { return newField(name, desc, KindBool) }

// Duration declares a duration field written as Go durations ("1.5s", "2m").
func Duration(name, desc string) *Field { return newField(name, desc, KindDuration) }

// Any declares a field that takes any YAML value; the plugin checks it.
func Any(name, desc string) *Field { return newField(name, desc, KindAny) }

// Object declares a nested object with declared fields. Reuse one Object
// value in several specs to share a block (batch, request, retry).
func Object(name, desc string, fields ...*Field) *Field {
	f := newField(name, desc, KindObject)
	f.fields = fields
	return f
}

// List declares a sequence whose items are elem (elem's name is unused).
func List(name, desc string, elem *Field) *Field {
	f := newField(name, desc, KindList)
	f.elem = elem
	return f
}

// Strings declares a list of strings.
func Strings(name, desc string) *Field { return List(name, desc, String("", "")) }

// Map declares an object with free-form keys whose values are elem.
func Map(name, desc string, elem *Field) *Field {
	f := newField(name, desc, KindMap)
	f.elem = elem
	return f
}

func pluginField(name, desc string, k PluginKind) *Field {
	f := newField(name, desc, kindPlugin)
	f.pluginKind = k
	return f
}

// Extra lets an object take keys it does not declare, each parsed as elem
// (read with Conf.Extra): `integrations: {All: false, Amplitude: true}`
// beside declared options such as `mode`.
func (f *Field) Extra(elem *Field) *Field { f.extra = elem; return f }

// ExtraElem is the type of an object's undeclared keys, or nil.
func (f *Field) ExtraElem() *Field { return f.extra }

// WithExtra lets a plugin's config take undeclared keys, each parsed as
// elem (see Field.Extra).
func (s *Spec) WithExtra(elem *Field) *Spec { s.root.extra = elem; return s }

// Named returns a copy of f under another name, so a shared block can be
// mounted under a different key.
func (f *Field) Named(name string) *Field { c := *f; c.name = name; return &c }

// Default sets the value used when the field is absent; it makes the field
// optional.
func (f *Field) Default(v any) *Field { f.def, f.hasDef, f.optional = v, true, true; return f }

// Optional marks a field that may be absent and has no default.
func (f *Field) Optional() *Field { f.optional = true; return f }

// Enum restricts a string field to the given values.
func (f *Field) Enum(values ...string) *Field { f.enum = values; return f }

// Example documents a typical value.
func (f *Field) Example(v any) *Field { f.example = v; return f }

// Secret marks a value that must never appear in logs, errors or reports.
func (f *Field) Secret() *Field { f.secret = true; return f }

// Check adds a validation of the parsed value (string, int, float64, bool,
// time.Duration, []any, map[string]any). Its error becomes a config error
// at the field's position.
func (f *Field) Check(fn func(v any) error) *Field { f.check = fn; return f }

// Deprecated marks a field as kept for compatibility, with advice.
func (f *Field) Deprecated(advice string) *Field { f.deprecated = advice; return f }

// Name is the field's key.
func (f *Field) Name() string { return f.name }

// Description is the field's documentation.
func (f *Field) Description() string { return f.desc }

// Kind is the field's type.
func (f *Field) Kind() Kind { return f.kind }

// Fields are an object's declared fields.
func (f *Field) Fields() []*Field { return f.fields }

// Elem is a list's or map's element.
func (f *Field) Elem() *Field { return f.elem }

// DefaultValue returns the default and whether there is one.
func (f *Field) DefaultValue() (any, bool) { return f.def, f.hasDef }

// Required reports whether the field must be set.
func (f *Field) Required() bool { return !f.optional }

// EnumValues are the allowed values of an enum.
func (f *Field) EnumValues() []string { return f.enum }

// ExampleValue is the documented example, or nil.
func (f *Field) ExampleValue() any { return f.example }

// IsSecret reports whether the value is a secret.
func (f *Field) IsSecret() bool { return f.secret }

// Spec is a plugin's declared configuration.
type Spec struct {
	Summary     string
	Description string
	root        *Field
	examples    []SpecExample
}

// SpecExample is a documented YAML snippet.
type SpecExample struct {
	Title string
	YAML  string
}

// NewSpec declares a plugin config made of fields.
func NewSpec(summary string, fields ...*Field) *Spec {
	return &Spec{Summary: summary, root: Object("", summary, fields...)}
}

// WithDescription adds long documentation.
func (s *Spec) WithDescription(d string) *Spec { s.Description = d; return s }

// WithExample adds a documented example of the plugin's config: its body,
// without the plugin's key (the docs add it).
func (s *Spec) WithExample(title, yaml string) *Spec {
	s.examples = append(s.examples, SpecExample{title, yaml})
	return s
}

// Defaults is the config an empty object gives: every field at its
// default (a required field at its zero value). A plugin built from Go
// starts from it, so its defaults are written in the spec alone.
func (s *Spec) Defaults() *Conf {
	s.root.validateSpec("")
	p := &parser{file: "(defaults)", reg: NewRegistry(), lookup: envLookup}
	return p.object(s.root, nil, "")
}

// Fields are the spec's top-level fields.
func (s *Spec) Fields() []*Field { return s.root.fields }

// Examples are the documented examples.
func (s *Spec) Examples() []SpecExample { return s.examples }

// validateSpec normalizes defaults written naturally (an int 0 or "30s"
// for a duration, an int for a number) and panics on a default that does
// not fit its kind: a programming error caught when the plugin registers.
func (f *Field) validateSpec(path string) {
	if f.hasDef && f.def != nil {
		ok := true
		switch f.kind {
		case KindString:
			_, ok = f.def.(string)
		case KindInt:
			switch v := f.def.(type) {
			case int:
			case int64:
				f.def = int(v)
			default:
				ok = false
			}
		case KindFloat:
			switch v := f.def.(type) {
			case float64:
			case int:
				f.def = float64(v)
			default:
				ok = false
			}
		case KindBool:
			_, ok = f.def.(bool)
		case KindDuration:
			switch v := f.def.(type) {
			case time.Duration:
			case int:
				f.def = time.Duration(v) * time.Second
			case string:
				d, err := time.ParseDuration(v)
				f.def, ok = d, err == nil
			default:
				ok = false
			}
		}
		if !ok {
			panic(fmt.Sprintf("pipeline: field %s%s: default %#v is not a %s", path, f.name, f.def, f.kind))
		}
	}
	for _, c := range f.fields {
		c.validateSpec(path + f.name + ".")
	}
	if f.elem != nil {
		f.elem.validateSpec(path + f.name + "[].")
	}
	if f.extra != nil {
		f.extra.validateSpec(path + f.name + ".*.")
	}
	f.validateRules(path)
}
