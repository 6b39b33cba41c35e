package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Checkpoint is a run's durable progress: per split, how many leading rows
// are acknowledged and whether the split is finished, plus the source's own
// small state. It only ever moves forward.
type Checkpoint struct {
	Version     int                   `json:"version"`
	Name        string                `json:"name"`
	StartedAt   time.Time             `json:"started_at"`
	UpdatedAt   time.Time             `json:"updated_at"`
	Splits      map[string]SplitState `json:"splits"`
	SourceState map[string]string     `json:"source_state,omitempty"`
	// Rows is what became of the acknowledged rows, summed over the runs
	// of this checkpoint (a first or --fresh run and its resumptions).
	Rows Fates `json:"rows"`
	// DeadLetterParts counts the parts of this run's dead letters a
	// DeadLetterStore holds.
	DeadLetterParts int `json:"dead_letter_parts,omitempty"`
	// Ledger is what the delivery ledger holds of the rows this
	// checkpoint counts; nil when the pipeline keeps none.
	Ledger *LedgerState `json:"ledger,omitempty"`
	// Sync is the pass of a `sync` pipeline this checkpoint counts; nil
	// for other pipelines.
	Sync *SyncPass `json:"sync,omitempty"`
}

// SyncPass is what a `sync` pipeline's pass (a first run and its
// resumptions) did, as its runs found rows against the snapshot.
type SyncPass struct {
	// Complete says the pass saw every split and its removed keys are
	// settled: the next run starts a new pass, reading everything again.
	Complete  bool  `json:"complete,omitempty"`
	Added     int64 `json:"added"`
	Changed   int64 `json:"changed"`
	Unchanged int64 `json:"unchanged"`
	Removed   int64 `json:"removed"`
	// Unkeyed counts rows rejected before the sync step: with any, the
	// pass cannot tell which keys were removed.
	Unkeyed int64 `json:"unkeyed,omitempty"`
	// Copy lists the snapshot's copy beside a remote checkpoint, as it
	// was when this checkpoint was saved.
	Copy *SnapshotCopy `json:"copy,omitempty"`
}

// LedgerState ties a checkpoint to its run's delivery ledger (Ledger).
// Parts 1..Parts were durable before the checkpoint was saved and hold
// every row it counts (and no row a resume reads again, but those of
// Ahead); a part numbered higher was written after it, its rows read
// again on resume, and a resumed run removes it before it writes its own.
type LedgerState struct {
	Parts int `json:"parts"`
	// Ahead holds, per split, the row ranges [start, end) past the
	// split's offset that are in the ledger already: batches
	// acknowledged out of order. A resumed run reads them again and
	// delivers them again, but does not record them twice.
	Ahead map[string][][2]int64 `json:"ahead,omitempty"`
}

// Fates counts acknowledged rows by what became of them.
type Fates struct {
	Delivered int64 `json:"delivered"`
	Filtered  int64 `json:"filtered"`
	Rejected  int64 `json:"rejected"`
}

// Add returns f plus o.
func (f Fates) Add(o Fates) Fates {
	return Fates{f.Delivered + o.Delivered, f.Filtered + o.Filtered, f.Rejected + o.Rejected}
}

// Total is the number of rows counted.
func (f Fates) Total() int64 { return f.Delivered + f.Filtered + f.Rejected }

// SplitState is one split's progress.
type SplitState struct {
	Offset  int64  `json:"offset"` // rows [0, Offset) are acknowledged
	Done    bool   `json:"done,omitempty"`
	Version string `json:"version,omitempty"` // the Split.Version the rows were read from
}

// NewCheckpoint starts the checkpoint of a first (or --fresh) run.
func NewCheckpoint(name string, now time.Time) *Checkpoint {
	return &Checkpoint{Version: 1, Name: name, StartedAt: now, Splits: map[string]SplitState{}, SourceState: map[string]string{}}
}

// Pending says whether row of split may be read again by a run resuming
// c: its split is not done and the row is not below its acknowledged
// offset. A row rejected there may already be in the dead-letter file.
func (c *Checkpoint) Pending(split string, row int64) bool {
	st := c.Splits[split]
	return !st.Done && row >= st.Offset
}

// RunID names a run (a first or --fresh run and its resumptions) in a
// store: when its checkpoint was started.
func RunID(cp *Checkpoint) string { return cp.StartedAt.UTC().Format("20060102T150405.000Z") }

// Encode and Decode are the one wire form of a checkpoint, shared by every
// store.
func Encode(c *Checkpoint) ([]byte, error) {
	head := *c
	head.Splits = nil
	hb, err := json.MarshalIndent(&head, "", " ")
	if err != nil {
		return nil, err
	}
	// The splits, often 100k+ of them, are written here, one per line:
	// through encoding/json (reflection, then indentation) a 100k-split
	// checkpoint took ~0.35 s and 17 MB at every save.
	ids := make([]string, 0, len(c.Splits))
	size := len(hb) + 16
	for id, st := range c.Splits {
		ids = append(ids, id)
		size += len(id) + len(st.Version) + 64
	}
	sort.Strings(ids)
	// head holds "splits": null exactly once: every other "splits" in it
	// sits inside a string, where its quotes are escaped.
	at := bytes.Index(hb, []byte(`"splits": null`))
	if at < 0 {
		return nil, errors.New("checkpoint: no splits field to fill")
	}
	sp := make([]byte, 0, size)
	sp = append(sp, hb[:at]...)
	sp = append(sp, `"splits": {`...)
	for i, id := range ids {
		st := c.Splits[id]
		if i > 0 {
			sp = append(sp, ',')
		}
		sp = append(sp, "\n  "...)
		sp = appendJSONString(sp, id)
		sp = append(sp, `: {"offset": `...)
		sp = strconv.AppendInt(sp, st.Offset, 10)
		if st.Done {
			sp = append(sp, `, "done": true`...)
		}
		if st.Version != "" {
			sp = append(sp, `, "version": `...)
			sp = appendJSONString(sp, st.Version)
		}
		sp = append(sp, '}')
	}
	if len(ids) > 0 {
		sp = append(sp, "\n "...)
	}
	sp = append(sp, '}')
	return append(sp, hb[at+len(`"splits": null`):]...), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s) // rare: escapes, or non-ASCII to check
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// Decode reads a checkpoint written by Encode; where names the store's
// location in errors.
func Decode(data []byte, where string) (*Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is corrupt (%v): move it away to start over, or run with --fresh", where, err)
	}
	if c.Splits == nil {
		c.Splits = map[string]SplitState{}
	}
	if c.SourceState == nil {
		c.SourceState = map[string]string{}
	}
	return &c, nil
}
