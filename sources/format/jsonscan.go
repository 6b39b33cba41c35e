package format

import (
	"fmt"
)

// Kinds of JSON values, as bits so a column can OR what it has seen.
const (
	kNull uint8 = 1 << iota
	kBool
	kInt
	kFloat
	kString
	kComplex // object or array
)

const maxDepth = 512

// jsonError is a syntax error at a byte offset of a line.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("byte %d: %s", e.off+1, e.msg) }

func syntaxErr(b []byte, i int, want string) error {
	if i >= len(b) {
		return &jsonError{i, "unexpected end of line, expected " + want}
	}
	return &jsonError{i, fmt.Sprintf("expected %s, got %q", want, b[i])}
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString checks the string starting at b[i] == '"' and returns the
// index after its closing quote and whether it holds escapes.
func scanString(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return j + 1, esc, nil
		case c == '\\':
			esc = true
			j++
			if j >= len(b) {
				return 0, false, syntaxErr(b, j, "an escape")
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return 0, false, syntaxErr(b, len(b), "4 hex digits")
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(b[k]) {
						return 0, false, syntaxErr(b, k, "a hex digit")
					}
				}
				j += 4
			default:
				return 0, false, &jsonError{j, fmt.Sprintf("invalid escape \\%c", b[j])}
			}
		case c < 0x20:
			return 0, false, &jsonError{j, "control character in string"}
		}
	}
	return 0, false, &jsonError{len(b), "unterminated string"}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber checks the number at b[i] and returns its end and whether it
// is written as an integer.
func scanNumber(b []byte, i int) (int, bool, error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	default:
		return 0, false, syntaxErr(b, j, "a digit")
	}
	isInt := true
	if j < len(b) && b[j] == '.' {
		isInt = false
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return 0, false, syntaxErr(b, j, "a digit after '.'")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		isInt = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return 0, false, syntaxErr(b, j, "an exponent digit")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	return j, isInt, nil
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, syntaxErr(b, i, "a JSON value")
	}
	return i + len(lit), nil
}

// scanValue checks the JSON value at b[i] (no leading space) and returns
// its end and kind. It validates strictly: nested values are spliced into
// messages as they are, so they must be valid JSON.
func scanValue(b []byte, i, depth int) (int, uint8, error) {
	if i >= len(b) {
		return 0, 0, syntaxErr(b, i, "a JSON value")
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, kString, err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, 0, &jsonError{i, "nested too deeply"}
		}
		end, err := scanComposite(b, i, depth+1)
		return end, kComplex, err
	case c == 't':
		end, err := scanLiteral(b, i, "true")
		return end, kBool, err
	case c == 'f':
		end, err := scanLiteral(b, i, "false")
		return end, kBool, err
	case c == 'n':
		end, err := scanLiteral(b, i, "null")
		return end, kNull, err
	case c == '-' || isDigit(c):
		end, isInt, err := scanNumber(b, i)
		if isInt {
			return end, kInt, err
		}
		return end, kFloat, err
	}
	return 0, 0, syntaxErr(b, i, "a JSON value")
}

func scanComposite(b []byte, i, depth int) (int, error) {
	obj := b[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		if obj {
			if i >= len(b) || b[i] != '"' {
				return 0, syntaxErr(b, i, "a key string")
			}
			end, _, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return 0, syntaxErr(b, i, "':'")
			}
			i = skipWS(b, i+1)
		}
		end, _, err := scanValue(b, i, depth)
		if err != nil {
			return 0, err
		}
		i = skipWS(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		return 0, syntaxErr(b, i, fmt.Sprintf("',' or '%c'", closer))
	}
}
