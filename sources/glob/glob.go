// Package glob matches slash-separated names (file paths, object keys)
// against patterns whose segments are path.Match patterns, where a "**"
// segment stands for any number of segments, none included: how the file
// and s3 sources pick what to read.
package glob

import (
	"fmt"
	"path"
	"strings"
)

// HasMeta reports whether s holds a wildcard.
func HasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// Match reports whether name matches pattern.
func Match(pattern, name string) bool {
	return MatchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

// MatchSegs is Match on names and patterns already split into segments.
func MatchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if MatchSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// LiteralPrefix is the pattern's leading segments without wildcards, with
// their slash (the part a listing can start from), or the whole pattern
// when it has no wildcard at all.
func LiteralPrefix(pattern string) string {
	var b strings.Builder
	for _, seg := range strings.Split(pattern, "/") {
		if HasMeta(seg) {
			return b.String()
		}
		b.WriteString(seg)
		b.WriteByte('/')
	}
	return pattern // one exact name
}

// Check reports a pattern that cannot match as meant: a bad segment, or
// "**" inside a segment instead of standing for whole ones.
func Check(pattern string) error {
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "**" {
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("%q: ** must be a whole path segment (a/**/b)", pattern)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("%q: bad pattern segment %q", pattern, seg)
		}
	}
	return nil
}
