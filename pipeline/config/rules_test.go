package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/pipeline"
)

// rulesRegistry has a source, a transform and a sink whose specs use every
// kind of rule.
func rulesRegistry() *Registry {
	reg := NewRegistry()
	reg.Register(SourcePlugin("src", NewSpec("rules test source",
		String("table", "the table, as project.dataset.table").Optional().Example("p.d.t"),
		String("query", "SQL").Optional(),
		Map("params", "query parameters", Any("", "")).Optional(),
		String("snapshot", "a time").Optional(),
		Bool("insecure", "plain text").Default(false),
		String("endpoint", "host:port").Optional(),
		Strings("keys", "explicit keys").Optional(),
		String("manifest", "a manifest").Optional(),
		String("prefix", "a prefix").Optional(),
		String("key_id", "key id").Optional(),
		String("secret", "secret").Optional().Secret(),
		Bool("anonymous", "unsigned").Default(false),
		String("profile", "profile").Optional(),
		Object("csv", "csv options",
			Bool("postgres", "COPY text").Default(false),
			String("delimiter", "separator").Optional(),
			Int("width", "fixed width").Optional(),
		).Optional().Rules(When("postgres", true).Excludes("delimiter", "width")),
	).Rules(
		ExactlyOne("table", "query").MessageIfNone("set table (project.dataset.table) or query"),
		Requires("params", "query"),
		Excludes("snapshot", "query").Hint("in a query write FOR SYSTEM_TIME AS OF"),
		When("insecure", true).Requires("endpoint"),
		AtMostOne("keys", "manifest", "prefix"),
		Together("key_id", "secret"),
		When("anonymous", true).Excludes("key_id", "profile").Message("anonymous sends unsigned requests"),
	), func(*Conf, *pipeline.Env) (pipeline.Source, error) { return stubSource{}, nil }))
	reg.Register(TransformPlugin("t", NewSpec("rules test transform",
		String("expr", "keep").Optional(),
		String("drop", "drop").Optional(),
		String("after", "a time").Optional(),
		String("mode", "loose or strict").Default("loose").Enum("loose", "strict"),
		Int("limit", "a limit").Optional(),
		List("steps", "steps", Object("", "a step",
			String("to", "where").Optional(),
			String("from", "where from").Optional(),
		).Rules(AtLeastOne("to", "from"))).Optional(),
	).Rules(
		AtLeastOne("expr", "drop", "after").Message("t needs expr, drop or after"),
		AtMostOne("expr", "drop"),
		When("mode", "loose").Excludes("limit"),
	), func(*Conf, *pipeline.Env) (pipeline.Transform, error) { return nopTransform{}, nil }))
	reg.Register(SinkPlugin("snk", NewSpec("stub sink"),
		func(*Conf, *pipeline.Env) (pipeline.Sink, error) { return stubSink{}, nil }))
	return reg
}

// ruleDoc puts body under `source: src:` (its first line is line 4,
// column 5) or, with transform, as the transform's config (line 6, col 7).
func ruleDoc(body string, transform bool) string {
	var b strings.Builder
	ind := "    "
	if transform {
		b.WriteString("name: x\nsource: {src: {table: a.b.c}}\nsink: {snk: {}}\ntransforms:\n  - t:\n")
		ind = "      "
	} else {
		b.WriteString("name: x\nsource:\n  src:\n")
	}
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		if l != "" {
			b.WriteString(ind + l + "\n")
		}
	}
	if !transform {
		b.WriteString("sink: {snk: {}}\n")
	}
	return b.String()
}

