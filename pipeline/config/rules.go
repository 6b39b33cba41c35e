package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A Rule relates fields of one object: which of them must, may or must not
// be set together. Declare rules once, on a spec (Spec.Rules) or an object
// field (Field.Rules); the parser checks them after the object's fields
// are parsed, `backfill plugins` lists them, and the JSON Schema carries
// them, so an editor flags the same mistakes:
//
//	config.NewSpec("...", fields...).Rules(
//		config.ExactlyOne("table", "query").MessageIfNone("set table (project.dataset.table) or query"),
//		config.Requires("params", "query"),
//		config.When("anonymous", true).Excludes("access_key_id", "profile"),
//	)
//
// A field counts as set when the file gives it a value that is not null
// or empty: not "" (or only spaces), [] or {}. So `${TABLE:-}` left empty
// is not set, and a default never is. A value that fails to parse counts
// as set (its own error is reported). A boolean field is named through
// When: When("anonymous", true) holds when anonymous is true, written or by
// default.
//
// A broken rule is a *ConfigError with code CodeRequired when a field it
// asks for is missing (none of ExactlyOne or AtLeastOne, a target of
// Requires, the rest of Together), at the object or at the field that asks;
// and CodeConflict when fields it keeps apart are set together, at the
// offending key.
type Rule struct {
	kind    ruleKind
	when    *Cond    // Requires, Excludes: the subject
	names   []string // the fields; for Requires and Excludes, the others
	msg     string
	noneMsg string
	hint    string
}

type ruleKind int

const (
	ruleExactlyOne ruleKind = iota
	ruleAtMostOne
	ruleAtLeastOne
	ruleTogether
	ruleRequires
	ruleExcludes
)

// Cond is a condition on one field, the subject of a Requires or Excludes
// rule: the field is set, or (When) has a value.
type Cond struct {
	name     string
	value    any
	hasValue bool
}

// ExactlyOne: one of the fields, and only one, is set ("table or query").
func ExactlyOne(names ...string) *Rule { return &Rule{kind: ruleExactlyOne, names: names} }

// AtMostOne: no two of the fields are set together.
func AtMostOne(names ...string) *Rule { return &Rule{kind: ruleAtMostOne, names: names} }

// AtLeastOne: one or more of the fields are set.
func AtLeastOne(names ...string) *Rule { return &Rule{kind: ruleAtLeastOne, names: names} }

// Together: the fields are all set, or none is (a key id and its secret).
func Together(names ...string) *Rule { return &Rule{kind: ruleTogether, names: names} }

// Requires: when name is set, every one of others is set too.
func Requires(name string, others ...string) *Rule { return (&Cond{name: name}).Requires(others...) }

// Excludes: when name is set, none of others is.
func Excludes(name string, others ...string) *Rule { return (&Cond{name: name}).Excludes(others...) }

// When is the condition "the field has this value" (written, or its
// default), for a Requires or Excludes rule about a boolean or an enum:
// When("insecure", true).Requires("storage_endpoint").
func When(name string, value any) *Cond { return &Cond{name: name, value: value, hasValue: true} }

// Requires: when the condition holds, every one of others is set.
func (c *Cond) Requires(others ...string) *Rule {
	return &Rule{kind: ruleRequires, when: c, names: others}
}

// Excludes: when the condition holds, none of others is set.
func (c *Cond) Excludes(others ...string) *Rule {
	return &Rule{kind: ruleExcludes, when: c, names: others}
}

// Message replaces the generated error message of every breach of the
// rule (see MessageIfNone).
func (r *Rule) Message(msg string) *Rule { r.msg = msg; return r }

// MessageIfNone replaces the message of ExactlyOne or AtLeastOne when none
// of the fields is set; setting several of an ExactlyOne keeps Message (or
// the generated "set either a or b, not both").
func (r *Rule) MessageIfNone(msg string) *Rule { r.noneMsg = msg; return r }

// Hint replaces the generated hint of the rule's errors.
func (r *Rule) Hint(hint string) *Rule { r.hint = hint; return r }

// String is the rule as `backfill plugins` lists it: "exactly one of
// table, query", "params requires query", "anonymous: true excludes
// access_key_id, role_arn and profile".
func (r *Rule) String() string { return r.describe("", false) }

// Rules adds cross-field rules to an object field (see Rule).
func (f *Field) Rules(rs ...*Rule) *Field { f.rules = append(f.rules, rs...); return f }

// Rules adds cross-field rules to a plugin's config (see Rule).
func (s *Spec) Rules(rs ...*Rule) *Spec { s.root.Rules(rs...); return s }

