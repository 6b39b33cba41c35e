package transforms

import (
	"fmt"
	"path"
	"strings"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/pipeline/record"
)

// A small JSON object rewriter: it walks an object's members without
// decoding values, so removing a key copies the other members' bytes as
// they are (order and number formatting preserved) and costs one scan.

// keyPattern is a path of glob segments below some object.
type keyPattern []keySeg

// keySeg is one glob segment, classified once so that matching a key per
// row is a comparison, not a path.Match call.
type keySeg struct {
	pat    string
	kind   uint8  // segLiteral, segPrefix or segGlob
	prefix string // segPrefix: the text before the final '*'
}

const (
	segLiteral uint8 = iota
	segPrefix        // "internal_*"
	segGlob          // anything else path.Match understands
)

func newKeyPattern(path string) keyPattern {
	parts := record.SplitPath(path)
	p := make(keyPattern, len(parts))
	for i, s := range parts {
		p[i] = keySeg{pat: s}
		switch meta := strings.IndexAny(s, `*?[\`); {
		case meta < 0:
			p[i].kind = segLiteral
		case meta == len(s)-1 && s[meta] == '*':
			p[i].kind, p[i].prefix = segPrefix, s[:meta]
		default:
			p[i].kind = segGlob
		}
	}
	return p
}

func (s keySeg) match(key string) bool {
	switch s.kind {
	case segLiteral:
		return s.pat == key
	case segPrefix:
		return strings.HasPrefix(key, s.prefix)
	}
	ok, _ := path.Match(s.pat, key)
	return ok
}

// String is the pattern as written, segments joined with dots.
func (p keyPattern) String() string {
	parts := make([]string, len(p))
	for i, s := range p {
		parts[i] = s.pat
	}
	return strings.Join(parts, ".")
}

// stripObject appends obj without the members matching drop (and not
// matching keep) to out. changed is false when nothing was removed (out
// then holds a copy of obj).
func stripObject(obj []byte, drop, keep []keyPattern, out []byte, depth int) ([]byte, bool, error) {
	if depth > 64 {
		return append(out, obj...), false, nil
	}
	var scratch [16]jsonscan.Member // most objects fit: no allocation
	ms, isObj, err := jsonscan.Members(obj, scratch[:0])
	if err != nil {
		return out, false, err
	}
	if !isObj {
		return append(out, obj...), false, nil
	}
	changed := false
	out = append(out, '{')
	first := true
	for _, m := range ms {
		key := m.Name()
		var subDrop, subKeep []keyPattern
		remove := false
		for _, p := range drop {
			if !p[0].match(key) {
				continue
			}
			if len(p) == 1 {
				remove = true
			} else {
				subDrop = append(subDrop, p[1:])
			}
		}
		for _, p := range keep {
			if p[0].pat == key {
				if len(p) == 1 {
					remove = false
				} else {
					subKeep = append(subKeep, p[1:])
				}
			}
		}
		if remove {
			changed = true
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		if len(subDrop) == 0 {
			out = append(out, obj[m.Start:m.End]...)
			continue
		}
		out = append(out, obj[m.Start:m.Val]...)
		var ch bool
		out, ch, err = stripObject(obj[m.Val:m.End], subDrop, subKeep, out, depth+1)
		if err != nil {
			return out, false, fmt.Errorf("%s: %w", key, err)
		}
		changed = changed || ch
	}
	return append(out, '}'), changed, nil
}
