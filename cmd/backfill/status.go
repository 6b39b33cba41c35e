package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/state"
)

// shardStatus is what the saved state says about one shard of a pipeline.
type shardStatus struct {
	Shard      string         `json:"shard,omitempty"` // "i/N" when sharded
	Checkpoint string         `json:"checkpoint"`
	Saved      bool           `json:"saved"`             // false: no progress saved yet
	RunningBy  string         `json:"running,omitempty"` // the run holding the state now: pid, host, start
	StartedAt  *time.Time     `json:"started_at,omitempty"`
	UpdatedAt  *time.Time     `json:"updated_at,omitempty"`
	SplitsDone int            `json:"splits_done"`
	InProgress []splitStatus  `json:"in_progress,omitempty"`
	RowsAcked  int64          `json:"rows_acknowledged"` // delivered, dead-lettered or filtered
	Rows       state.Fates    `json:"rows"`              // what became of the acknowledged rows
	Dead       deadLetterInfo `json:"dead_letters"`
	// Sync is what the sync pass of the checkpoint found; nil without
	// `sync:`.
	Sync *state.SyncPass `json:"sync,omitempty"`
}

type splitStatus struct {
	Split  string `json:"split"`
	Offset int64  `json:"rows_acknowledged"`
}

// deadLetterInfo sums up a dead-letter file: its rows grouped by where
// they were rejected and why.
type deadLetterInfo struct {
	Path   string            `json:"path"`
	Rows   int64             `json:"rows"`
	Groups []deadLetterGroup `json:"groups,omitempty"`
}

type deadLetterGroup struct {
	Stage   string `json:"stage"`
	Column  string `json:"column,omitempty"`
	Status  int    `json:"status,omitempty"` // the HTTP status of a sink rejection
	Rows    int64  `json:"rows"`
	Example string `json:"example"` // the first row's reason
}

func newStatusCmd(stdout io.Writer) *cobra.Command {
	var (
		shard  string
		shards int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status PIPELINE.yaml",
		Short: "Show a pipeline's saved progress and dead letters; read nothing from the source",
		Long: `Show what a pipeline's saved state holds: splits done and in progress,
rows acknowledged, and the dead-letter file's rows grouped by stage, column
and reason. It reads only the state (local or S3) and the dead-letter file,
never the source, so it is safe to run next to a running job.
With --shards N it shows every shard of a sharded run and their sum; a local
state directory holding only shard checkpoints shows them all unasked.`,
		Args: usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigOffline(args[0])
			if err != nil {
				return err
			}
			var which []int
			n := 1
			switch {
			case shard != "":
				i, sn, err := parseShard(shard, 0)
				if err != nil {
					return &exitError{exitConfig, err}
				}
				which, n = []int{i}, sn
			case shards > 1:
				n = shards
				for i := 0; i < n; i++ {
					which = append(which, i)
				}
			default:
				which = []int{0}
				if n = detectShards(cfg); n > 1 {
					which = nil
					for i := 0; i < n; i++ {
						which = append(which, i)
					}
				}
			}
			var all []shardStatus
			for _, i := range which {
				st, err := readShardStatus(cmd.Context(), cfg, i, n)
				if err != nil {
					return &exitError{exitFailed, err}
				}
				all = append(all, st)
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Pipeline string        `json:"pipeline"`
					Shards   []shardStatus `json:"shards"`
				}{cfg.Name, all})
			}
			writeStatus(stdout, cfg.Name, args[0], all, time.Now())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&shard, "shard", "", "show shard i of N (i/N)")
	f.IntVar(&shards, "shards", 0, "show every shard of a run sharded N ways")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func readShardStatus(ctx context.Context, cfg *config.Pipeline, shard, shards int) (shardStatus, error) {
	var st shardStatus
	if shards > 1 {
		st.Shard = fmt.Sprintf("%d/%d", shard, shards)
	}
	store, err := state.Open(ctx, cfg.State, cfg.Name, shard, shards)
	if err != nil {
		return st, err
	}
	paths := state.Paths{State: cfg.State, Name: cfg.Name, DeadLetter: cfg.DeadLetter, Shard: shard, Shards: shards}
	st.Checkpoint = store.Location()
	// With remote state, only a run on this machine shows here.
	st.RunningBy, _ = state.LockHolder(paths.Lock())
	cp, err := store.Load(ctx)
	if err != nil {
		return st, fmt.Errorf("reading the checkpoint: %w", err)
	}
	if cp != nil {
		st.Saved = true
		st.StartedAt, st.UpdatedAt = &cp.StartedAt, &cp.UpdatedAt
		st.Rows = cp.Rows
		st.Sync = cp.Sync
		for id, sp := range cp.Splits {
			st.RowsAcked += sp.Offset
			if sp.Done {
				st.SplitsDone++
			} else {
				st.InProgress = append(st.InProgress, splitStatus{id, sp.Offset})
			}
		}
		sort.Slice(st.InProgress, func(i, j int) bool { return st.InProgress[i].Split < st.InProgress[j].Split })
	}
	// A remote store's copy outlives the machine that wrote the file, so
	// it is the one to read when there is one.
	if ds, ok := store.(state.DeadLetterStore); ok && cp != nil && cp.DeadLetterParts > 0 {
		run := state.RunID(cp)
		where := ds.DeadLetterLocation(run)
		var t tally
		err = ds.ReadDeadLetters(ctx, run, cp.DeadLetterParts, func(r io.Reader) error { return t.add(r, where) })
		st.Dead = t.info(where)
		return st, err
	}
	st.Dead, err = summarizeDeadLetters(paths.DeadLetters())
	return st, err
}

