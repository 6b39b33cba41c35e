package config

import (
	"fmt"
	"strings"
	"testing"
)

// A syntax error names the line and column of the mistake, not where
// yaml.v3 noticed it (the start of the enclosing block, counted from 0),
// and quotes the line.
func TestSyntaxErrorsNameTheMistake(t *testing.T) {
	const sink = "sink: {segment: {write_key: k}}\n"
	cases := []struct {
		name    string
		yaml    string
		pos     string // line:col
		code    string
		msg     string
		snippet string // the quoted line and the caret, "" for none
	}{
		{
			name: "a key indented under a plain value",
			yaml: "name: x\nsource:\n  s3:\n    bucket: acme\n    prefix: exports/\ntransforms:\n  - strip: {preset: segment-replay}\n" +
				"state: .backfill\n  prefx: exports/\n" + sink,
			pos: "9:3", code: CodeSyntax, msg: "p.yaml:9:3: mapping values are not allowed here",
			snippet: "    9 |   prefx: exports/\n      |   ^",
		},
		{
			name: "a key indented between two levels",
			yaml: "name: x\nsource:\n  s3:\n    bucket: acme\n   prefix: exports/\n" + sink,
			pos:  "5:4", code: CodeSyntax, msg: "did not find expected key",
			snippet: "    5 |    prefix: exports/\n      |    ^",
		},
		{
			name: "a list item indented less than the others",
			yaml: "name: x\ntransforms:\n  - strip\n - map\n" + sink,
			pos:  "4:2", code: CodeSyntax, msg: "did not find expected key",
			snippet: "    4 |  - map\n      |  ^",
		},
		{
			name: "two mapping values on a line",
			yaml: "name: orders: 2024\n",
			pos:  "1:7", code: CodeSyntax, msg: "mapping values are not allowed here",
			snippet: "    1 | name: orders: 2024\n      |       ^",
		},
		{
			name: "an unclosed {",
			yaml: "name: x\nsource:\n  s3:\n    bucket: acme\n    prefix: exports/\n    csv: {header: true, delimiter: \",\"\n" +
				"sink:\n  segment:\n    write_key: k\n",
			pos: "6:10", code: CodeSyntax, msg: `"{" is not closed (expected ',' or '}')`,
			snippet: "    6 |     csv: {header: true, delimiter: \",\"\n      |          ^",
		},
		{
			name: "an unclosed { over two lines, the inner one closed",
			yaml: "name: x\nsource: {s3: {bucket: acme,\n  prefix: exports/}\n" + sink,
			pos:  "2:9", code: CodeSyntax, msg: `"{" is not closed`,
			snippet: "    2 | source: {s3: {bucket: acme,\n      |         ^",
		},
		{
			name: "an unclosed [",
			yaml: "name: x\nsource:\n  s3:\n    keys: [a.csv, b.csv\n    bucket: acme\n" + sink,
			pos:  "4:11", code: CodeSyntax, msg: `"[" is not closed (expected ',' or ']')`,
			snippet: "    4 |     keys: [a.csv, b.csv\n      |           ^",
		},
		{
			name: "an unclosed [ at the end of the file",
			yaml: "name: x\nsource: [\n",
			pos:  "2:9", code: CodeSyntax, msg: `"[" is not closed`,
			snippet: "    2 | source: [\n      |         ^",
		},
		{
			name: "a tab in the indentation",
			yaml: "name: x\nsource:\n  s3:\n\tbucket: acme\n" + sink,
			pos:  "4:1", code: CodeSyntax, msg: "a tab in the indentation (indent with spaces",
			snippet: "    4 | \tbucket: acme\n      | ^",
		},
		{
			name: "a tab after spaces",
			yaml: "name: x\nsource:\n  s3:\n    bucket: acme\n  \t  prefix: a\n" + sink,
			pos:  "5:3", code: CodeSyntax, msg: "a tab in the indentation",
			snippet: "    5 |   \t  prefix: a\n      |   ^",
		},
		{
			name: "an unterminated double quote",
			yaml: "name: x\nsource:\n  s3:\n    bucket: \"acme\n    prefix: a\n" + sink,
			pos:  "4:13", code: CodeSyntax, msg: "the quoted string is not closed",
			snippet: "    4 |     bucket: \"acme\n      |             ^",
		},
		{
			name: "an unterminated single quote on the first line",
			yaml: "name: 'it''s\nsource: {s3: {bucket: b}}\n",
			pos:  "1:7", code: CodeSyntax, msg: "a ' inside '...' is written ''",
			snippet: "    1 | name: 'it''s\n      |       ^",
		},
		{
			name: "a block scalar's text is not YAML",
			yaml: "name: x\nsource:\n  s3:\n    bucket: b\n    prefix: |\n      {[\"'\n  oops\n" + sink,
			pos:  "7:3", code: CodeSyntax, msg: "could not find expected ':'",
			snippet: "    7 |   oops\n      |   ^",
		},
		{
			name: "an alias without its anchor",
			yaml: "name: x\nsource: {s3: {bucket: b}}\nsink: *segment\n",
			pos:  "3:7", code: CodeSyntax, msg: "unknown anchor 'segment' referenced",
			snippet: "    3 | sink: *segment\n      |       ^",
		},
		{
			// Not a syntax error: the parser reports it, at the second key.
			name: "a duplicate key",
			yaml: "name: x\nsource: {s3: {bucket: b}}\nname: y\n" + sink,
			pos:  "3:1", code: CodeInvalidValue, msg: `p.yaml:3:1: /name: field "name" is set twice`,
		},
		{name: "an empty file", yaml: "", pos: "0:0", code: CodeSyntax, msg: "p.yaml: the pipeline file is empty"},
		{name: "only comments and blank lines", yaml: "# nothing yet\n\n   \n# here\n", pos: "0:0", code: CodeSyntax, msg: "p.yaml: the pipeline file is empty"},
		{name: "only a document marker", yaml: "---\n", pos: "0:0", code: CodeSyntax, msg: "p.yaml: the pipeline file is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("p.yaml", []byte(tc.yaml), LoadOptions{Registry: testRegistry(), LookupEnv: env()})
			got := AsConfigErrors(err)
			if len(got) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(got), err)
			}
			e := got[0]
			if pos := fmt.Sprintf("%d:%d", e.Line, e.Col); pos != tc.pos || e.Code != tc.code {
				t.Errorf("at %s, code %s; want %s, %s:\n%v", pos, e.Code, tc.pos, tc.code, e)
			}
			if !strings.Contains(e.Error(), tc.msg) {
				t.Errorf("error %q lacks %q", e.Error(), tc.msg)
			}
			if e.Snippet != tc.snippet {
				t.Errorf("snippet:\n%s\nwant:\n%s", e.Snippet, tc.snippet)
			}
			if tc.snippet != "" && !strings.HasSuffix(e.Error(), "\n"+tc.snippet) {
				t.Errorf("the error does not end with the quoted line:\n%s", e.Error())
			}
		})
	}
}

// The search for the line is bounded, and a file too long for it keeps
// the line yaml.v3 names.
func TestSyntaxErrorInALongFile(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: x\nsource: {s3: {bucket: b}}\nsink: {segment: {write_key: k}}\ntransforms:\n")
	for i := 0; i < maxSyntaxScan; i++ {
		b.WriteString("  - strip\n")
	}
	b.WriteString("state: a: b\n")
	last := strings.Count(b.String(), "\n")
	_, err := Load("p.yaml", []byte(b.String()), LoadOptions{Registry: testRegistry(), LookupEnv: env()})
	got := AsConfigErrors(err)
	if len(got) != 1 || got[0].Code != CodeSyntax || got[0].Line != last || !strings.Contains(got[0].Snippet, "state: a: b") {
		t.Fatalf("got %v, want a syntax error on line %d", err, last)
	}
}
