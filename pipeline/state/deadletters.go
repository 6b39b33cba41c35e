package state

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/backfillhq/backfill/internal/lines"
	"github.com/backfillhq/backfill/pipeline"
)

// DeadLetterLine is one line of the dead-letter file.
type DeadLetterLine struct {
	Time    time.Time       `json:"time"`
	Split   string          `json:"split"`
	Row     int64           `json:"row"`
	Stage   string          `json:"stage"`
	Column  string          `json:"column,omitempty"`
	Reason  string          `json:"reason"`
	Raw     string          `json:"raw,omitempty"`
	Values  json.RawMessage `json:"values,omitempty"`
	Message json.RawMessage `json:"message,omitempty"`
	Status  int             `json:"status,omitempty"`
	Body    string          `json:"body,omitempty"`
}

// DeadLetters keeps the rows a run rejects, each once.
type DeadLetters interface {
	// Write keeps r, a row of split. It returns false when the row is
	// already kept from an earlier run of the checkpoint (a failing run
	// retried, a resume): a row rejected at one stage is kept once.
	Write(split string, r pipeline.Reject) (bool, error)
	// Sync makes what is written durable; a checkpoint that counts the
	// rows as handled is saved only after it.
	Sync() error
	Close() error
	// Path names the file ("" keeps nothing).
	Path() string
}

// DeadLetterFile writes rejects as NDJSON.
type DeadLetterFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	kept keySet // rows already in the file that a resumed run may reject again
}

// OpenDeadLetters opens the dead-letter file at path, truncate to start it
// over (a first or --fresh run). Otherwise the rows already in it that
// pending says may be read again are remembered, so that they are not
// written twice; pending is nil for none.
func OpenDeadLetters(path string, truncate bool, pending func(split string, row int64) bool) (*DeadLetterFile, error) {
	f, err := lines.OpenAppend(path, truncate)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	d := &DeadLetterFile{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10), kept: newKeySet()}
	if !truncate && pending != nil {
		_, err = f.Seek(0, io.SeekStart)
		if err == nil {
			err = d.Remember(f, pending)
		}
		if _, serr := f.Seek(0, io.SeekEnd); err == nil {
			err = serr
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("dead-letter file %s: %w", path, err)
		}
	}
	return d, nil
}

// Remember reads dead letters written by earlier runs (this file, or its
// copies in a remote store when the file was lost with its machine) and
// keeps the keys of those pending says may be rejected again.
func (d *DeadLetterFile) Remember(r io.Reader, pending func(split string, row int64) bool) error {
	return ScanDeadLetters(d.path, r, func(l *DeadLetterLine) {
		if l.Row >= 0 && pending(l.Split, l.Row) {
			d.mu.Lock()
			d.kept.add(l.Split, l.Row, l.Stage)
			d.mu.Unlock()
		}
	})
}

// ScanDeadLetters calls fn with each line of a dead-letter file; name
// names it in errors. A line that is not a dead letter (a cut line a kill
// left, or not a dead-letter file at all) comes as one of stage "?", with
// no split, a negative row and the reason.
func ScanDeadLetters(name string, r io.Reader, fn func(*DeadLetterLine)) error {
	lr := lines.NewReader(name, r, 64<<10)
	for {
		b, err := lr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(b) == 0 {
			continue
		}
		var l DeadLetterLine
		if err := json.Unmarshal(b, &l); err != nil {
			l = DeadLetterLine{Stage: "?", Row: -lr.Line(), Reason: fmt.Sprintf("line %d is not a dead letter: %v", lr.Line(), err)}
		}
		fn(&l)
	}
}

func (d *DeadLetterFile) Path() string { return d.path }

func (d *DeadLetterFile) Write(split string, r pipeline.Reject) (bool, error) {
	stage := r.Stage
	d.mu.Lock()
	seen := d.kept.has(split, r.Row, stage)
	d.mu.Unlock()
	if seen {
		return false, nil
	}
	data, err := json.Marshal(NewDeadLetterLine(split, r))
	if err != nil {
		return false, fmt.Errorf("dead-letter file: %w", err)
	}
	d.mu.Lock()
	d.w.Write(data)
	err = d.w.WriteByte('\n')
	d.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("writing dead-letter file %s: %w", d.path, err)
	}
	return true, nil
}

// NewDeadLetterLine is the line r of split becomes.
func NewDeadLetterLine(split string, r pipeline.Reject) DeadLetterLine {
	l := DeadLetterLine{Time: time.Now().UTC(), Split: split, Row: r.Row, Stage: r.Stage, Column: r.Column,
		Reason: r.Reason, Raw: r.Raw, Status: r.Status, Body: r.Body}
	if len(r.Values) > 0 && json.Valid(r.Values) {
		l.Values = r.Values
	}
	if len(r.Message) > 0 && json.Valid(r.Message) {
		l.Message = r.Message
	} else if len(r.Message) > 0 && l.Raw == "" {
		l.Raw = string(r.Message)
	}
	return l
}

// Sync makes every dead letter written so far durable.
func (d *DeadLetterFile) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.w.Flush(); err != nil {
		return err
	}
	return d.f.Sync()
}

// Size is how many bytes of dead letters the file holds (call after Sync).
func (d *DeadLetterFile) Size() (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Section reads n bytes of the file from off.
func (d *DeadLetterFile) Section(off, n int64) *io.SectionReader {
	return io.NewSectionReader(d.f, off, n)
}

func (d *DeadLetterFile) Close() error {
	err := d.Sync()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// DiscardDeadLetters keeps nothing (a preview): every row is new.
type DiscardDeadLetters struct{}

func (DiscardDeadLetters) Write(string, pipeline.Reject) (bool, error) { return true, nil }
func (DiscardDeadLetters) Sync() error                                 { return nil }
func (DiscardDeadLetters) Close() error                                { return nil }
func (DiscardDeadLetters) Path() string                                { return "" }

// keySet holds (split, row, stage) keys as 64-bit hashes: 8 bytes a row
// plus the map's own, whatever the split names' length.
type keySet struct {
	seed maphash.Seed
	m    map[uint64]struct{}
}

func newKeySet() keySet { return keySet{seed: maphash.MakeSeed(), m: map[uint64]struct{}{}} }

func (k keySet) hash(split string, row int64, stage string) uint64 {
	var h maphash.Hash
	h.SetSeed(k.seed)
	h.WriteString(split)
	h.WriteByte(0)
	var b [20]byte
	h.Write(strconv.AppendInt(b[:0], row, 10))
	h.WriteByte(0)
	h.WriteString(stage)
	return h.Sum64()
}

func (k keySet) add(split string, row int64, stage string) {
	k.m[k.hash(split, row, stage)] = struct{}{}
}

func (k keySet) has(split string, row int64, stage string) bool {
	if len(k.m) == 0 {
		return false
	}
	_, ok := k.m[k.hash(split, row, stage)]
	return ok
}

// RowCounter counts distinct dead-letter rows: a file written by an older
// version may hold one row more than once.
type RowCounter struct{ keys keySet }

// NewRowCounter returns an empty counter.
func NewRowCounter() *RowCounter { return &RowCounter{keys: newKeySet()} }

// Add counts l, and says whether its row was new.
func (c *RowCounter) Add(l *DeadLetterLine) bool {
	if c.keys.has(l.Split, l.Row, l.Stage) {
		return false
	}
	c.keys.add(l.Split, l.Row, l.Stage)
	return true
}