// detectShards finds a sharded run's checkpoints in a local state
// directory that has no unsharded one: N from checkpoint-shard-I-of-N.json,
// or 1.
func detectShards(cfg *config.Pipeline) int {
	if state.Remote(cfg.State) {
		return 1
	}
	dir := filepath.Join(cfg.State, cfg.Name)
	if _, err := os.Stat(filepath.Join(dir, state.CheckpointFile(0, 1))); err == nil {
		return 1
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "checkpoint-shard-*-of-*.json"))
	n := 1
	for _, m := range matches {
		var i, of int
		if _, err := fmt.Sscanf(filepath.Base(m), "checkpoint-shard-%d-of-%d.json", &i, &of); err == nil && of > n {
			n = of
		}
	}
	return n
}

// summarizeDeadLetters streams a dead-letter file and groups its rows by
// stage, column and HTTP status, keeping the first reason of each group.
// A missing file is no dead letters.
func summarizeDeadLetters(path string) (deadLetterInfo, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return deadLetterInfo{Path: path}, nil
	}
	if err != nil {
		return deadLetterInfo{Path: path}, err
	}
	defer f.Close()
	var t tally
	err = t.add(f, path)
	return t.info(path), err
}

// tally groups dead letters read from one or more parts, counting rows:
// a file written by an older version may hold a row more than once.
type tally struct {
	groups map[deadLetterKey]*deadLetterGroup
	rows   int64
	seen   *state.RowCounter
}

type deadLetterKey struct {
	stage, column string
	status        int
}

// add tallies the dead letters r holds (name names it in errors).
func (t *tally) add(r io.Reader, name string) error {
	if t.groups == nil {
		t.groups, t.seen = map[deadLetterKey]*deadLetterGroup{}, state.NewRowCounter()
	}
	return state.ScanDeadLetters(name, r, func(dl *state.DeadLetterLine) {
		if !t.seen.Add(dl) {
			return
		}
		k := deadLetterKey{dl.Stage, dl.Column, dl.Status}
		g := t.groups[k]
		if g == nil {
			g = &deadLetterGroup{Stage: dl.Stage, Column: dl.Column, Status: dl.Status, Example: dl.Reason}
			t.groups[k] = g
		}
		g.Rows++
		t.rows++
	})
}

// info is the tally, its largest groups first.
func (t *tally) info(path string) deadLetterInfo {
	info := deadLetterInfo{Path: path, Rows: t.rows}
	for _, g := range t.groups {
		info.Groups = append(info.Groups, *g)
	}
	sort.Slice(info.Groups, func(i, j int) bool {
		a, b := info.Groups[i], info.Groups[j]
		if a.Rows != b.Rows {
			return a.Rows > b.Rows
		}
		return a.Stage+"\x00"+a.Column < b.Stage+"\x00"+b.Column
	})
	return info
}

