// Package jsonscan checks and walks JSON text in place, without decoding
// it. The NDJSON reader, the message encoder and the transforms that look
// inside JSON columns all pass JSON bytes through as they are, so what they
// need is where a value ends, what kind it is, and that it is valid: fast,
// and without allocating unless the text is broken.
//
// Validation follows RFC 8259 as encoding/json does; Rules add what some
// callers need beyond it (valid UTF-8 in strings).
package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Kind is a JSON value's kind, as bits so that a column can OR the kinds it
// has seen.
type Kind uint8

const (
	Null Kind = 1 << iota
	Bool
	Int // a number without fraction or exponent
	Float
	String
	Object
	Array
)

// Describe names the kind of valid JSON text v (leading whitespace
// allowed) for error messages: "an object", "a string", "null", ...
func Describe(v []byte) string {
	i := SkipWS(v, 0)
	if i >= len(v) {
		return "nothing"
	}
	switch v[i] {
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

// MaxDepth bounds nesting: the checks recurse.
const MaxDepth = 512

// Error is a syntax error at byte offset Off (from 0) of the text.
type Error struct {
	Off int
	Msg string
}

// Error counts bytes from 1, as editors count columns.
func (e *Error) Error() string { return fmt.Sprintf("byte %d: %s", e.Off+1, e.Msg) }

// Expected is the error for a byte at b[i] (or the end) that is not what
// the grammar wants there.
func Expected(b []byte, i int, want string) error {
	if i >= len(b) {
		return &Error{i, "unexpected end of JSON, expected " + want}
	}
	return &Error{i, fmt.Sprintf("expected %s, got %q", want, b[i])}
}

// SkipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// StrInfo says what a string held, for callers that can take a shortcut
// when it is plain (0: ASCII without escapes, so its bytes are its value).
type StrInfo uint8

const (
	Escaped  StrInfo = 1 << iota // backslash escapes
	NonASCII                     // bytes from 0x80
	BadUTF8                      // invalid UTF-8 (encoding/json decodes it as U+FFFD)
)

// ScanString checks the string at b[i] == '"' (RFC 8259 escapes, no control
// characters) and returns the index after its closing quote.
func ScanString(b []byte, i int) (int, StrInfo, error) {
	end, info, _, err := str(b, i)
	return end, info, err
}

// special8 has the high bit set in the lowest byte of w (little endian)
// that is a quote, a backslash, a control character or non-ASCII; bits
// above the lowest may be spurious.
func special8(w uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := w ^ (lo * '"')
	bs := w ^ (lo * '\\')
	return ((w-lo*0x20)&^w | (q-lo)&^q | (bs-lo)&^bs | w) & hi
}

// scan8 moves i on eight bytes at a time while none of them is a quote or
// a backslash (with special, nor a control or non-ASCII byte), and
// returns the index of the first one that is, or where fewer than eight
// bytes are left.
func scan8(b []byte, i int, special bool) int {
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		var m uint64
		if special {
			m = special8(w)
		} else {
			m = quoteOrBackslash8(w)
		}
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	return i
}

// str is ScanString also returning where the first invalid UTF-8 is (when
// info has BadUTF8).
func str(b []byte, i int) (end int, info StrInfo, bad int, err error) {
	for i++; i < len(b); {
		if i = scan8(b, i, true); i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, info, bad, nil
		case c == '\\':
			info |= Escaped
			if i+1 >= len(b) {
				return 0, info, bad, Expected(b, i+1, "an escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(b) || !isHex(b[k]) {
						return 0, info, bad, Expected(b, k, "a hex digit of a \\u escape")
					}
				}
				i += 6
			default:
				return 0, info, bad, &Error{i, fmt.Sprintf("invalid escape \\%c", b[i+1])}
			}
		case c < 0x20:
			return 0, info, bad, &Error{i, "control character in a string"}
		case c < utf8.RuneSelf:
			i++
		default:
			info |= NonASCII
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 && info&BadUTF8 == 0 {
				info |= BadUTF8
				bad = i
			}
			i += size
		}
	}
	return 0, info, bad, &Error{len(b), "unterminated string"}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// ScanNumber checks the number at b[i] and returns its end and whether it is
// written as an integer.
func ScanNumber(b []byte, i int) (int, bool, error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0, false, Expected(b, i, "a digit")
	}
	isInt := true
	if i < len(b) && b[i] == '.' {
		isInt = false
		j := digits(b, i+1)
		if j == i+1 {
			return 0, false, Expected(b, j, "a digit after '.'")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, false, Expected(b, j, "an exponent digit")
		}
		i = j
	}
	return i, isInt, nil
}

