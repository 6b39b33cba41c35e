package config

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// parser turns YAML nodes into Confs against specs, collecting every error
// instead of stopping at the first.
type parser struct {
	file   string
	reg    *Registry
	errs   ConfigErrors
	lookup func(string) (string, bool) // environment

	// secretsOptional (LoadOptions.SecretsOptional): an unset variable in
	// a secret field is a warning. interpolate, which runs before the
	// fields are known, keeps each scalar with an unset variable in unset;
	// object warns about those of secret fields, and unsetErrors reports
	// the others.
	secretsOptional bool
	unset           []*unsetRef
	unsetAt         map[*yaml.Node]*unsetRef
	warnings        ConfigErrors
}

// unsetRef is a scalar whose ${VAR} are not set.
type unsetRef struct {
	node   *yaml.Node
	path   string
	names  []string
	secret bool // read as a secret field: a warning, not an error
}

func (p *parser) errAt(n *yaml.Node, path, code, hint, format string, args ...any) {
	e := &ConfigError{File: p.file, Path: path, Code: code, Msg: fmt.Sprintf(format, args...), Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return "a string"
}

// object parses a mapping against an object field's declared fields.
func (p *parser) object(f *Field, n *yaml.Node, path string) *Conf {
	c := &Conf{file: p.file, path: path, spec: f, vals: map[string]*confValue{}}
	n = deref(n)
	if n != nil && !isNull(n) {
		if n.Kind != yaml.MappingNode {
			p.errAt(n, path, CodeWrongType, "", "expected an object, got %s", describe(n))
		} else {
			c.node = n
		}
	}
	known := map[string]*Field{}
	names := make([]string, 0, len(f.fields))
	for _, fd := range f.fields {
		known[fd.name] = fd
		names = append(names, fd.name)
	}
	seen := map[string]bool{}
	keys := map[string]*yaml.Node{} // the key of each field written, for rules
	misspelt := map[string]bool{}   // required fields an unknown key probably meant
	if c.node != nil {
		for i := 0; i+1 < len(c.node.Content); i += 2 {
			k, v := c.node.Content[i], c.node.Content[i+1]
			fp := path + "/" + escapePointer(k.Value)
			fd, ok := known[k.Value]
			if !ok && f.extra != nil {
				if s := Suggest(k.Value, names); s != "" && s != k.Value && strings.EqualFold(s, k.Value) {
					p.errAt(k, fp, CodeUnknownField, fmt.Sprintf("did you mean %q?", s), "%q is taken as an entry, not the option %q", k.Value, s)
					continue
				}
				val, _ := p.value(f.extra, v, fp)
				c.extra = append(c.extra, MapEntry{Key: k.Value, Value: val, Node: deref(v)})
				continue
			}
			if !ok {
				hint := ""
				if s := Suggest(k.Value, names); s != "" {
					hint = fmt.Sprintf("did you mean %q?", s)
					misspelt[s] = true
				} else if len(names) > 0 {
					hint = "known fields: " + strings.Join(names, ", ")
				}
				p.errAt(k, fp, CodeUnknownField, hint, "unknown field %q", k.Value)
				continue
			}
			if seen[k.Value] {
				p.errAt(k, fp, CodeInvalidValue, "", "field %q is set twice", k.Value)
				continue
			}
			seen[k.Value] = true
			keys[k.Value] = k
			if u := p.unsetAt[deref(v)]; u != nil && fd.secret && fd.kind == KindString {
				// Unset, for a command that does not use the secret: the
				// field is taken as set, its checks wait for `run`.
				if !u.secret {
					u.secret = true
					for _, name := range u.names {
						p.warnings = append(p.warnings, &ConfigError{File: p.file, Line: u.node.Line, Col: u.node.Column,
							Path: fp, Code: CodeUnsetSecret, Msg: fmt.Sprintf("environment variable %s is not set", name),
							Hint: fmt.Sprintf("only run needs it: export %s", name)})
					}
				}
				c.vals[fd.name] = &confValue{v: u.node.Value, node: u.node, set: true, unset: true}
				continue
			}
			if isNull(deref(v)) && fd.kind != KindObject && fd.kind != KindAny {
				if !fd.optional {
					p.errAt(v, fp, CodeRequired, fieldHint(fd), "%q needs a value", k.Value)
				}
				c.vals[fd.name] = p.defaultValue(fd, fp)
				continue
			}
			val, ok := p.value(fd, v, fp)
			if ok && fd.check != nil {
				if err := fd.check(val); err != nil {
					p.errAt(v, fp, CodeInvalidValue, "", "%v", err)
				}
			}
			if fd.deprecated != "" {
				p.errAt(k, fp, CodeInvalidValue, fd.deprecated, "%q is deprecated", k.Value)
			}
			c.vals[fd.name] = &confValue{v: val, node: deref(v), set: true}
		}
	}
	for _, fd := range f.fields {
		if seen[fd.name] {
			continue
		}
		fp := path + "/" + escapePointer(fd.name)
		if !fd.optional && !misspelt[fd.name] && !(fd.kind == KindObject && !hasRequired(fd)) {
			at := c.node
			if at == nil {
				at = n
			}
			p.errAt(at, fp, CodeRequired, fieldHint(fd), "missing required field %q", fd.name)
		}
		c.vals[fd.name] = p.defaultValue(fd, fp)
	}
	// Rules apply to an object the file gives (even empty or null), not
	// to the defaults of one it leaves out, nor to a value of another type.
	if n != nil && (c.node != nil || isNull(n)) {
		at := c.node
		if at == nil {
			at = n
		}
		p.checkRules(f, c, at, keys, misspelt)
	}
	return c
}

// hasRequired reports whether an object has a field that must be set; an
// object without one may be left out entirely.
func hasRequired(f *Field) bool {
	for _, c := range f.fields {
		if !c.optional && (c.kind != KindObject || hasRequired(c)) {
			return true
		}
	}
	return false
}

func fieldHint(fd *Field) string {
	var parts []string
	if fd.desc != "" {
		parts = append(parts, fd.desc)
	}
	if fd.example != nil {
		parts = append(parts, fmt.Sprintf("e.g. %s: %v", fd.name, fd.example))
	}
	return strings.Join(parts, "; ")
}

func (p *parser) defaultValue(fd *Field, path string) *confValue {
	switch fd.kind {
	case KindObject:
		return &confValue{v: p.object(fd, nil, path)}
	case KindList:
		if fd.hasDef {
			if l, ok := fd.def.([]string); ok {
				out := make([]any, len(l))
				for i, s := range l {
					out[i] = s
				}
				return &confValue{v: out}
			}
		}
		return &confValue{v: []any(nil)}
	}
	return &confValue{v: fd.def}
}

var durationHint = `write a number with a unit, e.g. "30s", "5m", "1h30m"`

func (p *parser) value(fd *Field, n *yaml.Node, path string) (any, bool) {
	n = deref(n)
	wrong := func(want string) (any, bool) {
		p.errAt(n, path, CodeWrongType, "", "expected %s, got %s", want, describe(n))
		return nil, false
	}
	switch fd.kind {
	case KindString:
		if n.Kind != yaml.ScalarNode {
			return wrong("a string")
		}
		if len(fd.enum) > 0 && !contains(fd.enum, n.Value) {
			hint := "one of: " + strings.Join(fd.enum, ", ")
			if s := Suggest(n.Value, fd.enum); s != "" {
				hint = fmt.Sprintf("did you mean %q? one of: %s", s, strings.Join(fd.enum, ", "))
			}
			p.errAt(n, path, CodeInvalidValue, hint, "%q is not an allowed value", n.Value)
			return nil, false
		}
		return n.Value, true
	case KindInt:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return wrong("an integer")
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil {
			return wrong("an integer")
		}
		return int(i), true
	case KindFloat:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			return wrong("a number")
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return wrong("a number")
		}
		return f, true
	case KindBool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return wrong("true or false")
		}
		var b bool
		_ = n.Decode(&b)
		return b, true
	case KindDuration:
		if n.Kind != yaml.ScalarNode {
			return wrong("a duration")
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			p.errAt(n, path, CodeInvalidValue, durationHint, "%q is not a duration", n.Value)
			return nil, false
		}
		return d, true
	case KindObject:
		return p.object(fd, n, path), true
	case KindList:
		if n.Kind != yaml.SequenceNode {
			return wrong("a list")
		}
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			v, good := p.value(fd.elem, item, fmt.Sprintf("%s/%d", path, i))
			ok = ok && good
			out = append(out, v)
		}
		return out, ok
	case KindMap:
		if n.Kind != yaml.MappingNode {
			return wrong("an object")
		}
		out := make([]MapEntry, 0, len(n.Content)/2)
		ok := true
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			val, good := p.value(fd.elem, v, path+"/"+escapePointer(k.Value))
			ok = ok && good
			out = append(out, MapEntry{Key: k.Value, Value: val, Node: deref(v)})
		}
		return out, ok
	case KindAny:
		var v any
		if err := n.Decode(&v); err != nil {
			p.errAt(n, path, CodeWrongType, "", "%v", err)
			return nil, false
		}
		return v, true
	case kindPlugin:
		return p.plugin(fd.pluginKind, n, path)
	}
	return nil, false
}

