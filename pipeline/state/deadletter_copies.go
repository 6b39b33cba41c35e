package state

import (
	"context"
	"fmt"
	"io"
)

// DeadLetterStore is implemented by checkpoint stores kept off the machine
// (S3). Before each checkpoint that counts rejected rows as handled, the
// run copies the dead letters written since the last one there as a
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

// DeadLetterCopier stores the dead letters written since the last copy as
// the checkpoint's next part (Before), and moves the copy's start past them
// once the checkpoint naming the part is saved (After).
type DeadLetterCopier struct {
	store DeadLetterStore
	file  *DeadLetterFile
	from  int64 // the file's offset up to which a saved checkpoint covers the copies
}

// NewDeadLetterCopier copies what file holds past its current size: what
// it held before was copied by the runs that wrote it (or belongs to rows
// not yet checkpointed, which are not rejected again).
func NewDeadLetterCopier(store DeadLetterStore, file *DeadLetterFile) (*DeadLetterCopier, error) {
	from, err := file.Size()
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return &DeadLetterCopier{store: store, file: file, from: from}, nil
}

// Before runs before cp is saved: it stores the new dead letters as part
// cp.DeadLetterParts+1 and counts it in cp. It returns what After needs.
func (c *DeadLetterCopier) Before(ctx context.Context, cp *Checkpoint) (end int64, err error) {
	end, err = c.file.Size()
	if err != nil || end <= c.from {
		return c.from, err
	}
	part := cp.DeadLetterParts + 1
	run := RunID(cp)
	if err := c.store.PutDeadLetters(ctx, run, part, c.file.Section(c.from, end-c.from), end-c.from); err != nil {
		return c.from, fmt.Errorf("copying dead letters to %s: %w", c.store.DeadLetterLocation(run), err)
	}
	cp.DeadLetterParts = part
	return end, nil
}

// After runs once cp is saved (saved false: it was not, and the part will
// be written again, whole, under the same number).
func (c *DeadLetterCopier) After(cp *Checkpoint, end int64, saved bool) {
	if saved {
		c.from = end
	} else if end > c.from {
		cp.DeadLetterParts--
	}
}
