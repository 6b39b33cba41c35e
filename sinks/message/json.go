package message

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// safe[c] is true for ASCII bytes that go into a JSON string unescaped.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb8 = 0x0101010101010101
	msb8 = 0x8080808080808080
)

// safe8 reports whether the 8 bytes packed in x all go into a JSON string
// unescaped: none is a control character, '"', '\\' or non-ASCII. Each
// test sets a byte's high bit where it holds (the classic "has a zero
// byte" trick); a borrow can only flag a byte above a real hit, so the
// answer for the word as a whole is exact.
func safe8(x uint64) bool {
	lt20 := (x - 0x20*lsb8) &^ x
	quote := x ^ '"'*lsb8
	quote = (quote - lsb8) &^ quote
	bslash := x ^ '\\'*lsb8
	bslash = (bslash - lsb8) &^ bslash
	return (lt20|quote|bslash|x)&msb8 == 0
}

// load64 reads s[i:i+8] as a little-endian word (one unaligned load).
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// load32 reads s[i:i+4] as a little-endian word.
func load32(s string, i int) uint32 {
	return binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(s[i:]), 4))
}

// safeLen returns the length of s's prefix of safe bytes, or an index at
// most that long: where appendString must start looking byte by byte.
// Words of 8 cover the string; a short tail is checked with one load
// overlapping bytes already seen, so most strings take 1-3 loads.
func safeLen(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if !safe8(load64(s, i)) {
			return i
		}
	}
	switch {
	case i == len(s):
		return i
	case len(s) >= 8:
		if safe8(load64(s, len(s)-8)) {
			return len(s)
		}
		return i
	case len(s) >= 4:
		if safe8(uint64(load32(s, 0)) | uint64(load32(s, len(s)-4))<<32) {
			return len(s)
		}
		return 0
	}
	for i < len(s) && safe[s[i]] {
		i++
	}
	return i
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, U+2028/U+2029
// escaped (as encoding/json does, for JavaScript consumers).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	i := safeLen(s)
	if i == len(s) { // the common case: nothing to escape
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i < len(s) {
		// Skip 8 safe bytes at a time; the unsafe run is copied in bulk.
		if i+8 <= len(s) && safe8(load64(s, i)) {
			i += 8
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// b2s views b as a string without copying; b must not change while the
// string is in use.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// maxDepth bounds nesting in JSON columns (the validator recurses).
const maxDepth = 512

// jsonError says where a JSON text is broken.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

// validJSON checks that src holds exactly one JSON value (RFC 8259, UTF-8)
// and returns it without surrounding whitespace. It does not allocate
// unless src is broken.
func validJSON(src []byte) ([]byte, error) {
	i := skipWS(src, 0)
	start := i
	end, err := scanValue(src, i, 0)
	if err != nil {
		return nil, err
	}
	if j := skipWS(src, end); j != len(src) {
		return nil, &jsonError{j, fmt.Sprintf("unexpected %q after the value", src[j])}
	}
	return src[start:end], nil
}

func skipWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func scanValue(s []byte, i, depth int) (int, error) {
	if i >= len(s) {
		return i, &jsonError{i, "unexpected end of JSON"}
	}
	switch c := s[i]; {
	case c == '{':
		return scanObject(s, i, depth+1)
	case c == '[':
		return scanArray(s, i, depth+1)
	case c == '"':
		return scanString(s, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(s, i)
	case c == 't':
		return scanLiteral(s, i, "true")
	case c == 'f':
		return scanLiteral(s, i, "false")
	case c == 'n':
		return scanLiteral(s, i, "null")
	default:
		return i, &jsonError{i, fmt.Sprintf("invalid character %q", c)}
	}
}

func scanLiteral(s []byte, i int, lit string) (int, error) {
	if len(s)-i < len(lit) || string(s[i:i+len(lit)]) != lit {
		return i, &jsonError{i, "invalid literal"}
	}
	return i + len(lit), nil
}

func scanObject(s []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, &jsonError{i, "nested too deeply"}
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return i, &jsonError{i, "expected an object key"}
		}
		var err error
		if i, err = scanString(s, i); err != nil {
			return i, err
		}
		i = skipWS(s, i)
		if i >= len(s) || s[i] != ':' {
			return i, &jsonError{i, "expected ':'"}
		}
		if i, err = scanValue(s, skipWS(s, i+1), depth); err != nil {
			return i, err
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, &jsonError{i, "unexpected end of JSON"}
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, &jsonError{i, "expected ',' or '}'"}
		}
	}
}

func scanArray(s []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, &jsonError{i, "nested too deeply"}
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = scanValue(s, i, depth); err != nil {
			return i, err
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, &jsonError{i, "unexpected end of JSON"}
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, &jsonError{i, "expected ',' or ']'"}
		}
	}
}

func scanString(s []byte, i int) (int, error) {
	i++ // opening quote
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return i, &jsonError{i, "unexpected end of JSON"}
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(s)-i < 6 || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return i, &jsonError{i, `invalid \u escape`}
				}
				i += 6
			default:
				return i, &jsonError{i, "invalid escape"}
			}
		case c < 0x20:
			return i, &jsonError{i, "control character in string"}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return i, &jsonError{i, "invalid UTF-8"}
			}
			i += size
		}
	}
	return i, &jsonError{i, "unterminated string"}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func scanNumber(s []byte, i int) (int, error) {
	start := i
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return start, &jsonError{start, "invalid number"}
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return start, &jsonError{start, "invalid number"}
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return start, &jsonError{start, "invalid number"}
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i, nil
}

