package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Conf is one parsed and validated config object. Its getters return the
// value from the file or the field's default; asking for a field the spec
// does not declare, or with the wrong getter, is a programming error and
// panics.
type Conf struct {
	file  string
	path  string     // JSON pointer of this object
	node  *yaml.Node // the mapping node, nil when the object was absent
	spec  *Field
	vals  map[string]*confValue
	extra []MapEntry // undeclared keys of an object declared with Extra
}

type confValue struct {
	v    any
	node *yaml.Node
	set  bool // written in the file (not a default)
	// unset: a secret field whose ${VAR} is not set, read for a command
	// that does not use it (LoadOptions.SecretsOptional); v is "".
	unset bool
}

// MapEntry is one key of a map field, in file order.
type MapEntry struct {
	Key   string
	Value any // typed like the map's element: string, int, *Conf, any, ...
	Node  *yaml.Node
}

// PluginConf is a `name: {config}` item: a source, a transform or the sink.
type PluginConf struct {
	Name string
	Conf *Conf
	Line int
	Col  int
}

func (c *Conf) lookup(name string) *confValue {
	if c == nil {
		panic("pipeline: Conf is nil")
	}
	v, ok := c.vals[name]
	if !ok {
		panic(fmt.Sprintf("pipeline: config field %q is not declared in the spec at %s", name, c.path))
	}
	return v
}

// Path is the JSON pointer of this object in the pipeline file.
func (c *Conf) Path() string { return c.path }

// File is the pipeline file this object was read from.
func (c *Conf) File() string { return c.file }

// IsSet reports whether the field was written in the file.
func (c *Conf) IsSet(name string) bool { return c.lookup(name).set }

// Unset reports whether a secret field was written with an environment
// variable that is not set, and the pipeline was loaded for a command that
// does not use it (validate, preview, status: LoadOptions.SecretsOptional).
// Its value is then "" and stands for the one `run` will have: a plugin
// that checks the secret is not empty lets it pass.
func (c *Conf) Unset(name string) bool { return c.lookup(name).unset }

// Has reports whether the field has a value (written or defaulted).
func (c *Conf) Has(name string) bool { return c.lookup(name).v != nil }

// String returns a string field ("" when absent without default).
func (c *Conf) String(name string) string { s, _ := c.lookup(name).v.(string); return s }

// Int returns an integer field.
func (c *Conf) Int(name string) int { i, _ := c.lookup(name).v.(int); return i }

// Float returns a number field.
func (c *Conf) Float(name string) float64 { f, _ := c.lookup(name).v.(float64); return f }

// Bool returns a boolean field.
func (c *Conf) Bool(name string) bool { b, _ := c.lookup(name).v.(bool); return b }

// Duration returns a duration field.
func (c *Conf) Duration(name string) time.Duration {
	d, _ := c.lookup(name).v.(time.Duration)
	return d
}

// Strings returns a list-of-strings field.
func (c *Conf) Strings(name string) []string {
	l, _ := c.lookup(name).v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// Object returns a nested object; an absent optional object comes back with
// its fields' defaults.
func (c *Conf) Object(name string) *Conf { o, _ := c.lookup(name).v.(*Conf); return o }

// Objects returns a list of objects.
func (c *Conf) Objects(name string) []*Conf {
	l, _ := c.lookup(name).v.([]any)
	out := make([]*Conf, 0, len(l))
	for _, x := range l {
		if o, ok := x.(*Conf); ok {
			out = append(out, o)
		}
	}
	return out
}

// List returns a list field's items, typed as its element.
func (c *Conf) List(name string) []any { l, _ := c.lookup(name).v.([]any); return l }

// Map returns a map field's entries in file order.
func (c *Conf) Map(name string) []MapEntry { m, _ := c.lookup(name).v.([]MapEntry); return m }

// Any returns an any-typed field decoded to Go values (map[string]any,
// []any, string, int, float64, bool), or nil.
func (c *Conf) Any(name string) any { return c.lookup(name).v }

// Extra returns the keys an object declared with Field.Extra (or
// Spec.WithExtra) took beyond its declared fields, in file order.
func (c *Conf) Extra() []MapEntry { return c.extra }

// Node returns the YAML node a field was read from, or nil.
func (c *Conf) Node(name string) *yaml.Node { return c.lookup(name).node }

// Plugin returns a plugin-typed field.
func (c *Conf) Plugin(name string) *PluginConf { p, _ := c.lookup(name).v.(*PluginConf); return p }

// Plugins returns a list of plugins.
func (c *Conf) Plugins(name string) []*PluginConf {
	l, _ := c.lookup(name).v.([]any)
	out := make([]*PluginConf, 0, len(l))
	for _, x := range l {
		if p, ok := x.(*PluginConf); ok {
			out = append(out, p)
		}
	}
	return out
}

// Errorf makes a config error positioned at a field (or at this object when
// the field was not written), for checks a plugin makes after parsing.
func (c *Conf) Errorf(name, format string, args ...any) *ConfigError {
	e := &ConfigError{File: c.file, Path: c.path, Code: CodeInvalidValue, Msg: fmt.Sprintf(format, args...)}
	if name != "" {
		e.Path = c.path + "/" + escapePointer(name)
	}
	n := c.node
	if v, ok := c.vals[name]; ok && v.node != nil {
		n = v.node
	}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}

// NodeErrorf makes a config error positioned at any node of this object's
// file (for plugins that read Any fields).
func (c *Conf) NodeErrorf(n *yaml.Node, path, format string, args ...any) *ConfigError {
	e := &ConfigError{File: c.file, Path: path, Code: CodeInvalidValue, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	return e
}