func (r *Rule) describe(prefix string, md bool) string {
	q := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = codeSpan(prefix+n, md)
		}
		return out
	}
	switch r.kind {
	case ruleExactlyOne:
		return "exactly one of " + strings.Join(q(r.names), ", ")
	case ruleAtMostOne:
		return "at most one of " + strings.Join(q(r.names), ", ")
	case ruleAtLeastOne:
		return "at least one of " + strings.Join(q(r.names), ", ")
	case ruleTogether:
		return joinAnd(q(r.names)) + " go together"
	case ruleRequires:
		return r.when.describe(prefix, md) + " requires " + joinAnd(q(r.names))
	}
	return r.when.describe(prefix, md) + " excludes " + joinAnd(q(r.names))
}

func (c *Cond) describe(prefix string, md bool) string {
	if !c.hasValue {
		return codeSpan(prefix+c.name, md)
	}
	return codeSpan(fmt.Sprintf("%s%s: %v", prefix, c.name, c.value), md)
}

func codeSpan(s string, md bool) string {
	if md {
		return "`" + s + "`"
	}
	return s
}

// joinAnd writes "a", "a and b", "a, b and c".
func joinAnd(l []string) string {
	if len(l) < 2 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " and " + l[len(l)-1]
}

// rulesLine lists the rules of an object and of the objects inside it,
// their fields named by their path (csv.delimiter), for the docs.
func rulesLine(f *Field, md bool) string {
	var out []string
	var walk func(f *Field, prefix string)
	walk = func(f *Field, prefix string) {
		for _, r := range f.rules {
			out = append(out, r.describe(prefix, md))
		}
		for _, c := range f.fields {
			switch {
			case c.kind == KindObject:
				walk(c, prefix+c.name+".")
			case c.kind == KindList && c.elem != nil && c.elem.kind == KindObject:
				walk(c.elem, prefix+c.name+"[].")
			case c.kind == KindMap && c.elem != nil && c.elem.kind == KindObject:
				walk(c.elem, prefix+c.name+".*.")
			}
		}
	}
	walk(f, "")
	return strings.Join(out, "; ")
}

func (f *Field) field(name string) *Field {
	for _, c := range f.fields {
		if c.name == name {
			return c
		}
	}
	return nil
}

// validateRules panics on a rule that names a field the object does not
// declare, or cannot be checked: a programming error caught when the
// plugin registers.
func (f *Field) validateRules(path string) {
	if len(f.rules) > 0 && f.kind != KindObject {
		panic(fmt.Sprintf("pipeline: field %s%s: rules apply to objects, not a %s", path, f.name, f.kind))
	}
	for _, r := range f.rules {
		bad := func(format string, args ...any) {
			panic(fmt.Sprintf("pipeline: rule %q on %s%s: %s", r.String(), path, f.name, fmt.Sprintf(format, args...)))
		}
		least := 2
		if r.kind == ruleRequires || r.kind == ruleExcludes {
			least = 1
		}
		if len(r.names) < least {
			bad("names %d field(s), needs at least %d", len(r.names), least)
		}
		names := r.names
		if r.when != nil {
			names = append([]string{r.when.name}, names...)
		}
		seen := map[string]bool{}
		for i, n := range names {
			fd := f.field(n)
			switch {
			case fd == nil:
				bad("%q is not a field of this object", n)
			case seen[n]:
				bad("%q is named twice", n)
			case i == 0 && r.when != nil && r.when.hasValue:
				r.when.value = condValue(fd, r.when.value, bad)
			case fd.kind == KindBool:
				bad("%q is a boolean: say When(%q, true)", n, n)
			}
			seen[n] = true
		}
	}
}

// condValue normalizes When's value to the type the parser gives the
// field (an int for a number field is a float64).
func condValue(fd *Field, v any, bad func(string, ...any)) any {
	ok := false
	switch fd.kind {
	case KindBool:
		_, ok = v.(bool)
	case KindString:
		s, isString := v.(string)
		ok = isString && (len(fd.enum) == 0 || contains(fd.enum, s))
	case KindInt:
		_, ok = v.(int)
	case KindFloat:
		switch x := v.(type) {
		case int:
			v, ok = float64(x), true
		case float64:
			ok = true
		}
	default:
		bad("When applies to a boolean, string or number field, not %q (%s)", fd.name, fd.kind)
	}
	if !ok {
		bad("%#v is not a value of %q (%s)", v, fd.name, typeName(fd))
	}
	return v
}

