package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backfillhq/backfill/internal/lines"
)

// ErrTooManyRejects stops a run whose rejects exceed max_rejects.
var ErrTooManyRejects = errors.New("too many rejected rows")

// RowError is a rejected row that stops the run (on_error: stop).
type RowError struct {
	Split  string
	Reject Reject
}

func (e *RowError) Error() string {
	s := fmt.Sprintf("%s row %d", e.Split, e.Reject.Row)
	if e.Reject.Column != "" {
		s += fmt.Sprintf(", column %q", e.Reject.Column)
	}
	return fmt.Sprintf("%s: %s (on_error: stop; set on_error: dead_letter to set such rows aside)", s, e.Reject.Reason)
}

// deadLetterLine is one line of the dead-letter file.
type deadLetterLine struct {
	Time    time.Time       `json:"time"`
	Split   string          `json:"split"`
	Row     int64           `json:"row"`
	Stage   string          `json:"stage"`
	Column  string          `json:"column,omitempty"`
	Reason  string          `json:"reason"`
	Raw     string          `json:"raw,omitempty"`
	Message json.RawMessage `json:"message,omitempty"`
	Status  int             `json:"status,omitempty"`
	Body    string          `json:"body,omitempty"`
}

// deadLetterFile writes rejects as NDJSON, enforces on_error and
// max_rejects, and is synced before every checkpoint so that no row is
// acknowledged before its dead letter is durable.
type deadLetterFile struct {
	path    string
	stop    bool
	max     *MaxRejects
	read    func() int64 // rows read so far, for a percentage budget
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	count   atomic.Int64
	byStage sync.Map // stage -> *atomic.Int64
	hook    func(split string, r Reject)
}

func openDeadLetters(path string, truncate, stop bool, max *MaxRejects, read func() int64) (*deadLetterFile, error) {
	d := &deadLetterFile{path: path, stop: stop, max: max, read: read}
	if path == "" {
		return d, nil // preview: count only
	}
	f, err := lines.OpenAppend(path, truncate)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	d.f, d.w = f, bufio.NewWriterSize(f, 64<<10)
	return d, nil
}

func (d *deadLetterFile) Write(ctx context.Context, split string, r Reject) error {
	if d.hook != nil {
		d.hook(split, r)
	}
	if d.stop {
		return &RowError{Split: split, Reject: r}
	}
	line := deadLetterLine{Time: time.Now().UTC(), Split: split, Row: r.Row, Stage: r.Stage, Column: r.Column,
		Reason: r.Reason, Raw: r.Raw, Status: r.Status, Body: r.Body}
	if len(r.Message) > 0 && json.Valid(r.Message) {
		line.Message = r.Message
	} else if len(r.Message) > 0 && line.Raw == "" {
		line.Raw = string(r.Message)
	}
	data, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	d.mu.Lock()
	if d.w != nil {
		d.w.Write(data)
		err = d.w.WriteByte('\n')
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("writing dead-letter file %s: %w", d.path, err)
	}
	n := d.count.Add(1)
	stage := r.Stage
	if stage == "" {
		stage = "unknown"
	}
	c, _ := d.byStage.LoadOrStore(stage, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	if d.max != nil {
		over := (d.max.Count > 0 || d.max.Fraction == 0) && n > d.max.Count
		if d.max.Fraction > 0 {
			read := d.read()
			over = read >= 1000 && float64(n) > d.max.Fraction*float64(read)
		}
		if over {
			return fmt.Errorf("%w: %d rows rejected, over max_rejects (see %s)", ErrTooManyRejects, n, d.path)
		}
	}
	return nil
}

// Sync makes every dead letter written so far durable.
func (d *deadLetterFile) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w == nil {
		return nil
	}
	if err := d.w.Flush(); err != nil {
		return err
	}
	return d.f.Sync()
}

// size is how many bytes of dead letters the file holds (call after Sync).
func (d *deadLetterFile) size() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return 0, nil
	}
	st, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (d *deadLetterFile) Close() error {
	if d.f == nil {
		return nil
	}
	err := d.Sync()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (d *deadLetterFile) stages() map[string]int64 {
	out := map[string]int64{}
	d.byStage.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
