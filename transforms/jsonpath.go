package transforms

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/backfillhq/backfill/internal/jsonscan"

	"github.com/backfillhq/backfill/pipeline/record"
)

// Values at a path into a JSON column, extracted once per batch for the
// vectorized filter. The filter's expr path decodes each row with
// json.Unmarshal and fetches the path from the result; a row is decided
// here only where that is sure to give the value extracted, so the scan
// validates the whole text as strictly as encoding/json does (a single bad
// byte anywhere makes expr see a string instead of an object).

// Kinds of an extracted value.
const (
	jUnknown uint8 = iota // leave the row to expr: invalid text, a fetch through a non-object, an object or array value
	jNull                 // JSON null or a missing last key: nil in expr
	jNum                  // float64, as Unmarshal decodes every number
	jStr
	jBool
)

// jsonVec is one path's value for every row of a batch.
type jsonVec struct {
	kind []uint8
	num  []float64 // jNum; jBool as 0 or 1
	str  []string  // jStr; allocated when a row holds a string
}

// maxJSONDepth bounds the recursion; deeper texts go to expr.
const maxJSONDepth = 256

// extractJSONPath extracts path from every row of a. A null row is nil
// itself for the empty path, and a fetch from nil (an error) otherwise.
func extractJSONPath(a *record.JSONArray, path []string) *jsonVec {
	n := a.Len()
	v := &jsonVec{kind: make([]uint8, n), num: make([]float64, n)}
	var s jsonScan
	for i := 0; i < n; i++ {
		if a.IsNull(i) {
			if len(path) == 0 {
				v.kind[i] = jNull
			}
			continue
		}
		b := a.ValueBytes(i)
		s = jsonScan{b: b}
		end, ok := s.value(jsonscan.SkipWS(b, 0), path, true, 0)
		if !ok || jsonscan.SkipWS(b, end) != len(b) {
			continue // jUnknown
		}
		switch s.hit {
		case hitMissing:
			v.kind[i] = jNull
		case hitFound:
			v.setScalar(i, b[s.start:s.end])
		}
	}
	return v
}

// setScalar decodes a valid JSON value as Unmarshal would, leaving
// objects and arrays unknown.
func (v *jsonVec) setScalar(i int, t []byte) {
	switch t[0] {
	case 'n':
		v.kind[i] = jNull
	case 't', 'f':
		v.kind[i] = jBool
		if t[0] == 't' {
			v.num[i] = 1
		}
	case '"':
		if v.str == nil {
			v.str = make([]string, len(v.kind))
		}
		if !plainString(t) {
			var u string
			if json.Unmarshal(t, &u) != nil {
				return
			}
			v.str[i] = u
		} else {
			// aliases the column, which outlives the batch's evaluation
			v.str[i] = unsafe.String(unsafe.SliceData(t[1:]), len(t)-2)
		}
		v.kind[i] = jStr
	case '{', '[':
	default:
		f, ok := simpleFloat(t)
		if !ok {
			var err error
			f, err = strconv.ParseFloat(unsafe.String(unsafe.SliceData(t), len(t)), 64)
			if err != nil {
				return
			}
		}
		v.kind[i], v.num[i] = jNum, f
	}
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// simpleFloat parses a valid JSON number of at most 15 digits and no
// exponent, the common case, a few times faster than ParseFloat and with
// the same result: the digits and the power of ten are exact float64s, so
// one division rounds correctly (ParseFloat's own exact path).
func simpleFloat(t []byte) (float64, bool) {
	neg := t[0] == '-'
	if neg {
		t = t[1:]
	}
	var m uint64
	nd, frac := 0, -1
	for _, c := range t {
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			nd++
		case c == '.':
			frac = nd
		default:
			return 0, false // an exponent
		}
	}
	if nd > 15 {
		return 0, false
	}
	f := float64(m)
	if frac >= 0 {
		f /= pow10[nd-frac]
	}
	if neg {
		f = -f
	}
	return f, true
}

