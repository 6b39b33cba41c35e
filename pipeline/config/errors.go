package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error codes of config errors, stable for tooling.
const (
	CodeSyntax        = "syntax"
	CodeUnknownField  = "unknown_field"
	CodeRequired      = "required"
	CodeWrongType     = "wrong_type"
	CodeInvalidValue  = "invalid_value"
	CodeUnknownPlugin = "unknown_plugin"
	CodeUnsetEnv      = "unset_env"
	CodeOneKey        = "one_key"
	CodeUnreadable    = "unreadable" // the pipeline file cannot be read

	// CodeUnsetSecret: a warning, not an error. A secret field's
	// environment variable is not set, and the command (validate, preview,
	// status; LoadOptions.SecretsOptional) does not use the secret. `run`
	// reports it as CodeUnsetEnv.
	CodeUnsetSecret = "unset_secret"

	// CodeConflict: fields set together that a rule of the spec keeps
	// apart (at most one of them; one excludes the other). A field a rule
	// asks for that is missing is CodeRequired.
	CodeConflict = "conflict"

	// CodeUnknownColumn: a column the pipeline reads from the source is
	// not in the data (`backfill validate` compared them), at the value
	// that names it.
	CodeUnknownColumn = "unknown_column"
)

// ConfigError is one problem in a pipeline file, positioned and coded.
type ConfigError struct {
	File string
	Line int
	Col  int
	Path string // JSON pointer into the document: /source/s3/prefix
	Code string
	Msg  string
	Hint string // e.g. `did you mean "prefix"?`
	// Snippet quotes the line with a caret under the column (syntax
	// errors): "    9 |   prefx: exports/\n      |   ^".
	Snippet string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", e.Line, e.Col)
	} else if e.File != "" {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	if e.Snippet != "" {
		b.WriteByte('\n')
		b.WriteString(e.Snippet)
	}
	return b.String()
}

// ConfigErrors is every problem found in one pipeline file, in file order.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each ConfigError.
func (es ConfigErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Sorted orders the errors by their place in the file.
func (es ConfigErrors) Sorted() ConfigErrors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
	return es
}

// AsConfigErrors collects the ConfigErrors inside err (joined or wrapped).
func AsConfigErrors(err error) ConfigErrors {
	var out ConfigErrors
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		var ce *ConfigError
		if errors.As(e, &ce) && ce == e {
			out = append(out, ce)
			return
		}
		if u, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range u.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &ce) {
			out = append(out, ce)
		}
	}
	walk(err)
	return out
}

// Suggest returns the candidate closest to s when s is a likely typo of
// it (a small edit distance, or a truncation such as "created" for
// "created_at"), or "". Plugins use it for "did you mean" hints.
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	if bestD <= limit {
		return best
	}
	for _, c := range candidates {
		if len(s) > 2 && (strings.HasPrefix(c, s) || strings.HasPrefix(s, c)) {
			return c
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