// ruleSet reports whether the file gives a field a value that is not
// empty (see Rule).
func (c *Conf) ruleSet(name string) bool {
	v := c.vals[name]
	if v == nil || !v.set {
		return false
	}
	if v.unset { // a secret `run` will have (Conf.Unset)
		return true
	}
	switch x := v.v.(type) {
	case nil:
		return v.node != nil && !isNull(v.node) // a value that failed to parse
	case string:
		return strings.TrimSpace(x) != ""
	case []any:
		return len(x) > 0
	case []MapEntry:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	case *Conf:
		return x.node != nil && len(x.node.Content) > 0
	}
	return true
}

func (cd *Cond) holds(c *Conf) bool {
	if !cd.hasValue {
		return c.ruleSet(cd.name)
	}
	v := c.vals[cd.name]
	return v != nil && v.v == cd.value
}

// checkRules reports the rules of object f that c breaks. at is where the
// object is (for a missing field), keys the key nodes of the fields
// written, misspelt the fields an unknown key probably meant (already
// reported: no second error about them).
func (p *parser) checkRules(f *Field, c *Conf, at *yaml.Node, keys map[string]*yaml.Node, misspelt map[string]bool) {
	report := func(name, code, hint, msg string) {
		if k := keys[name]; k != nil {
			p.errAt(k, c.path+"/"+escapePointer(name), code, hint, "%s", msg)
			return
		}
		p.errAt(at, c.path, code, hint, "%s", msg)
	}
	anyMisspelt := func(names []string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return misspelt[n] })
	}
	for _, r := range f.rules {
		var set, unset []string
		for _, n := range r.names {
			if c.ruleSet(n) {
				set = append(set, n)
			} else {
				unset = append(unset, n)
			}
		}
		slices.SortStableFunc(set, func(a, b string) int { // file order
			if d := keys[a].Line - keys[b].Line; d != 0 {
				return d
			}
			return keys[a].Column - keys[b].Column
		})
		switch r.kind {
		case ruleExactlyOne, ruleAtMostOne, ruleAtLeastOne:
			if len(set) == 0 && r.kind != ruleAtMostOne && !anyMisspelt(r.names) {
				msg := r.noneMsg
				if msg == "" {
					msg = r.msg
				}
				if msg == "" {
					msg = "set " + orList(r.names)
				}
				report("", CodeRequired, r.hintOr(exampleHint(f, r.names)), msg)
			}
			if len(set) > 1 && r.kind != ruleAtLeastOne {
				msg := r.msg
				if msg == "" && len(r.names) == 2 {
					msg = fmt.Sprintf("set either %s or %s, not both", r.names[0], r.names[1])
				} else if msg == "" {
					msg = fmt.Sprintf("set only one of %s (%s are set)", strings.Join(r.names, ", "), joinAnd(set))
				}
				for _, n := range set[1:] {
					report(n, CodeConflict, r.hint, msg)
				}
			}
		case ruleTogether:
			if len(set) > 0 && len(unset) > 0 && !anyMisspelt(unset) {
				msg := r.msg
				if msg == "" {
					msg = joinAnd(r.names) + " go together"
				}
				report(set[0], CodeRequired, r.hintOr("set "+joinAnd(unset)+" too, or drop "+joinAnd(set)), msg)
			}
		case ruleRequires:
			if !r.when.holds(c) || len(unset) == 0 || anyMisspelt(unset) {
				continue
			}
			msg := r.msg
			if msg == "" {
				msg = r.when.describe("", false) + " requires " + joinAnd(unset)
			}
			hint := ""
			if len(unset) == 1 {
				hint = fieldHint(f.field(unset[0]))
			}
			report(r.when.name, CodeRequired, r.hintOr(hint), msg)
		case ruleExcludes:
			if !r.when.holds(c) || len(set) == 0 {
				continue
			}
			msg := r.msg
			if msg == "" && r.when.hasValue {
				msg = joinAnd(set) + " cannot be used with " + r.when.describe("", false)
			} else if msg == "" {
				msg = r.when.name + " cannot be used with " + joinAnd(set)
			}
			pos := r.when.name
			if keys[pos] == nil {
				pos = set[0]
			}
			report(pos, CodeConflict, r.hint, msg)
		}
	}
}

func (r *Rule) hintOr(def string) string {
	if r.hint != "" {
		return r.hint
	}
	return def
}

// orList writes "a or b", "one of a, b, c".
func orList(names []string) string {
	if len(names) == 2 {
		return names[0] + " or " + names[1]
	}
	return "one of " + strings.Join(names, ", ")
}