func (p *parser) plugin(kind PluginKind, n *yaml.Node, path string) (any, bool) {
	n = deref(n)
	names := p.reg.Names(kind)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		// `- strip` alone: a plugin with its defaults.
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column,
			Content: []*yaml.Node{n, {Kind: yaml.ScalarNode, Tag: "!!null", Value: "", Line: n.Line, Column: n.Column}}}
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		p.errAt(n, path, CodeOneKey, "known "+kind.String()+"s: "+strings.Join(names, ", "),
			"a %s is an object with exactly one key, its plugin's name", kind)
		return nil, false
	}
	k, v := n.Content[0], n.Content[1]
	pl, ok := p.reg.Lookup(kind, k.Value)
	if !ok {
		hint := "known " + kind.String() + "s: " + strings.Join(names, ", ")
		if s := Suggest(k.Value, names); s != "" {
			hint = fmt.Sprintf("did you mean %q?", s)
		}
		p.errAt(k, path+"/"+escapePointer(k.Value), CodeUnknownPlugin, hint, "unknown %s %q", kind, k.Value)
		return nil, false
	}
	conf := p.object(pl.Spec.root, v, path+"/"+escapePointer(k.Value))
	return &PluginConf{Name: k.Value, Conf: conf, Line: k.Line, Col: k.Column}, true
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate replaces ${VAR} and ${VAR:-default} in every scalar ("$$" is a
// literal "$"). An unset variable without a default is an error at its
// scalar. Substituted plain scalars are re-typed, so `workers: ${N}` is an
// integer when N is.
func (p *parser) interpolate(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			cp := path
			if n.Kind == yaml.SequenceNode {
				cp = fmt.Sprintf("%s/%d", path, i)
			}
			p.interpolate(c, cp)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.interpolate(n.Content[i+1], path+"/"+escapePointer(n.Content[i].Value))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		var missing []string
		out := envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := envRef.FindStringSubmatch(m)
			if v, ok := p.lookup(sub[1]); ok && (v != "" || sub[2] == "") {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			missing = append(missing, sub[1])
			return ""
		})
		if len(missing) > 0 && p.secretsOptional {
			u := &unsetRef{node: n, path: path, names: missing} // see object and unsetErrors
			if p.unsetAt == nil {
				p.unsetAt = map[*yaml.Node]*unsetRef{}
			}
			p.unset = append(p.unset, u)
			p.unsetAt[n] = u
		} else {
			p.unsetError(n, path, missing)
		}
		if out != n.Value {
			n.Value = out
			if len(missing) > 0 {
				n.Tag = "!!str" // reported once; no second "needs a value"
			} else if n.Style == 0 {
				n.Tag = "" // let YAML resolve the substituted text's type
			}
		}
	}
}

func (p *parser) unsetError(n *yaml.Node, path string, names []string) {
	for _, name := range names {
		p.errAt(n, path, CodeUnsetEnv, fmt.Sprintf("export %s, or write ${%s:-default}", name, name),
			"environment variable %s is not set", name)
	}
}

// unsetErrors reports the unset variables kept by interpolate that no
// secret field read: an error, as without SecretsOptional.
func (p *parser) unsetErrors() {
	for _, u := range p.unset {
		if !u.secret {
			p.unsetError(u.node, u.path, u.names)
		}
	}
	p.unset, p.unsetAt = nil, nil
}

// envLookup is os.LookupEnv; tests replace it through LoadOptions.
func envLookup(k string) (string, bool) { return os.LookupEnv(k) }
