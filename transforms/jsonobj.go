package transforms

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/backfillhq/backfill/pipeline/record"
	"path"
	"strings"
	"unsafe"
)

// A small JSON object rewriter: it walks an object's members without
// decoding values, so removing a key copies the other members' bytes as
// they are (order and number formatting preserved) and costs one scan.

var errJSON = errors.New("invalid JSON")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// Bytes the skipping loops stop at, so that the others cost one table
// load each: bit 1 in strings, bit 2 in objects and arrays.
var skipStop = func() (t [256]uint8) {
	t['"'], t['\\'] = 3, 1
	t['{'], t['['], t['}'], t[']'] = 2, 2, 2, 2
	return t
}()

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	j, _, ok := skipStringEsc(b, i)
	return j, ok
}

// skipStringEsc is skipString also saying whether the string has an
// escape, saving callers a second pass over it.
func skipStringEsc(b []byte, i int) (int, bool, bool) {
	esc := false
	for i++; i < len(b); i++ {
		if skipStop[b[i]]&1 == 0 {
			continue
		}
		if b[i] == '"' {
			return i + 1, esc, true
		}
		esc = true
		i++
	}
	return 0, false, false
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			if skipStop[b[i]]&2 == 0 {
				continue
			}
			switch b[i] {
			case '"':
				j, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = j - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	return j, j > i
}

// member is one key/value of an object: b[start:end] is `"key": value`.
type member struct {
	key             string
	start, val, end int
}

// objectMembers lists an object's members; ok is false when obj is not an
// object (a caller leaves such values alone); err reports malformed JSON.
func objectMembers(obj []byte, buf []member) ([]member, bool, error) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return buf, false, nil
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return buf, true, nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return buf, true, errJSON
		}
		start := i
		j, esc, ok := skipStringEsc(obj, i)
		if !ok {
			return buf, true, errJSON
		}
		// The key aliases obj (no copy): members live only while obj does.
		key := unsafe.String(unsafe.SliceData(obj[i+1:j-1]), j-1-i-1)
		if esc {
			unq := new(string) // escaped keys are rare: allocate only for them
			if err := json.Unmarshal(obj[i:j], unq); err != nil {
				return buf, true, errJSON
			}
			key = *unq
		}
		i = skipWS(obj, j)
		if i >= len(obj) || obj[i] != ':' {
			return buf, true, errJSON
		}
		v := skipWS(obj, i+1)
		e, ok := skipValue(obj, v)
		if !ok {
			return buf, true, errJSON
		}
		buf = append(buf, member{key: key, start: start, val: v, end: e})
		i = skipWS(obj, e)
		if i < len(obj) && obj[i] == ',' {
			i = skipWS(obj, i+1)
			continue
		}
		if i < len(obj) && obj[i] == '}' && skipWS(obj, i+1) == len(obj) {
			return buf, true, nil
		}
		return buf, true, errJSON
	}
}

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
	var scratch [16]member // most objects fit: no allocation
	ms, isObj, err := objectMembers(obj, scratch[:0])
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
		var subDrop, subKeep []keyPattern
		remove := false
		for _, p := range drop {
			if !p[0].match(m.key) {
				continue
			}
			if len(p) == 1 {
				remove = true
			} else {
				subDrop = append(subDrop, p[1:])
			}
		}
		for _, p := range keep {
			if p[0].pat == m.key {
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
			out = append(out, obj[m.start:m.end]...)
			continue
		}
		out = append(out, obj[m.start:m.val]...)
		var ch bool
		out, ch, err = stripObject(obj[m.val:m.end], subDrop, subKeep, out, depth+1)
		if err != nil {
			return out, false, fmt.Errorf("%s: %w", m.key, err)
		}
		changed = changed || ch
	}
	return append(out, '}'), changed, nil
}
