package engine

import (
	"time"
)

// Rows is the account of a run's rows: every row read is delivered,
// filtered, rejected (in the dead-letter file, once) or unacknowledged
// (the run failed or stopped before the sink said what became of it).
// Read = Delivered + Filtered + Rejected + Unacked, and none is negative.
type Rows struct {
	Read      int64 `json:"read"`
	Delivered int64 `json:"delivered"`
	Filtered  int64 `json:"filtered"`
	Rejected  int64 `json:"rejected"`
	Unacked   int64 `json:"unacknowledged"`
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed time.Duration
	Rows
	TotalRows int64 // rows to read this run, or -1 when unknown
	// Estimated says TotalRows is not known but estimated: the rows per
	// byte of the splits finished so far times the bytes of all of them,
	// or the source's own estimate (RowEstimator).
	Estimated bool
	// SplitsDone counts the splits whose every row this run read is
	// acknowledged.
	SplitsDone int
	SplitsAll  int
	Final      bool
	// Sink is the sink's own counters (StatsSink): requests, retries,
	// responses by status, ...; nil when it keeps none.
	Sink map[string]int64
	// CheckpointSaveFailures counts failed periodic saves; LastCheckpoint
	// is when a save last succeeded (zero before the first): what to alert
	// on when the state store is down.
	CheckpointSaveFailures int
	LastCheckpoint         time.Time
	// Sync is a sync pipeline's account so far; nil for other pipelines.
	Sync *SyncReport
}

// Report is a run's outcome, printed as a summary and written by --report.
type Report struct {
	Pipeline      string    `json:"pipeline"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	Seconds       float64   `json:"seconds"`
	Status        string    `json:"status"` // ok, failed, interrupted
	Error         string    `json:"error,omitempty"`
	Resumed       bool      `json:"resumed"`
	Splits        int       `json:"splits"`
	SplitsDone    int       `json:"splits_done"` // every row acknowledged by this run
	SplitsSkipped int       `json:"splits_skipped"`
	SplitsFailed  []string  `json:"splits_failed,omitempty"`
	SplitsChanged []string  `json:"splits_changed,omitempty"` // read again from the start: their input changed
	RowsRead      int64     `json:"rows_read"`
	RowsDelivered int64     `json:"rows_delivered"`
	Destination   string    `json:"destination,omitempty"` // where delivered rows went
	RowsRejected  int64     `json:"rows_rejected"`
	RowsFiltered  int64     `json:"rows_filtered"`
	RowsUnacked   int64     `json:"rows_unacked"`
	RowsSkipped   int64     `json:"rows_skipped"` // acknowledged by earlier runs
	RowsPerSecond float64   `json:"rows_per_second"`
	// RejectsByStage splits RowsRejected by stage ("source",
	// "transform:timestamp", "sink").
	RejectsByStage map[string]int64 `json:"rejects_by_stage,omitempty"`
	DeadLetters    string           `json:"dead_letter_file,omitempty"`
	DeadLetterCopy string           `json:"dead_letter_copy,omitempty"` // where a remote state store keeps them too
	Checkpoint     string           `json:"checkpoint,omitempty"`
	// Ledger is the folder of this run's delivery ledger parts, and
	// LedgerRows the rows this run wrote there.
	Ledger     string           `json:"ledger,omitempty"`
	LedgerRows int64            `json:"ledger_rows,omitempty"`
	Sink       map[string]int64 `json:"sink,omitempty"`

	// Sync is what a `sync` pipeline's run found against its snapshot;
	// nil for other pipelines.
	Sync *SyncReport `json:"sync,omitempty"`

	// CheckpointSaveFailures counts saves that failed and were retried
	// (periodic ones, and the final one before its last try).
	CheckpointSaveFailures int `json:"checkpoint_save_failures,omitempty"`
}

// Rows is the report's account of rows.
func (r *Report) Rows() Rows {
	return Rows{Read: r.RowsRead, Delivered: r.RowsDelivered, Filtered: r.RowsFiltered, Rejected: r.RowsRejected, Unacked: r.RowsUnacked}
}

func (r *Report) setRows(rows Rows) {
	r.RowsRead, r.RowsDelivered, r.RowsFiltered, r.RowsRejected, r.RowsUnacked =
		rows.Read, rows.Delivered, rows.Filtered, rows.Rejected, rows.Unacked
}