func TestRules(t *testing.T) {
	type want struct{ pos, code, path, msg string }
	cases := []struct {
		name      string
		body      string
		transform bool
		want      []want
		noSchema  bool // the case has errors the rule fragments do not see
	}{
		// exactly one
		{name: "exactly one: the one", body: "table: a.b.c"},
		{name: "exactly one: the other", body: "query: SELECT 1"},
		{name: "exactly one: none", body: "prefix: p", want: []want{
			{"4:5", CodeRequired, "/source/src", "set table (project.dataset.table) or query (e.g. table: p.d.t)"}}},
		{name: "exactly one: none, object null", body: "~", want: []want{
			{"4:5", CodeRequired, "/source/src", "set table (project.dataset.table) or query"}}},
		{name: "exactly one: both, at the later key", body: "query: SELECT 1\ntable: a.b.c", want: []want{
			{"5:5", CodeConflict, "/source/src/table", "set either table or query, not both"}}},
		{name: "exactly one: empty and blank values are not set", body: "table: ''\nquery: '  '", want: []want{
			{"4:5", CodeRequired, "/source/src", "set table (project.dataset.table) or query"}}},
		{name: "exactly one: an empty one beside a set one", body: "table: ''\nquery: SELECT 1"},
		{name: "exactly one: null beside a set one", body: "table:\nquery: SELECT 1"},
		{name: "exactly one: a misspelt field is not reported twice", body: "tabel: a.b.c", noSchema: true, want: []want{
			{"4:5", CodeUnknownField, "/source/src/tabel", `did you mean "table"?`}}},
		{name: "exactly one: a value of the wrong type counts as set", body: "table: [a]\nquery: SELECT 1", noSchema: true, want: []want{
			{"4:12", CodeWrongType, "/source/src/table", "expected a string"},
			{"5:5", CodeConflict, "/source/src/query", "not both"}}},

		// at most one
		{name: "at most one: none", body: "table: t"},
		{name: "at most one: one", body: "table: t\nkeys: [a]"},
		{name: "at most one: an empty list is not set", body: "table: t\nkeys: []\nmanifest: m"},
		{name: "at most one: two of three", body: "table: t\nmanifest: m\nkeys: [a]", want: []want{
			{"6:5", CodeConflict, "/source/src/keys", "set only one of keys, manifest, prefix (manifest and keys are set)"}}},
		{name: "at most one: three, one error per extra key", body: "table: t\nprefix: p\nmanifest: m\nkeys: [a]", want: []want{
			{"6:5", CodeConflict, "/source/src/manifest", "set only one of keys, manifest, prefix"},
			{"7:5", CodeConflict, "/source/src/keys", "set only one of keys, manifest, prefix"}}},

		// requires
		{name: "requires: with its field", body: "query: q\nparams: {a: 1}"},
		{name: "requires: missing", body: "table: t\nparams: {a: 1}", want: []want{
			{"5:5", CodeRequired, "/source/src/params", "params requires query (SQL)"}}},
		{name: "requires: an empty subject asks nothing", body: "table: t\nparams: {}"},
		{name: "requires: when true, missing", body: "table: t\ninsecure: true", want: []want{
			{"5:5", CodeRequired, "/source/src/insecure", "insecure: true requires endpoint (host:port)"}}},
		{name: "requires: when true, an empty target is missing", body: "table: t\ninsecure: true\nendpoint: ''", want: []want{
			{"5:5", CodeRequired, "/source/src/insecure", "insecure: true requires endpoint"}}},
		{name: "requires: when false, nothing", body: "table: t\ninsecure: false"},
		{name: "requires: when true, there", body: "table: t\ninsecure: true\nendpoint: h:1"},

		// excludes
		{name: "excludes: alone", body: "table: t\nsnapshot: now"},
		{name: "excludes: together", body: "query: q\nsnapshot: now", want: []want{
			{"5:5", CodeConflict, "/source/src/snapshot", "snapshot cannot be used with query (in a query write FOR SYSTEM_TIME AS OF)"}}},
		{name: "excludes: when true", body: "table: t\nanonymous: true\nprofile: p\nkey_id: k\nsecret: s", want: []want{
			{"5:5", CodeConflict, "/source/src/anonymous", "anonymous sends unsigned requests"}}},
		{name: "excludes: when false", body: "table: t\nanonymous: false\nprofile: p"},
		{name: "excludes: when true, none of them", body: "table: t\nanonymous: true"},
		{name: "excludes: a default value is the subject, at the excluded key", transform: true, body: "expr: a\nlimit: 5", want: []want{
			{"7:7", CodeConflict, "/transforms/0/t/limit", "limit cannot be used with mode: loose"}}},
		{name: "excludes: another value", transform: true, body: "expr: a\nmode: strict\nlimit: 5"},
		{name: "excludes: in a nested object", body: "table: t\ncsv: {postgres: true, width: 3, delimiter: ','}", want: []want{
			{"5:11", CodeConflict, "/source/src/csv/postgres", "width and delimiter cannot be used with postgres: true"}}},
		{name: "excludes: nested object left out", body: "table: t"},

		// together
		{name: "together: both", body: "table: t\nkey_id: k\nsecret: s"},
		{name: "together: one", body: "table: t\nsecret: s", want: []want{
			{"5:5", CodeRequired, "/source/src/secret", "key_id and secret go together (set key_id too, or drop secret)"}}},

		// at least one
		{name: "at least one: one", transform: true, body: "after: '2024-01-01'"},
		{name: "at least one: none", transform: true, body: "mode: strict", want: []want{
			{"6:7", CodeRequired, "/transforms/0/t", "t needs expr, drop or after"}}},
		{name: "at least one: the bare plugin name", transform: true, body: "", want: []want{
			{"5:5", CodeRequired, "/transforms/0/t", "t needs expr, drop or after"}}},
		{name: "at least one and at most one", transform: true, body: "expr: a\ndrop: b", want: []want{
			{"7:7", CodeConflict, "/transforms/0/t/drop", "set either expr or drop, not both"}}},
		{name: "at least one: in list items", transform: true, body: "expr: a\nsteps:\n  - {to: x}\n  - {}", want: []want{
			{"9:11", CodeRequired, "/transforms/0/t/steps/1", "set to or from"}}},
	}
	reg := rulesRegistry()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := ruleDoc(tc.body, tc.transform)
			if tc.transform && tc.body == "" {
				doc = "name: x\nsource: {src: {table: a.b.c}}\nsink: {snk: {}}\ntransforms:\n  - t\n"
			}
			_, err := Load("p.yaml", []byte(doc), LoadOptions{Registry: reg, LookupEnv: env()})
			got := AsConfigErrors(err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v\nin:\n%s", len(got), len(tc.want), err, doc)
			}
			for i, w := range tc.want {
				g := got[i]
				if pos := fmt.Sprintf("%d:%d", g.Line, g.Col); pos != w.pos {
					t.Errorf("error %d at %s, want %s: %v", i, pos, w.pos, g)
				}
				if g.Code != w.code || g.Path != w.path {
					t.Errorf("error %d: code %q path %q, want %q %q: %v", i, g.Code, g.Path, w.code, w.path, g)
				}
				if !strings.Contains(g.Error(), w.msg) {
					t.Errorf("error %d = %q, want it to contain %q", i, g.Error(), w.msg)
				}
			}
			if tc.noSchema {
				return
			}
			// The schema's fragments see the same mistakes.
			kind, name, at := SourceKind, "src", []string{"source", "src"}
			if tc.transform {
				kind, name, at = TransformKind, "t", []string{"transforms", "0", "t"}
			}
			p, _ := reg.Lookup(kind, name)
			var v any
			if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
				t.Fatal(err)
			}
			v = jsonValue(t, v)
			for _, k := range at {
				switch x := v.(type) {
				case map[string]any:
					v = x[k]
				case []any:
					v = x[0]
				}
			}
			if s, ok := v.(string); ok && s == name { // `- t`: the plugin with its defaults
				v = nil
			}
			errs := SchemaErrors(fieldSchema(p.Spec.root, reg, false), v)
			if (len(errs) == 0) != (len(tc.want) == 0) {
				t.Errorf("the schema says %v, the parser %v", errs, got)
			}
		})
	}
}

