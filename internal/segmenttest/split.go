package segmenttest

import (
	"errors"
	"strconv"

	"github.com/backfillhq/backfill/internal/jsonscan"
)

var errSyntax = errors.New("malformed JSON")

// splitBatch reads a {"batch":[...],"sentAt":"..."} body and returns each
// message's raw JSON. It only finds value boundaries (messages are decoded,
// and so validated, separately), which keeps a benchmark's receiver cheap.
func splitBatch(b []byte, msgs [][]byte) ([][]byte, string, error) {
	var top [4]jsonscan.Member
	members, isObject, err := jsonscan.Members(b, top[:0])
	if err != nil || !isObject {
		return nil, "", errSyntax
	}
	var sentAt string
	for _, m := range members {
		switch {
		case m.KeyIs("batch") && b[m.Val] == '[':
			i := jsonscan.SkipWS(b, m.Val+1)
			if b[i] == ']' {
				continue
			}
			for {
				end, ok := jsonscan.Skip(b, i)
				if !ok {
					return nil, "", errSyntax
				}
				msgs = append(msgs, b[i:end])
				i = jsonscan.SkipWS(b, end)
				if i < m.End && b[i] == ',' {
					i = jsonscan.SkipWS(b, i+1)
					continue
				}
				if i == m.End-1 && b[i] == ']' {
					break
				}
				return nil, "", errSyntax
			}
		case m.KeyIs("sentAt"):
			if s, err := strconv.Unquote(string(b[m.Val:m.End])); err == nil {
				sentAt = s
			}
		}
	}
	return msgs, sentAt, nil
}
