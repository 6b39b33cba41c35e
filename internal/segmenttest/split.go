package segmenttest

import (
	"errors"
	"strconv"
)

var errSyntax = errors.New("malformed JSON")

// splitBatch reads a {"batch":[...],"sentAt":"..."} body and returns each
// message's raw JSON. It only finds value boundaries (messages are decoded,
// and so validated, separately), which keeps a benchmark's receiver cheap.
func splitBatch(b []byte, msgs [][]byte) ([][]byte, string, error) {
	i := ws(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, "", errSyntax
	}
	i++
	var sentAt string
	for {
		i = ws(b, i)
		if i < len(b) && b[i] == '}' {
			return msgs, sentAt, nil
		}
		if i >= len(b) || b[i] != '"' {
			return nil, "", errSyntax
		}
		kEnd, err := skip(b, i)
		if err != nil {
			return nil, "", err
		}
		key := string(b[i+1 : kEnd-1])
		i = ws(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return nil, "", errSyntax
		}
		i = ws(b, i+1)
		switch {
		case key == "batch" && i < len(b) && b[i] == '[':
			i = ws(b, i+1)
			if i < len(b) && b[i] == ']' {
				i++
				break
			}
			for {
				end, err := skip(b, i)
				if err != nil {
					return nil, "", err
				}
				msgs = append(msgs, b[i:end])
				i = ws(b, end)
				if i < len(b) && b[i] == ',' {
					i = ws(b, i+1)
					continue
				}
				if i < len(b) && b[i] == ']' {
					i++
					break
				}
				return nil, "", errSyntax
			}
		default:
			end, err := skip(b, i)
			if err != nil {
				return nil, "", err
			}
			if key == "sentAt" {
				if s, err := strconv.Unquote(string(b[i:end])); err == nil {
					sentAt = s
				}
			}
			i = end
		}
		i = ws(b, i)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

func ws(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skip returns the index just past the JSON value starting at i.
func skip(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}
		return 0, errSyntax
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skip(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' {
		j++
	}
	if j == i {
		return 0, errSyntax
	}
	return j, nil
}
