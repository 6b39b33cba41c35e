// Package redact keeps secrets out of what backfill writes: logs, errors,
// the summary and --report, dead letters. A secret is replaced wherever it
// appears as given, URL-escaped, or base64-encoded as HTTP Basic auth
// sends it (a server that echoes the Authorization header in an error
// body would otherwise put the key in a dead letter).
package redact

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
)

// Mark replaces a secret.
const Mark = "[redacted]"

// minLen is the shortest secret replaced: a shorter one would blank out
// ordinary words.
const minLen = 4

// Redactor replaces secrets in text. The zero value (and nil) replaces
// nothing.
type Redactor struct {
	forms []string // longest first, so a form inside another goes second
	r     *strings.Replacer
}

// New makes a Redactor of secrets. For each it also replaces its
// URL-escaped form and the base64 of "secret:" and ":secret" (Basic auth
// with the secret as user or password, padded or not), so echoes of an
// Authorization header are caught too.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var forms []string
	add := func(s string) {
		if len(s) >= minLen && !seen[s] {
			seen[s] = true
			forms = append(forms, s)
		}
	}
	for _, s := range secrets {
		if len(s) < minLen {
			continue
		}
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		for _, basic := range []string{s + ":", ":" + s, s} {
			add(base64.StdEncoding.EncodeToString([]byte(basic)))
			add(strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(basic)), "="))
			add(base64.URLEncoding.EncodeToString([]byte(basic)))
		}
	}
	if len(forms) == 0 {
		return &Redactor{}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Mark)
	}
	return &Redactor{forms: forms, r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret replaced.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Bytes returns b with every secret replaced (b itself when none is in it).
func (r *Redactor) Bytes(b []byte) []byte {
	if r == nil || r.r == nil {
		return b
	}
	for _, f := range r.forms {
		if bytes.Contains(b, []byte(f)) {
			return []byte(r.r.Replace(string(b)))
		}
	}
	return b
}

// Writer writes to w with every secret replaced. Each Write is redacted
// on its own: a log record, a line of the summary.
func (r *Redactor) Writer(w io.Writer) io.Writer {
	if r == nil || r.r == nil {
		return w
	}
	return writer{r, w}
}

type writer struct {
	r *Redactor
	w io.Writer
}

func (w writer) Write(p []byte) (int, error) {
	if _, err := w.w.Write(w.r.Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// URL returns rawURL with the secret of its user info replaced (the
// password, or the user when there is no password), for display. Text
// that does not parse as a URL with user info is returned as it is.
func URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	const placeholder = "REDACTEDUSERINFO" // Mark itself would be %-escaped
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), placeholder)
	} else {
		u.User = url.User(placeholder)
	}
	return strings.Replace(u.String(), placeholder, Mark, 1)
}

// URLSecrets returns the user info of rawURL that is a secret: its
// password, or its user when there is no password (a key given as
// https://KEY@host).
func URLSecrets(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return nil
	}
	if p, ok := u.User.Password(); ok {
		return []string{p}
	}
	return []string{u.User.Username()}
}

// Handler wraps h so that a record's message, and its string and error
// attributes (in groups too), have every secret replaced.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r == nil || r.r == nil {
		return h
	}
	return handler{r, h}
}

type handler struct {
	r *Redactor
	h slog.Handler
}

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.r.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.r.attr(a)
	}
	return handler{h.r, h.h.WithAttrs(red)}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{h.r, h.h.WithGroup(name)} }

func (r *Redactor) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, r.String(v.String()))
	case slog.KindGroup:
		as := v.Group()
		red := make([]slog.Attr, len(as))
		for i, x := range as {
			red[i] = r.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, r.String(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, r.String(x.String()))
		}
	}
	return a
}
