// Package deadletterstest keeps rejected rows in memory, so sink tests can
// assert on each reject's reason, status and body.
package deadletterstest

import (
	"context"
	"fmt"
	"sync"

	"github.com/backfillhq/backfill/pipeline"
)

// Recorder is a pipeline.DeadLetters that records every row it is given.
type Recorder struct {
	Max int   // > 0: refuse rows past this many, as max_rejects does
	Err error // non-nil: refuse every row with it

	mu   sync.Mutex
	rows []pipeline.Reject
}

// Write records r, or refuses it as Max or Err say.
func (d *Recorder) Write(_ context.Context, _ string, r pipeline.Reject) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Err != nil {
		return d.Err
	}
	d.rows = append(d.rows, r)
	if d.Max > 0 && len(d.rows) > d.Max {
		return fmt.Errorf("too many rejects: %d", len(d.rows))
	}
	return nil
}

// All returns the rows recorded so far.
func (d *Recorder) All() []pipeline.Reject {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]pipeline.Reject(nil), d.rows...)
}

// Count is how many rows were recorded.
func (d *Recorder) Count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.rows)
}