// isNumber reports whether s is exactly one JSON number.
func isNumber(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	if len(b) == 0 {
		return false
	}
	end, err := scanNumber(b, 0)
	return err == nil && end == len(b)
}

// appendCompact appends a valid JSON text without its insignificant
// whitespace. Only texts holding a line break take this path: NDJSON and
// the message size need one line.
func appendCompact(dst, src []byte) []byte {
	inStr := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inStr {
			dst = append(dst, c)
			switch c {
			case '\\':
				i++
				dst = append(dst, src[i])
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		}
		dst = append(dst, c)
	}
	return dst
}

// hasLineBreak reports whether a JSON text holds a line break, which can
// only be insignificant whitespace (strings cannot hold raw ones).
func hasLineBreak(b []byte) bool {
	return bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0
}

// span is one member of a JSON object: key content (without quotes) at
// s[k0:k1], value at s[v0:v1].
type span struct {
	k0, k1, v0, v1 int
	esc            bool // the key holds escapes
	used           bool // a sub-path column took this key
}

// objectSpans lists the members of a valid JSON object.
func objectSpans(s []byte, out []span) []span {
	i := skipWS(s, 1)
	if i < len(s) && s[i] == '}' {
		return out
	}
	for i < len(s) {
		var sp span
		sp.k0 = i + 1
		j, _ := scanString(s, i)
		sp.k1 = j - 1
		sp.esc = bytes.IndexByte(s[sp.k0:sp.k1], '\\') >= 0
		i = skipWS(s, j)
		i = skipWS(s, i+1) // ':'
		sp.v0 = i
		sp.v1, _ = scanValue(s, i, 0)
		out = append(out, sp)
		i = skipWS(s, sp.v1)
		if i >= len(s) || s[i] == '}' {
			break
		}
		i = skipWS(s, i+1) // ','
	}
	return out
}

// keyIs compares a member's key with name.
func (sp *span) keyIs(s []byte, name string) bool {
	if !sp.esc {
		return b2s(s[sp.k0:sp.k1]) == name
	}
	var k string // escaped keys are rare: decode them the slow way
	if json.Unmarshal(s[sp.k0-1:sp.k1+1], &k) != nil {
		return false
	}
	return k == name
}

// jsonKind names the kind of a JSON value by its first byte, for reasons.
func jsonKind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
