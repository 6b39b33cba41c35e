package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxSyntaxScan bounds the search for a syntax error's line (see
// syntaxError): a pipeline file is far shorter.
const maxSyntaxScan = 5000

// syntaxError makes yaml.v3's error about data a ConfigError at the line
// and column of the mistake, quoting the line.
//
// yaml.v3 gives only a message and a line, and the line is often not the
// mistake's: a parser error names where the enclosing block or flow
// collection starts, counted from 0; a scanner error the start of the
// token, or the end of the file. So the line is found by parsing the file
// line by line: the first prefix of the file that fails with the same
// error holds the mistake. Within it the column comes from the kind of
// mistake: the key a ':' cannot follow, the '{' or '[' still open, the
// quote not closed, the tab.
func syntaxError(file string, data []byte, err error) *ConfigError {
	if errors.Is(err, io.EOF) {
		return &ConfigError{File: file, Code: CodeSyntax, Msg: "the pipeline file is empty",
			Hint: "a pipeline has a name, a source, transforms and a sink; `backfill plugins` lists them"}
	}
	problem, reported := splitYAMLError(err)
	e := &ConfigError{File: file, Code: CodeSyntax, Msg: problem}
	lines := splitLines(data)
	k := 0
	if len(lines) <= maxSyntaxScan {
		for i := 1; i <= len(lines); i++ {
			if perr := decodeOne(data[:lines[i-1].end]); perr != nil && perr.Error() == err.Error() {
				k = i
				break
			}
		}
	}
	if k == 0 { // not found: what yaml.v3 said
		if reported > 0 && reported <= len(lines) {
			e.Line = reported
			e.Col = firstNonSpace(lines[reported-1].text)
			e.Snippet = snippet(lines, e.Line, e.Col)
		}
		return e
	}
	text := lines[k-1].text
	e.Line, e.Col = k, firstNonSpace(text)
	open, quote := openAt(lines[:k])
	switch {
	case strings.HasPrefix(problem, "mapping values are not allowed"):
		e.Msg = "mapping values are not allowed here"
		e.Col = keyBeforeColon(text)
		e.Hint = `indent the line as the keys beside it, or quote a value that holds ": "`
	case problem == "did not find expected ',' or '}'" || problem == "did not find expected ',' or ']'":
		want := '{'
		if strings.HasSuffix(problem, "']'") {
			want = '['
		}
		if b, ok := innermost(open, want); ok {
			closing := map[rune]string{'{': "}", '[': "]"}[want]
			e.Line, e.Col = b.line, b.col
			e.Msg = fmt.Sprintf("%q is not closed (expected ',' or '%s')", string(want), closing)
			e.Hint = "close it with '" + closing + "', or separate its entries with ','"
		}
	case problem == "did not find expected node content" && len(open) > 0 && restIsBlank(lines[k:]):
		b := open[len(open)-1]
		e.Line, e.Col = b.line, b.col
		e.Msg = fmt.Sprintf("%q is not closed", string(b.ch))
	case problem == "found unexpected end of stream" && quote != nil:
		e.Line, e.Col = quote.line, quote.col
		e.Msg = "the quoted string is not closed"
		e.Hint = "end it with a matching " + string(quote.ch)
		if quote.ch == '\'' {
			e.Hint += "; a ' inside '...' is written ''"
		}
	case strings.Contains(problem, "tab character") || problem == "found character that cannot start any token" && leadingTab(text) > 0:
		if c := leadingTab(text); c > 0 {
			e.Col = c
		} else if c := strings.IndexRune(text, '\t'); c >= 0 {
			e.Col = len([]rune(text[:c])) + 1
		}
		e.Msg = "a tab in the indentation"
		e.Hint = "indent with spaces: YAML does not take tabs"
	case problem == "found character that cannot start any token":
		if c := strings.IndexAny(text, "@`"); c >= 0 {
			e.Col = len([]rune(text[:c])) + 1
		}
		e.Hint = "a value starting with @ or ` must be quoted"
	case strings.HasPrefix(problem, "unknown anchor "):
		name := strings.TrimSuffix(strings.TrimPrefix(problem, "unknown anchor '"), "' referenced")
		if c := strings.Index(text, "*"+name); c >= 0 {
			e.Col = len([]rune(text[:c])) + 1
		}
		e.Hint = "define the anchor (&" + name + ") before its alias"
	case problem == "did not find expected key" || problem == "did not find expected '-' indicator":
		e.Hint = "indent the line as the entries beside it"
	}
	e.Snippet = snippet(lines, e.Line, e.Col)
	return e
}

// splitYAMLError reads yaml.v3's "yaml: line N: msg" (or "yaml: msg").
func splitYAMLError(err error) (msg string, line int) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				return strings.TrimSpace(rest[i+1:]), n
			}
		}
	}
	return msg, 0
}

func decodeOne(data []byte) error {
	var n yaml.Node
	return yaml.NewDecoder(bytes.NewReader(data)).Decode(&n)
}

type srcLine struct {
	text string // without the line break
	end  int    // offset of the next line in the file
}

func splitLines(data []byte) []srcLine {
	var out []srcLine
	for off := 0; off < len(data); {
		i := bytes.IndexByte(data[off:], '\n')
		end := len(data)
		if i >= 0 {
			end = off + i + 1
		}
		out = append(out, srcLine{text: strings.TrimRight(string(data[off:end]), "\r\n"), end: end})
		off = end
	}
	return out
}

