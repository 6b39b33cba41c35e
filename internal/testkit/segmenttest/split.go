package segmenttest

import (
	"errors"
	"strconv"

	"github.com/backfillhq/backfill/internal/jsonscan"
)

var errSyntax = errors.New("malformed JSON")

// splitBatch reads a {"batch":[...],"sentAt":"..."} body and returns each
// message's raw JSON. It only finds value boundaries (messages are decoded,
// and so validated, separately), in one pass, which keeps a benchmark's
// receiver cheap.
func splitBatch(b []byte, msgs [][]byte) ([][]byte, string, error) {
	i := jsonscan.SkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, "", errSyntax
	}
	var sentAt string
	for i = jsonscan.SkipWS(b, i+1); i < len(b) && b[i] != '}'; {
		kEnd, ok := jsonscan.Skip(b, i)
		if !ok || b[i] != '"' {
			return nil, "", errSyntax
		}
		key := b[i+1 : kEnd-1]
		i = jsonscan.SkipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return nil, "", errSyntax
		}
		i = jsonscan.SkipWS(b, i+1)
		if string(key) == "batch" && i < len(b) && b[i] == '[' {
			var err error
			if msgs, i, err = splitArray(b, i, msgs); err != nil {
				return nil, "", err
			}
		} else {
			end, ok := jsonscan.Skip(b, i)
			if !ok {
				return nil, "", errSyntax
			}
			if string(key) == "sentAt" {
				if s, err := strconv.Unquote(string(b[i:end])); err == nil {
					sentAt = s
				}
			}
			i = end
		}
		i = jsonscan.SkipWS(b, i)
		if i < len(b) && b[i] == ',' {
			if i = jsonscan.SkipWS(b, i+1); i < len(b) && b[i] == '}' {
				return nil, "", errSyntax // a trailing comma
			}
		} else if i >= len(b) || b[i] != '}' {
			return nil, "", errSyntax
		}
	}
	if i >= len(b) || jsonscan.SkipWS(b, i+1) != len(b) {
		return nil, "", errSyntax
	}
	return msgs, sentAt, nil
}

// splitArray appends the elements of the array at b[i] == '[' to msgs and
// returns the index after it.
func splitArray(b []byte, i int, msgs [][]byte) ([][]byte, int, error) {
	i = jsonscan.SkipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return msgs, i + 1, nil
	}
	for {
		end, ok := jsonscan.Skip(b, i)
		if !ok {
			return nil, 0, errSyntax
		}
		msgs = append(msgs, b[i:end])
		i = jsonscan.SkipWS(b, end)
		switch {
		case i < len(b) && b[i] == ',':
			i = jsonscan.SkipWS(b, i+1)
		case i < len(b) && b[i] == ']':
			return msgs, i + 1, nil
		default:
			return nil, 0, errSyntax
		}
	}
}
