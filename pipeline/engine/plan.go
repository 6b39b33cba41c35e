package engine

import (
	"context"
	"fmt"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/state"
)

// plan is what a run will read: the splits of its shard not done yet,
// each from its acknowledged offset, and what is known of their size.
type plan struct {
	todo              []work
	selected, skipped []pipeline.Split
	listed            int               // splits the source listed, every shard's
	versions          map[string]string // split -> the version it is read at
	changed           map[string]bool   // saved progress counted other content
	rowsSkipped       int64             // acknowledged by earlier runs

	total          int64 // rows to read, or -1 when a split does not say
	totalBytes     int64 // bytes to read, or -1, for an estimate from rows per byte
	offsets        int64 // rows skipped inside the splits of totalBytes
	sourceEstimate int64 // the source's own estimate of rows to read, or 0
}

// work is one split to read, from offset.
type work struct {
	split  pipeline.Split
	offset int64
}

// makePlan lists the source's splits and keeps those of this shard that
// cp does not say are done. A split whose content changed since its
// progress was saved is read again from its start: the saved offset
// counted other content.
func (r *Run) makePlan(ctx context.Context) error {
	src := r.built.Source
	if cs, ok := src.(pipeline.ColumnSetter); ok {
		cs.SetColumns(r.built.Columns)
	}
	var splits []pipeline.Split
	err := pipeline.Safely("listing splits", func() (err error) {
		splits, err = src.Splits(ctx)
		return err
	})
	if err != nil {
		logPanicStack(r.log, err)
		return fmt.Errorf("listing splits: %w", err)
	}
	p := &r.plan
	*p = plan{listed: len(splits), versions: map[string]string{}, changed: map[string]bool{}}
	for _, s := range splits {
		if r.opts.Shards > 1 && pipeline.ShardOf(s.ID, r.opts.Shards) != r.opts.Shard {
			continue
		}
		p.versions[s.ID] = s.Version
		st := r.sinceChanged(s)
		p.rowsSkipped += st.Offset
		if st.Done {
			p.skipped = append(p.skipped, s)
			continue
		}
		p.selected = append(p.selected, s)
		p.todo = append(p.todo, work{s, st.Offset})
		p.count(s, st.Offset)
	}
	if re, ok := src.(pipeline.RowEstimator); ok && p.total < 0 && len(splits) > 0 {
		// The source's own estimate, for this shard's share of the
		// splits and without the rows earlier runs delivered.
		if est := re.EstimatedRows(); est > 0 {
			share := float64(len(p.selected)+len(p.skipped)) / float64(len(splits))
			p.sourceEstimate = max(int64(float64(est)*share)-p.rowsSkipped, 0)
		}
	}
	if r.opts.Limit > 0 && (p.total < 0 || p.total > r.opts.Limit) {
		p.total = r.opts.Limit
	}
	if r.opts.OnSplits != nil {
		r.opts.OnSplits(p.selected, p.skipped)
	}
	return nil
}

// sinceChanged is s's saved progress, or none when s's content changed
// since it was saved.
func (r *Run) sinceChanged(s pipeline.Split) state.SplitState {
	st := r.cp.Splits[s.ID]
	if st.Version == "" || s.Version == "" || st.Version == s.Version {
		return st
	}
	// Rows at the positions already sent get the same derived ids, so
	// Segment drops them; appended rows, or a file fetched whole after a
	// cut-short copy, are read at last.
	r.log.Warn("input changed since an earlier run read it; reading it again from the start",
		"split", s.ID, "was", st.Version, "now", s.Version, "rows_acknowledged_before", st.Offset)
	r.cp.Splits[s.ID] = state.SplitState{} // the saved progress must not come back when checkpoints merge
	r.plan.changed[s.ID] = true
	return state.SplitState{}
}

// count adds a split read from offset to what the plan knows of sizes.
func (p *plan) count(s pipeline.Split, offset int64) {
	if p.total >= 0 && s.Rows >= 0 {
		p.total += s.Rows - offset
	} else {
		p.total = -1
	}
	if p.totalBytes >= 0 && s.Bytes > 0 {
		p.totalBytes += s.Bytes
		p.offsets += offset
	} else {
		p.totalBytes = -1
	}
}

// changedList lists the splits read again because their input changed.
func (p *plan) changedList() []string {
	var out []string
	for _, s := range p.selected {
		if p.changed[s.ID] {
			out = append(out, s.ID)
		}
	}
	return out
}