// maxGroups is how many kinds of dead letters the text view lists.
const maxGroups = 10

func writeStatus(w io.Writer, name, file string, all []shardStatus, now time.Time) {
	var total shardStatus
	saved := 0
	for _, st := range all {
		total.SplitsDone += st.SplitsDone
		total.RowsAcked += st.RowsAcked
		total.Dead.Rows += st.Dead.Rows
		if st.Saved {
			saved++
		}
	}
	if saved == 0 && total.Dead.Rows == 0 {
		fmt.Fprintf(w, "%s: no saved progress; `backfill run %s` starts from the beginning\n", name, file)
		for _, st := range all {
			fmt.Fprintf(w, "  %s\n", st.Checkpoint)
			if st.RunningBy != "" {
				fmt.Fprintf(w, "  running now: %s (nothing saved yet)\n", st.RunningBy)
			}
		}
		return
	}
	inProgress := 0
	for _, st := range all {
		inProgress += len(st.InProgress)
	}
	var fates state.Fates
	for _, st := range all {
		fates = fates.Add(st.Rows)
	}
	fmt.Fprintf(w, "%s: %s done, %d in progress, %s acknowledged, %s\n",
		name, counted(int64(total.SplitsDone), "split"), inProgress, counted(total.RowsAcked, "row"), counted(int64(total.Dead.Rows), "dead letter"))
	if fates.Total() > 0 {
		fmt.Fprintf(w, "  rows          %d delivered, %d filtered, %d rejected (acknowledged since the run started)\n",
			fates.Delivered, fates.Filtered, fates.Rejected)
	}
	for _, st := range all {
		if st.Shard != "" {
			fmt.Fprintf(w, "\nshard %s: %s done, %d in progress, %s acknowledged\n",
				st.Shard, counted(int64(st.SplitsDone), "split"), len(st.InProgress), counted(st.RowsAcked, "row"))
		}
		if st.RunningBy != "" {
			fmt.Fprintf(w, "  running now   %s\n", st.RunningBy)
		}
		fmt.Fprintf(w, "  checkpoint    %s", st.Checkpoint)
		if !st.Saved {
			fmt.Fprint(w, " (none yet)")
		}
		fmt.Fprintln(w)
		if st.Saved {
			fmt.Fprintf(w, "  started       %s\n", ago(*st.StartedAt, now))
			fmt.Fprintf(w, "  last saved    %s\n", ago(*st.UpdatedAt, now))
		}
		for _, sp := range st.InProgress {
			fmt.Fprintf(w, "  in progress   %s: %d rows acknowledged\n", sp.Split, sp.Offset)
		}
		if s := st.Sync; s != nil {
			pass := "in progress"
			if s.Complete {
				pass = "complete (the next run starts a new pass)"
			}
			fmt.Fprintf(w, "  sync          %d added, %d changed, %d unchanged, %d removed; the pass is %s\n",
				s.Added, s.Changed, s.Unchanged, s.Removed, pass)
		}
		fmt.Fprintf(w, "  dead letters  %d in %s\n", st.Dead.Rows, st.Dead.Path)
		for i, g := range st.Dead.Groups {
			if i == maxGroups {
				fmt.Fprintf(w, "    ... %d more kinds (--json lists them all)\n", len(st.Dead.Groups)-maxGroups)
				break
			}
			where := g.Stage
			if g.Column != "" {
				where += " " + g.Column
			}
			if g.Status != 0 {
				where += fmt.Sprintf(" HTTP %d", g.Status)
			}
			fmt.Fprintf(w, "    %8d  %-28s e.g. %s\n", g.Rows, where, oneLine(g.Example, 160))
		}
	}
	fmt.Fprintf(w, "\n`backfill run %s` continues from here (splits done are skipped); --fresh starts over, sending the same messageIds again.\n", file)
}

func ago(t, now time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format("2006-01-02 15:04:05 MST"), now.Sub(t).Round(time.Second))
}

// oneLine shortens s to at most n bytes on one line.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}
