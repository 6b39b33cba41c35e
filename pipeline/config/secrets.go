package config

import (
	"github.com/backfillhq/backfill/internal/redact"
)

// Secrets lists the values that must never appear in what backfill
// writes: every field declared Secret, and the user info of any URL in the
// file (https://user:KEY@host, s3://...). A redactor is made of them.
func (c *Pipeline) Secrets() []string {
	var out []string
	c.root.secrets(&out)
	return out
}

func (c *Conf) secrets(out *[]string) {
	if c == nil {
		return
	}
	for _, f := range c.spec.fields {
		if v, ok := c.vals[f.name]; ok {
			valueSecrets(f, v.v, out)
		}
	}
	for _, e := range c.extra {
		valueSecrets(c.spec.extra, e.Value, out)
	}
}

func valueSecrets(f *Field, v any, out *[]string) {
	switch v := v.(type) {
	case string:
		if f != nil && f.secret {
			*out = append(*out, v)
		}
		*out = append(*out, redact.URLSecrets(v)...)
	case *Conf:
		v.secrets(out)
	case *PluginConf:
		v.Conf.secrets(out)
	case []any:
		var elem *Field
		if f != nil {
			elem = f.elem
		}
		for _, x := range v {
			valueSecrets(elem, x, out)
		}
	case []MapEntry:
		var elem *Field
		if f != nil {
			elem = f.elem
		}
		for _, e := range v {
			valueSecrets(elem, e.Value, out)
		}
	}
}