// exampleHint is "e.g. table: acme-prod.web.tracks" from the first of the
// fields with a documented example.
func exampleHint(f *Field, names []string) string {
	for _, n := range names {
		if fd := f.field(n); fd != nil && fd.example != nil {
			if s, ok := fd.example.(string); ok {
				return fmt.Sprintf("e.g. %s: %s", n, s)
			}
			return fmt.Sprintf("e.g. %s: %s", n, yamlInline(fd.example))
		}
	}
	return ""
}

// rulesSchema is an object's rules in JSON Schema (draft 2020-12), one
// subschema each, for the object's allOf.
func (f *Field) rulesSchema() []any {
	out := make([]any, 0, len(f.rules))
	for _, r := range f.rules {
		s := r.schema(f)
		s["$comment"] = r.String()
		out = append(out, s)
	}
	return out
}

func (r *Rule) schema(f *Field) map[string]any {
	each := func(names []string) []any {
		out := make([]any, len(names))
		for i, n := range names {
			out[i] = f.setSchema(n)
		}
		return out
	}
	switch r.kind {
	case ruleExactlyOne:
		return map[string]any{"oneOf": each(r.names)}
	case ruleAtLeastOne:
		return map[string]any{"anyOf": each(r.names)}
	case ruleAtMostOne:
		var pairs []any
		for i := range r.names {
			for j := i + 1; j < len(r.names); j++ {
				pairs = append(pairs, f.setSchema(r.names[i], r.names[j]))
			}
		}
		if len(pairs) == 1 {
			return map[string]any{"not": pairs[0]}
		}
		return map[string]any{"not": map[string]any{"anyOf": pairs}}
	case ruleTogether:
		return map[string]any{"anyOf": []any{
			f.setSchema(r.names...),
			map[string]any{"not": map[string]any{"anyOf": each(r.names)}},
		}}
	}
	// Requires, Excludes: if/then rather than dependentRequired or
	// dependentSchemas, which look at presence alone, where the parser
	// takes a null or empty value as not set.
	if r.kind == ruleRequires {
		return map[string]any{"if": f.condSchema(r.when), "then": f.setSchema(r.names...)}
	}
	if len(r.names) == 1 {
		return map[string]any{"if": f.condSchema(r.when), "then": map[string]any{"not": f.setSchema(r.names[0])}}
	}
	return map[string]any{"if": f.condSchema(r.when), "then": map[string]any{"not": map[string]any{"anyOf": each(r.names)}}}
}

// setSchema holds when every one of the fields is set: present, not null
// and not empty. It names the object's type: in a null object (which the
// parser takes for an empty one) nothing is set.
func (f *Field) setSchema(names ...string) map[string]any {
	props := map[string]any{}
	for _, n := range names {
		props[n] = f.field(n).nonEmptySchema()
	}
	return map[string]any{"type": "object", "required": names, "properties": props}
}

// condSchema holds when the condition does: the field is set, or has the
// value. When the value is the default, a field left out (or null) has it
// too.
func (f *Field) condSchema(c *Cond) map[string]any {
	if !c.hasValue {
		return f.setSchema(c.name)
	}
	if fd := f.field(c.name); fd.hasDef && fd.def == c.value {
		return map[string]any{"properties": map[string]any{c.name: map[string]any{"enum": []any{c.value, nil}}}}
	}
	return map[string]any{"type": "object", "required": []string{c.name},
		"properties": map[string]any{c.name: map[string]any{"const": c.value}}}
}

// nonEmptySchema is what a present value must also be to count as set:
// not null, and not empty. A value of the wrong type counts, as in the
// parser (its own schema flags it).
func (f *Field) nonEmptySchema() map[string]any {
	var empty []any
	switch f.kind {
	case KindString:
		empty = []any{map[string]any{"type": "string", "pattern": `^\s*$`}}
	case KindList:
		empty = []any{map[string]any{"type": "array", "maxItems": 0}}
	case KindMap, KindObject:
		empty = []any{map[string]any{"type": "object", "maxProperties": 0}}
	case KindAny:
		empty = []any{
			map[string]any{"type": "string", "pattern": `^\s*$`},
			map[string]any{"type": "array", "maxItems": 0},
			map[string]any{"type": "object", "maxProperties": 0},
		}
	}
	if len(empty) == 0 {
		return map[string]any{"not": map[string]any{"type": "null"}}
	}
	return map[string]any{"not": map[string]any{"anyOf": append([]any{map[string]any{"type": "null"}}, empty...)}}
}
