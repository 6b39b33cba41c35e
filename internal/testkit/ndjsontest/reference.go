package ndjsontest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Member is one key of a JSON object and its value, as encoding/json
// reads it.
type Member struct {
	Key   string
	Value json.RawMessage
}

// Members is encoding/json's reading of text, the reference a fuzz target
// checks a reader against: valid when text is one JSON value in valid
// UTF-8 nested at most maxDepth deep; object when it is an object, whose
// members it then returns in order, repeated keys included.
func Members(text []byte, maxDepth int) (members []Member, valid, object bool) {
	if !json.Valid(text) || !utf8.Valid(text) || Depth(text) > maxDepth {
		return nil, false, false
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, true, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, true
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, true
		}
		members = append(members, Member{Key: tok.(string), Value: v})
	}
	return members, true, true
}

// Depth is how deep a JSON text nests.
func Depth(b []byte) int {
	d, most, inStr := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && (c == '{' || c == '['):
			d++
			most = max(most, d)
		case !inStr && (c == '}' || c == ']'):
			d--
		}
	}
	return most
}