// Errors of the whole file, rules included, are sorted and none stops the
// others.
func TestRulesCollectedWithOtherErrors(t *testing.T) {
	doc := "name: x\nsink: {snk: {}}\nsource:\n  src:\n    query: q\n    tables: t\n    snapshot: now\n    params: 3\n"
	_, err := Load("p.yaml", []byte(doc), LoadOptions{Registry: rulesRegistry(), LookupEnv: env()})
	var got []string
	for _, e := range AsConfigErrors(err) {
		got = append(got, fmt.Sprintf("%d:%d %s", e.Line, e.Col, e.Code))
	}
	if want := "6:5 unknown_field,7:5 conflict,8:13 wrong_type"; strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s\n%v", got, want, err)
	}
}

func TestRulesDocs(t *testing.T) {
	reg := rulesRegistry()
	p, _ := reg.Lookup(SourceKind, "src")
	var text, md bytes.Buffer
	WritePluginDoc(&text, p)
	WritePluginMarkdown(&md, p)
	wantText := "\nRules: exactly one of table, query; params requires query; snapshot excludes query; insecure: true requires endpoint; " +
		"at most one of keys, manifest, prefix; key_id and secret go together; anonymous: true excludes key_id and profile; " +
		"csv.postgres: true excludes csv.delimiter and csv.width.\n"
	if !strings.Contains(text.String(), wantText) {
		t.Errorf("plugin doc lacks %q:\n%s", wantText, text.String())
	}
	if i, j := strings.Index(text.String(), "Fields:"), strings.Index(text.String(), "Rules:"); i < 0 || j < i {
		t.Errorf("the rules come after the fields:\n%s", text.String())
	}
	wantMD := "Rules: exactly one of `table`, `query`; `params` requires `query`; "
	if !strings.Contains(md.String(), wantMD) || !strings.Contains(md.String(), "`csv.postgres: true` excludes `csv.delimiter` and `csv.width`.\n\n") {
		t.Errorf("markdown lacks the rules:\n%s", md.String())
	}
	tr, _ := reg.Lookup(TransformKind, "t")
	text.Reset()
	WritePluginDoc(&text, tr)
	if want := "Rules: at least one of expr, drop, after; at most one of expr, drop; mode: loose excludes limit; " +
		"at least one of steps[].to, steps[].from.\n"; !strings.Contains(text.String(), want) {
		t.Errorf("list item rules:\n%s", text.String())
	}
	if s := Requires("a", "b", "c").String(); s != "a requires b and c" {
		t.Errorf("String() = %q", s)
	}
}

