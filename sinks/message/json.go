package message

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
	"unsafe"

	"github.com/backfillhq/backfill/internal/jsonscan"
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
func safe8(x uint64) bool { return unsafeBits(x)&msb8 == 0 }

// unsafeBits sets the high bit of x's bytes that need escaping (and maybe
// of bytes above one that does); its other bits mean nothing.
func unsafeBits(x uint64) uint64 {
	lt20 := (x - 0x20*lsb8) &^ x
	quote := x ^ '"'*lsb8
	quote = (quote - lsb8) &^ quote
	bslash := x ^ '\\'*lsb8
	bslash = (bslash - lsb8) &^ bslash
	return lt20 | quote | bslash | x
}

// load64 reads s[i:i+8] as a little-endian word (one unaligned load).
func load64(s string, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
}

// load32 reads s[i:i+4] as a little-endian word.
func load32(s string, i int) uint32 {
	return binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(s[i:]), 4))
}

// appendQuoted appends s as a JSON string; clean says s needs no escaping
// (its column was checked whole by allSafe).
func appendQuoted(dst []byte, s string, clean bool) []byte {
	if clean {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	return appendString(dst, s)
}

// allSafe reports whether no byte of s needs escaping in a JSON string. It
// runs over a whole column at a time, so it tests 32 bytes per branch:
// each word's flags are exact (see safe8), and so is their union.
func allSafe(s string) bool {
	var bad uint64
	i := 0
	for ; i+32 <= len(s); i += 32 {
		bad |= unsafeBits(load64(s, i)) | unsafeBits(load64(s, i+8)) | unsafeBits(load64(s, i+16)) | unsafeBits(load64(s, i+24))
	}
	for ; i+8 <= len(s); i += 8 {
		bad |= unsafeBits(load64(s, i))
	}
	for ; i < len(s); i++ {
		if !safe[s[i]] {
			return false
		}
	}
	return bad&msb8 == 0
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

// AppendJSONString appends s as a JSON string, as the encoder writes
// strings (see appendString). Other packages that build JSON text (a
// source turning a Postgres array into a JSON column) use it, so every
// string leaves backfill escaped one way.
func AppendJSONString(dst []byte, s string) []byte { return appendString(dst, s) }

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

// isNumber reports whether s is exactly one JSON number.
func isNumber(s string) bool {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	if len(b) == 0 {
		return false
	}
	end, _, err := jsonscan.ScanNumber(b, 0)
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
