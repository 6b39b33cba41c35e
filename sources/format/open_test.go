package format

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/backfillhq/backfill/internal/testkit/arrowtest"
	"github.com/backfillhq/backfill/pipeline"
)

// A panic while opening (a bug in a decoder, say) comes back as a
// *pipeline.PanicError, and what in.Open returned is closed: a long run
// over many files must not keep one handle per split that panicked.
func TestOpenPanicClosesTheInput(t *testing.T) {
	for _, name := range []string{"a.csv", "a.csv.gz", "a.tsv", "a.ndjson"} {
		t.Run(name, func(t *testing.T) {
			mem := arrowtest.CheckedMem(t)
			body := &panickyBody{}
			in := Input{Name: name, Open: func(context.Context) (io.ReadCloser, error) { return body, nil }}
			rr, err := Open(context.Background(), in, name, Options{}, pipeline.ReadOptions{}, mem)
			var pe *pipeline.PanicError
			if !errors.As(err, &pe) || pe.Where != "opening" || !strings.Contains(err.Error(), "decoder bug") || rr != nil {
				t.Fatalf("reader %v, error %v", rr, err)
			}
			if body.closed != 1 {
				t.Fatalf("input closed %d times", body.closed)
			}
		})
	}
}

// panickyBody panics on its first Read.
type panickyBody struct{ closed int }

func (b *panickyBody) Read([]byte) (int, error) { panic("decoder bug") }
func (b *panickyBody) Close() error             { b.closed++; return nil }
