package pipeline

import (
	"context"
	"fmt"
	"io"
)

// DeadLetterStore is implemented by checkpoint stores kept off the machine
// (S3). Before each checkpoint that counts rejected rows as handled, the
// runner copies the dead letters written since the last one there as a
// numbered part, so they outlive the machine (a Kubernetes pod whose disk
// goes with it) like the progress they account for. A part whose
// checkpoint was not saved is written again whole under the same number,
// so parts never overlap.
type DeadLetterStore interface {
	// PutDeadLetters stores part (from 1) of a run's dead letters: size
	// bytes of NDJSON read from r.
	PutDeadLetters(ctx context.Context, run string, part int, r io.ReadSeeker, size int64) error
	// ReadDeadLetters calls fn with parts 1..parts of a run, in order.
	ReadDeadLetters(ctx context.Context, run string, parts int, fn func(io.Reader) error) error
	// DeadLetterLocation names where a run's parts are.
	DeadLetterLocation(run string) string
}

// RunID names a run (a first or --fresh run and its resumptions) in a
// store: when its checkpoint was started.
func RunID(cp *Checkpoint) string { return cp.StartedAt.UTC().Format("20060102T150405.000Z") }

// deadLetterCopier stores the dead letters written since the last copy as
// the checkpoint's next part (before), and moves the copy's start past them
// once the checkpoint naming the part is saved (after).
type deadLetterCopier struct {
	store DeadLetterStore
	file  *deadLetterFile
	from  int64 // the file's offset up to which a saved checkpoint covers the copies
}

// before runs before cp is saved: it stores the new dead letters as part
// cp.DeadLetterParts+1 and counts it in cp. It returns what after needs.
func (c *deadLetterCopier) before(cp *Checkpoint) (end int64, err error) {
	end, err = c.file.size()
	if err != nil || end <= c.from {
		return c.from, err
	}
	part := cp.DeadLetterParts + 1
	r := io.NewSectionReader(c.file.f, c.from, end-c.from)
	run := RunID(cp)
	if err := c.store.PutDeadLetters(context.Background(), run, part, r, end-c.from); err != nil {
		return c.from, fmt.Errorf("copying dead letters to %s: %w", c.store.DeadLetterLocation(run), err)
	}
	cp.DeadLetterParts = part
	return end, nil
}

// after runs once cp is saved (saved false: it was not, and the part will
// be written again, whole, under the same number).
func (c *deadLetterCopier) after(cp *Checkpoint, end int64, saved bool) {
	if saved {
		c.from = end
	} else if end > c.from {
		cp.DeadLetterParts--
	}
}