func firstNonSpace(s string) int {
	for i, r := range []rune(s) {
		if r != ' ' && r != '\t' {
			return i + 1
		}
	}
	return 1
}

// leadingTab is the column of a tab in the line's indentation, or 0.
func leadingTab(s string) int {
	for i, r := range []rune(s) {
		switch r {
		case '\t':
			return i + 1
		case ' ':
		default:
			return 0
		}
	}
	return 0
}

func restIsBlank(lines []srcLine) bool {
	for _, l := range lines {
		if t := strings.TrimSpace(l.text); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// keyBeforeColon is the column of the key whose ':' YAML does not take on
// the line: the second mapping ':' when there are two ("a: b: c"), else
// the first (a key indented under a plain value).
func keyBeforeColon(s string) int {
	rs := []rune(s)
	var colons []int
	var quote rune
scan:
	for i, r := range rs {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case (r == '"' || r == '\'') && (i == 0 || rs[i-1] == ' '):
			quote = r
		case r == '#' && (i == 0 || rs[i-1] == ' '):
			break scan
		case r == ':' && (i+1 == len(rs) || rs[i+1] == ' '):
			colons = append(colons, i)
		}
	}
	if len(colons) == 0 {
		return firstNonSpace(s)
	}
	c := colons[0]
	if len(colons) > 1 {
		c = colons[1]
	}
	start := c
	for start > 0 && rs[start-1] != ' ' && rs[start-1] != '\t' {
		start--
	}
	return start + 1
}

// bracket is a '{', '[' or quote, and where it is.
type bracket struct {
	line, col int
	ch        rune
}

func innermost(open []bracket, ch rune) (bracket, bool) {
	for i := len(open) - 1; i >= 0; i-- {
		if open[i].ch == ch {
			return open[i], true
		}
	}
	return bracket{}, false
}

// openAt reads lines as YAML's flow syntax does and returns the brackets
// and the quote still open at their end. It knows enough YAML for that:
// comments, quotes (which start a token only), block scalars (skipped),
// and that a '{' or '[' in block context starts a collection only where a
// value starts.
func openAt(lines []srcLine) (open []bracket, quote *bracket) {
	blockIndent := -1 // in a block scalar: lines indented more than this are its text
	for n, l := range lines {
		rs := []rune(l.text)
		ind := 0
		for ind < len(rs) && rs[ind] == ' ' {
			ind++
		}
		if blockIndent >= 0 && quote == nil {
			if strings.TrimSpace(l.text) == "" || ind > blockIndent {
				continue
			}
			blockIndent = -1
		}
		var prev rune // the last indicator or token character on the line
		for j := 0; j < len(rs); j++ {
			c := rs[j]
			if quote != nil {
				switch {
				case quote.ch == '"' && c == '\\':
					j++
				case c == quote.ch && c == '\'' && j+1 < len(rs) && rs[j+1] == '\'':
					j++
				case c == quote.ch:
					quote, prev = nil, c
				}
				continue
			}
			if c == ' ' || c == '\t' {
				continue
			}
			spaced := j == 0 || rs[j-1] == ' ' || rs[j-1] == '\t'
			if c == '#' && spaced {
				break
			}
			var tokenStart bool
			if len(open) > 0 {
				tokenStart = prev == 0 || strings.ContainsRune("{[,:", prev)
			} else {
				tokenStart = prev == 0 || spaced && strings.ContainsRune(":-?", prev)
			}
			switch {
			case tokenStart && (c == '"' || c == '\''):
				quote = &bracket{line: n + 1, col: j + 1, ch: c}
			case (tokenStart || len(open) > 0) && (c == '{' || c == '['):
				open = append(open, bracket{line: n + 1, col: j + 1, ch: c})
			case len(open) > 0 && (c == '}' || c == ']'):
				if want := map[rune]rune{'}': '{', ']': '['}[c]; open[len(open)-1].ch == want {
					open = open[:len(open)-1]
				}
			case len(open) == 0 && tokenStart && (c == '|' || c == '>') && blockHeader(rs[j+1:]):
				blockIndent = ind
				j = len(rs)
			}
			prev = c
		}
	}
	return open, quote
}

// blockHeader reports whether what follows a '|' or '>' is the rest of a
// block scalar's header: indicators, then nothing or a comment.
func blockHeader(rest []rune) bool {
	s := strings.TrimLeft(string(rest), "+-0123456789")
	s = strings.TrimSpace(s)
	return s == "" || strings.HasPrefix(s, "#")
}

// snippet quotes line n of the file with a caret under column col:
//
//	9 |   prefx: exports/
//	  |   ^
func snippet(lines []srcLine, n, col int) string {
	if n < 1 || n > len(lines) {
		return ""
	}
	text := lines[n-1].text
	var pad strings.Builder
	for i, r := range []rune(text) {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			pad.WriteRune('\t') // so the caret lines up under a tab
		} else {
			pad.WriteByte(' ')
		}
	}
	for i := len([]rune(text)); i < col-1; i++ {
		pad.WriteByte(' ')
	}
	return fmt.Sprintf("%5d | %s\n      | %s^", n, text, pad.String())
}