// The schema carries each rule as a fragment of the object's allOf, in
// standard draft 2020-12 keywords.
func TestRulesSchemaShape(t *testing.T) {
	reg := rulesRegistry()
	schema := jsonValue(t, JSONSchema(reg)).(map[string]any)
	src := dig(t, schema, "properties", "source", "oneOf", "0", "properties", "src").(map[string]any)
	all, _ := src["allOf"].([]any)
	if len(all) != 7 {
		t.Fatalf("want 7 rule fragments, got %d: %v", len(all), src["allOf"])
	}
	has := func(name string) bool {
		return dig(t, src, "properties", name) != nil
	}
	for i, want := range []struct{ comment, keys string }{
		{"exactly one of table, query", "oneOf"},
		{"params requires query", "if,then"},
		{"snapshot excludes query", "if,then"},
		{"insecure: true requires endpoint", "if,then"},
		{"at most one of keys, manifest, prefix", "not"},
		{"key_id and secret go together", "anyOf"},
		{"anonymous: true excludes key_id and profile", "if,then"},
	} {
		f := all[i].(map[string]any)
		var keys []string
		for k := range f {
			if k != "$comment" {
				keys = append(keys, k)
			}
		}
		if slices.Sort(keys); f["$comment"] != want.comment || strings.Join(keys, ",") != want.keys {
			t.Errorf("fragment %d: %v, want %q with %s", i, f, want.comment, want.keys)
		}
	}
	if !has("table") {
		t.Fatal("no table property")
	}
	one := dig(t, all[0], "oneOf").([]any)
	if len(one) != 2 || !reflect.DeepEqual(dig(t, one[0], "required"), []any{"table"}) ||
		!reflect.DeepEqual(dig(t, one[1], "required"), []any{"query"}) {
		t.Errorf("exactly one: %v", one)
	}
	// "set" rejects null and blank strings, as the parser does.
	ne := dig(t, one[0], "properties", "table", "not", "anyOf").([]any)
	if !reflect.DeepEqual(ne[0], map[string]any{"type": "null"}) || dig(t, ne[1], "pattern") != `^\s*$` {
		t.Errorf("table is set: %v", ne)
	}
	if c := dig(t, all[3], "if", "properties", "insecure", "const"); c != true ||
		!reflect.DeepEqual(dig(t, all[3], "if", "required"), []any{"insecure"}) {
		t.Errorf("when insecure is true: %v", all[3])
	}
	if pairs := dig(t, all[4], "not", "anyOf").([]any); len(pairs) != 3 {
		t.Errorf("at most one of three: %d pairs", len(pairs))
	}
	tr := dig(t, schema, "properties", "transforms", "items", "oneOf", "0", "properties", "t").(map[string]any)
	// A value that is the default holds when the field is left out.
	if e := dig(t, tr, "allOf", "2", "if", "properties", "mode", "enum"); !reflect.DeepEqual(e, []any{"loose", nil}) ||
		dig(t, tr, "allOf", "2", "if", "required") != nil {
		t.Errorf("mode: loose, by default: %v", dig(t, tr, "allOf", "2"))
	}
	if dig(t, tr, "properties", "steps", "items", "allOf", "0", "anyOf") == nil {
		t.Errorf("rules of list items: %v", dig(t, tr, "properties", "steps"))
	}
	csv := dig(t, src, "properties", "csv").(map[string]any)
	if csv["allOf"] == nil || !reflect.DeepEqual(csv["type"], []any{"object", "null"}) {
		t.Errorf("csv: %v", csv)
	}
}