// plainString reports whether a quoted string decodes to its bytes as
// they are: no escapes and valid UTF-8 (Unmarshal replaces bad bytes).
func plainString(t []byte) bool {
	ascii := true
	for _, c := range t {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(t)
}

const (
	hitBad     uint8 = iota // a fetch from nil or a non-object: an error in expr
	hitMissing              // the last key is absent: nil
	hitFound
)

// jsonScan validates one text and finds the value at a path in it; of
// duplicate keys the last wins, as with Unmarshal into a map.
type jsonScan struct {
	b          []byte
	hit        uint8
	start, end int
}

// value validates the value at b[i] and returns the index after it. on
// says whether the value is on the path, with path the keys left below it.
func (s *jsonScan) value(i int, path []string, on bool, depth int) (int, bool) {
	b := s.b
	if i >= len(b) || depth > maxJSONDepth {
		return 0, false
	}
	if on && len(path) > 0 && b[i] != '{' {
		s.hit = hitBad
		on = false
	}
	var end int
	var ok bool
	switch c := b[i]; {
	case c == '{':
		end, ok = s.object(i, path, on, depth)
		if on && len(path) > 0 {
			return end, ok // the hit is set below
		}
	case c == '[':
		end, ok = s.array(i, depth)
	case c == '"':
		var err error
		end, _, err = jsonscan.ScanString(b, i)
		ok = err == nil
	case c == 't':
		var err error
		end, err = jsonscan.ScanLiteral(b, i, "true")
		ok = err == nil
	case c == 'f':
		var err error
		end, err = jsonscan.ScanLiteral(b, i, "false")
		ok = err == nil
	case c == 'n':
		var err error
		end, err = jsonscan.ScanLiteral(b, i, "null")
		ok = err == nil
	default:
		// A number out of float64's range fails Unmarshal for the
		// whole text.
		var err error
		end, _, err = jsonscan.ScanNumber(b, i)
		ok = err == nil && jsonscan.InRange(b[i:end])
	}
	if on && ok {
		s.hit, s.start, s.end = hitFound, i, end
	}
	return end, ok
}

func (s *jsonScan) object(i int, path []string, on bool, depth int) (int, bool) {
	b := s.b
	want := on && len(path) > 0
	if want {
		s.hit = hitBad // fetching below a missing key is an error
		if len(path) == 1 {
			s.hit = hitMissing
		}
	}
	i = jsonscan.SkipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, false
		}
		j, info, err := jsonscan.ScanString(b, i)
		if err != nil {
			return 0, false
		}
		// Plain: its bytes are its value, as Unmarshal decodes it.
		plain := info&(jsonscan.Escaped|jsonscan.BadUTF8) == 0
		match := want && keyIs(b[i:j], plain, path[0])
		i = jsonscan.SkipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		var sub []string
		if match {
			sub = path[1:]
		}
		var ok bool
		if i, ok = s.value(jsonscan.SkipWS(b, i+1), sub, match, depth+1); !ok {
			return 0, false
		}
		var done bool
		if i, done, ok = afterElem(b, i, '}'); done || !ok {
			return i, ok
		}
	}
}

// afterElem reads what follows an object member or array element: ','
// (then i is the next one's start) or the closing byte (done, i past it).
func afterElem(b []byte, i int, closing byte) (int, bool, bool) {
	i = jsonscan.SkipWS(b, i)
	switch {
	case i < len(b) && b[i] == ',':
		return jsonscan.SkipWS(b, i+1), false, true
	case i < len(b) && b[i] == closing:
		return i + 1, true, true
	}
	return 0, false, false
}

func (s *jsonScan) array(i int, depth int) (int, bool) {
	b := s.b
	i = jsonscan.SkipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		i, ok = s.value(i, nil, false, depth+1)
		if !ok {
			return 0, false
		}
		var done bool
		if i, done, ok = afterElem(b, i, ']'); done || !ok {
			return i, ok
		}
	}
}

// keyIs compares a quoted key with a name, decoding it only when it is
// not plain.
func keyIs(q []byte, plain bool, name string) bool {
	if plain || plainString(q) {
		return string(q[1:len(q)-1]) == name
	}
	var k string
	return json.Unmarshal(q, &k) == nil && k == name
}