// InRange reports whether a valid JSON number fits a float64, as
// encoding/json requires to decode it. Only numbers with an exponent or
// hundreds of digits can fail, and only those are parsed.
func InRange(num []byte) bool {
	if len(num) <= 300 {
		exp := false
		for _, c := range num {
			exp = exp || c == 'e' || c == 'E'
		}
		if !exp {
			return true
		}
	}
	_, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(num), len(num)), 64)
	return err == nil
}

// ScanLiteral checks that b holds lit (true, false or null) at i.
func ScanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, Expected(b, i, "a JSON value")
	}
	return i + len(lit), nil
}

// Rules are checks beyond RFC 8259's grammar.
type Rules struct {
	// UTF8 refuses invalid UTF-8 in strings, which encoding/json lets
	// through (and decodes as U+FFFD).
	UTF8 bool
}

// Strict is the grammar plus valid UTF-8: what a message sent on may hold.
var Strict = Rules{UTF8: true}

// Value checks the value at b[i] (no whitespace before it) and returns the
// index after it and its kind.
func (r Rules) Value(b []byte, i int) (int, Kind, error) { return r.value(b, i, 0) }

// Valid checks that src holds exactly one JSON value and returns it
// without the whitespace around it.
func (r Rules) Valid(src []byte) ([]byte, error) {
	i := SkipWS(src, 0)
	end, _, err := r.value(src, i, 0)
	if err != nil {
		return nil, err
	}
	if j := SkipWS(src, end); j != len(src) {
		return nil, &Error{j, fmt.Sprintf("unexpected %q after the value", src[j])}
	}
	return src[i:end], nil
}

func (r Rules) value(b []byte, i, depth int) (int, Kind, error) {
	if i >= len(b) {
		return 0, 0, Expected(b, i, "a JSON value")
	}
	switch c := b[i]; {
	case c == '"':
		end, info, bad, err := str(b, i)
		if err == nil && r.UTF8 && info&BadUTF8 != 0 {
			err = &Error{bad, "invalid UTF-8"}
		}
		return end, String, err
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return 0, 0, &Error{i, "nested too deeply"}
		}
		end, err := r.composite(b, i, depth+1)
		if c == '{' {
			return end, Object, err
		}
		return end, Array, err
	case c == 't':
		end, err := ScanLiteral(b, i, "true")
		return end, Bool, err
	case c == 'f':
		end, err := ScanLiteral(b, i, "false")
		return end, Bool, err
	case c == 'n':
		end, err := ScanLiteral(b, i, "null")
		return end, Null, err
	case c == '-' || c >= '0' && c <= '9':
		end, isInt, err := ScanNumber(b, i)
		if isInt {
			return end, Int, err
		}
		return end, Float, err
	}
	return 0, 0, Expected(b, i, "a JSON value")
}

func (r Rules) composite(b []byte, i, depth int) (int, error) {
	obj := b[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = SkipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		if obj {
			if i >= len(b) || b[i] != '"' {
				return 0, Expected(b, i, "a key string")
			}
			end, info, bad, err := str(b, i)
			if err != nil {
				return 0, err
			}
			if r.UTF8 && info&BadUTF8 != 0 {
				return 0, &Error{bad, "invalid UTF-8"}
			}
			i = SkipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, Expected(b, i, "':'")
			}
			i = SkipWS(b, i+1)
		}
		end, _, err := r.value(b, i, depth)
		if err != nil {
			return 0, err
		}
		i = SkipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = SkipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		return 0, Expected(b, i, fmt.Sprintf("',' or '%c'", closer))
	}
}

