package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/backfillhq/backfill/pipeline/config"
)

// enumFlag is a string flag that takes one of a fixed set of values; any
// other is a usage error (exit 2) that names them.
type enumFlag struct {
	p       *string
	allowed []string
}

// enumVar declares an enum flag writing to p; its default is allowed[0].
func enumVar(fs *pflag.FlagSet, p *string, name string, allowed []string, usage string) {
	*p = allowed[0]
	fs.Var(&enumFlag{p: p, allowed: allowed}, name, usage+" ("+strings.Join(allowed, ", ")+")")
}

func (e *enumFlag) String() string { return *e.p }
func (e *enumFlag) Type() string   { return "string" }

func (e *enumFlag) Set(v string) error {
	if !slices.Contains(e.allowed, v) {
		hint := ""
		if s := config.Suggest(v, e.allowed); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return fmt.Errorf("%q is not one of %s%s", v, strings.Join(e.allowed, ", "), hint)
	}
	*e.p = v
	return nil
}
