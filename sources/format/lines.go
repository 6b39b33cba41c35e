package format

import (
	"errors"
	"fmt"

	"github.com/backfillhq/backfill/internal/lines"
	"github.com/backfillhq/backfill/pipeline"
)

// tooLong is err as a line over the limit, or nil.
func tooLong(err error) *lines.TooLongError {
	var tl *lines.TooLongError
	if errors.As(err, &tl) {
		return tl
	}
	return nil
}

// tooLongReject is the reject of a line (what: "line") or CSV record
// ("record") over the limit: its file, line, size, and its first bytes as
// its raw text.
func tooLongReject(row int64, tl *lines.TooLongError, what string) pipeline.Reject {
	return pipeline.Reject{Row: row, Stage: "source", Raw: string(tl.Head),
		Reason: fmt.Sprintf("%s line %d: %s", tl.Name, tl.Line, tooLongReason(what, tl.Size, tl.Max, len(tl.Head)))}
}

// tooLongReason says what was read past: "the line is 157286400 bytes,
// ...".
func tooLongReason(what string, size int64, max, head int) string {
	return fmt.Sprintf("the %s is %d bytes, over max_line_bytes (%d): skipped; raw holds its first %d bytes", what, size, max, head)
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