// skipStop marks the bytes Skip's loops stop at, so that the others cost
// one table load each: bit 1 inside strings, bit 2 inside objects and
// arrays.
var skipStop = func() (t [256]uint8) {
	t['"'], t['\\'] = 3, 1
	t['{'], t['['], t['}'], t[']'] = 2, 2, 2, 2
	return t
}()

// quoteOrBackslash8 has the high bit set in the lowest byte of w (little
// endian) that is a quote or a backslash; bits above it may be spurious.
func quoteOrBackslash8(w uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := w ^ (lo * '"')
	bs := w ^ (lo * '\\')
	return ((q-lo)&^q | (bs-lo)&^bs) & hi
}

// skipString returns the index after the string at b[i] == '"' and
// whether it has escapes, in text already known to be valid.
func skipString(b []byte, i int) (int, bool, bool) {
	esc := false
	for i++; i < len(b); i++ {
		if i = scan8(b, i, false); i >= len(b) {
			break
		}
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

// Skip returns the index after the value at b[i] in text already known to
// be valid JSON: it only finds the end, so it is several times faster than
// Value. ok is false when the text ends first.
func Skip(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		j, _, ok := skipString(b, i)
		return j, ok
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			if skipStop[b[i]]&2 == 0 {
				continue
			}
			switch b[i] {
			case '"':
				j, _, ok := skipString(b, i)
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

// Member is one member of an object: obj[Start:End] is `"key": value` and
// obj[Val:End] the value.
type Member struct {
	Quoted          []byte // the key as written, quotes included; aliases the text
	Escaped         bool   // the key holds escapes
	Start, Val, End int
}

// KeyIs compares the member's key with name.
func (m *Member) KeyIs(name string) bool {
	if !m.Escaped {
		return string(m.Quoted[1:len(m.Quoted)-1]) == name // no copy: a comparison
	}
	return m.Name() == name
}

// Name is the member's key, decoded; it aliases the text unless the key
// has escapes (rare: only those allocate).
func (m *Member) Name() string {
	if !m.Escaped {
		k := m.Quoted[1 : len(m.Quoted)-1]
		return unsafe.String(unsafe.SliceData(k), len(k))
	}
	var k string
	if json.Unmarshal(m.Quoted, &k) != nil {
		return "" // a key Members skipped over but that is not valid
	}
	return k
}

// errMalformed reports an object Members cannot walk.
var errMalformed = &Error{0, "malformed object"}

// Members lists the members of the object that obj holds (whitespace
// around it allowed), appending to buf. Values are skipped, not checked:
// obj should be valid JSON. isObject is false when obj holds another kind
// of value; err reports text Members cannot walk.
func Members(obj []byte, buf []Member) (members []Member, isObject bool, err error) {
	i := SkipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return buf, false, nil
	}
	i = SkipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return buf, true, nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return buf, true, errMalformed
		}
		start := i
		j, esc, ok := skipString(obj, i)
		if !ok {
			return buf, true, errMalformed
		}
		m := Member{Quoted: obj[i:j], Escaped: esc, Start: start}
		i = SkipWS(obj, j)
		if i >= len(obj) || obj[i] != ':' {
			return buf, true, errMalformed
		}
		m.Val = SkipWS(obj, i+1)
		if m.End, ok = Skip(obj, m.Val); !ok {
			return buf, true, errMalformed
		}
		buf = append(buf, m)
		i = SkipWS(obj, m.End)
		if i < len(obj) && obj[i] == ',' {
			i = SkipWS(obj, i+1)
			continue
		}
		if i < len(obj) && obj[i] == '}' && SkipWS(obj, i+1) == len(obj) {
			return buf, true, nil
		}
		return buf, true, errMalformed
	}
}