// The schema takes what the parser takes: null for a field it may leave
// out, and no object without required fields as required.
func TestSchemaNullAndOptionalObjects(t *testing.T) {
	reg := testRegistry()
	schema := jsonValue(t, JSONSchema(reg)).(map[string]any)
	seg := dig(t, schema, "properties", "sink", "oneOf", "0", "properties", "segment").(map[string]any)
	if !reflect.DeepEqual(seg["required"], []any{"write_key"}) {
		t.Errorf("segment requires %v; batch has no required field", seg["required"])
	}
	s3 := dig(t, schema, "properties", "source", "oneOf", "0", "properties", "s3").(map[string]any)
	for _, c := range []struct {
		doc   string
		valid bool
	}{
		{`{"bucket": "b", "prefix": null, "format": null, "keys": null}`, true},
		{`{"bucket": null}`, false},
		{`{"bucket": "b", "format": "xml"}`, false},
	} {
		var v any
		_ = json.Unmarshal([]byte(c.doc), &v)
		if errs := SchemaErrors(s3, v); (len(errs) == 0) != c.valid {
			t.Errorf("%s: %v, want valid %v", c.doc, errs, c.valid)
		}
	}
}

func TestRuleDeclarationErrorsPanic(t *testing.T) {
	for name, spec := range map[string]*Spec{
		"unknown field":     NewSpec("x", String("a", "").Optional()).Rules(Requires("a", "b")),
		"plain boolean":     NewSpec("x", String("a", "").Optional(), Bool("b", "").Default(false)).Rules(Excludes("b", "a")),
		"value not in enum": NewSpec("x", String("a", "").Optional().Enum("x", "y"), String("b", "").Optional()).Rules(When("a", "z").Requires("b")),
		"value of a type":   NewSpec("x", Bool("a", "").Default(false), String("b", "").Optional()).Rules(When("a", "yes").Requires("b")),
		"one field":         NewSpec("x", String("a", "").Optional()).Rules(ExactlyOne("a")),
		"named twice":       NewSpec("x", String("a", "").Optional()).Rules(AtMostOne("a", "a")),
		"not an object":     NewSpec("x", Strings("a", "").Optional().Rules(AtMostOne("a", "b"))),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			NewRegistry().Register(TransformPlugin("t", spec, func(*Conf, *pipeline.Env) (pipeline.Transform, error) { return nopTransform{}, nil }))
		})
	}
}

func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func dig(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, k := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			fmt.Sscan(k, &i)
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
