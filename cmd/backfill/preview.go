package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/backfillhq/backfill/internal/jsonscan"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
	"github.com/backfillhq/backfill/sinks/message"
)

func newPreviewCmd(stdout, stderr io.Writer) *cobra.Command {
	var rows int64
	var show int
	var all bool
	var horizonFlag, reportPath string
	cmd := &cobra.Command{
		Use:   "preview PIPELINE.yaml",
		Short: "Read and transform some rows and print the messages; send nothing",
		Long: `Read up to --rows rows (--all: every row) through the source and transforms,
encode them exactly as the sink would, print the first --show messages and
every rejected row's reason, and count what would be sent. Then show when
the events happened: rows per day, week or month and per event name, with
flags for rows at or after now, before --horizon, piled on one instant, and
days without events; which destinations named in integrations (or reached
through All: true) would drop rows for their age; and how long the run takes
at the sink's rate_limit. --report FILE.html writes the same as a page that
opens offline. No state is written, nothing is sent.`,
		Args: usage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigOffline(args[0])
			if err != nil {
				return err
			}
			now := time.Now()
			horizon, err := parseHorizon(horizonFlag, now)
			if err != nil {
				return &exitError{exitConfig, err}
			}
			limit := rows
			if all {
				limit = 0
			}
			cfg.Workers = 1
			if limit > 0 && int64(cfg.BatchRows) > limit {
				cfg.BatchRows = int(limit)
			}
			tl := newTimeline(now, horizon)
			var dests *destinationCounter
			if sendsToSegment(cfg) {
				dests = newDestinationCounter(now)
			}
			total := &previewTotal{}
			ps := &previewSink{w: stdout, show: show, tl: tl, dests: dests, total: total,
				enc: message.NewEncoder(message.Options{Pipeline: cfg.Name, Library: "backfill", Version: version})}
			var rejMu sync.Mutex
			var rejects int
			// A run that keeps nothing: no checkpoint, no dead letters.
			opts := engine.Options{Version: version, Fresh: true, Limit: limit, Sink: ps, OnSplits: total.onSplits,
				Store: state.Discard{}, DeadLetters: state.DiscardDeadLetters{},
				OnReject: func(split string, r pipeline.Reject) {
					rejMu.Lock()
					defer rejMu.Unlock()
					rejects++
					if rejects <= show {
						col := ""
						if r.Column != "" {
							col = fmt.Sprintf(" column %q", r.Column)
						}
						fmt.Fprintf(stdout, "# rejected: %s row %d%s (%s): %s\n", split, r.Row, col, r.Stage, r.Reason)
					}
				}}
			rep, err := engine.New(cfg, opts).Run(context.Background())
			if len(config.AsConfigErrors(err)) > 0 {
				return configExit(err)
			}
			summary := fmt.Sprintf("read %d rows: %d would be sent, %d rejected, %d filtered",
				rep.RowsRead, rep.RowsDelivered, rep.RowsRejected, rep.RowsFiltered)
			if s := rep.Sync; s != nil {
				summary += fmt.Sprintf("; against the sync snapshot: %d added, %d changed, %d unchanged", s.Added, s.Changed, s.Unchanged)
				if s.RemovedNotChecked == "" {
					summary += fmt.Sprintf(", %d removed", s.Removed)
				} else {
					summary += " (removed keys not looked for: " + s.RemovedNotChecked + "; --all reads every row)"
				}
			}
			fmt.Fprintf(stdout, "# preview of %s: %s\n", cfg.Name, summary)
			if err != nil {
				return &exitError{exitFailed, err}
			}
			page := &previewPage{Pipeline: cfg.Name, Summary: summary, Generated: now, Timeline: tl.report(horizonFlag)}
			page.Timeline.writeText(stdout)
			if dests != nil {
				dests.write(stdout)
				page.Destinations = dests.lines()
				if len(page.Destinations) == 0 {
					page.DestNote = "No row reaches a destination that would drop it for its age."
				}
			}
			if rate, ok := sinkRate(cfg, 1); ok {
				n, estimated := total.total(rep.RowsRead, all || rep.RowsRead < rows)
				page.Duration = durationLine(n, estimated, rate, 1)
				fmt.Fprintf(stdout, "# duration: %s\n", page.Duration)
			}
			if reportPath != "" {
				if err := writePreviewReport(reportPath, page); err != nil {
					return &exitError{exitFailed, fmt.Errorf("--report: %w", err)}
				}
				fmt.Fprintf(stdout, "# report: %s\n", reportPath)
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&rows, "rows", 1000, "rows to read")
	cmd.Flags().BoolVar(&all, "all", false, "read every row (the timeline and counts then cover the whole input)")
	cmd.Flags().IntVar(&show, "show", 5, "messages (and rejects) to print")
	cmd.Flags().StringVar(&horizonFlag, "horizon", defaultHorizon, "flag rows older than this: a time back from now (2y, 18m, 12w, 90d) or a date (2023-01-01)")
	cmd.Flags().StringVar(&reportPath, "report", "", "also write the timeline, flags and warnings as a self-contained HTML page (FILE.html)")
	return cmd
}

// previewSink encodes like the real sinks and prints the first messages;
// the rows the encoder rejects go to the run's reject hook, as a real
// sink's dead letters would.
type previewSink struct {
	mu    sync.Mutex
	w     io.Writer
	show  int
	shown int
	enc   *message.Encoder

	// What the timeline, the destination checks and the duration need,
	// read from each message as it would be sent.
	tl      *timeline
	dests   *destinationCounter
	total   *previewTotal
	members []jsonscan.Member
}

func (p *previewSink) Open(context.Context) error { return nil }

func (p *previewSink) Write(ctx context.Context, b *pipeline.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer b.Release()
	if p.total != nil {
		p.total.saw(b.Split, b.End)
	}
	rejects, err := p.enc.Encode(b, func(row int, msg []byte) error {
		p.observe(msg)
		if p.shown < p.show {
			p.shown++
			var v any
			if json.Unmarshal(msg, &v) == nil {
				out, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintf(p.w, "%s\n", out)
			} else {
				fmt.Fprintf(p.w, "%s\n", msg)
			}
		}
		return nil
	})
	if err != nil {
		b.Ack(err)
		return err
	}
	for _, r := range rejects {
		if err := b.DeadLetter(ctx, r); err != nil {
			b.Ack(err)
			return err
		}
	}
	b.Ack(nil)
	return nil
}

func (p *previewSink) Close(context.Context) error { return nil }

// observe counts a message in the timeline and the destination checks: its
// timestamp, type, event and integrations, as the sink would send them.
func (p *previewSink) observe(msg []byte) {
	if p.tl == nil {
		return
	}
	var ts, typ, event, integrations []byte
	ms, _, _ := jsonscan.Members(msg, p.members[:0])
	p.members = ms
	for i := range ms {
		m := &ms[i]
		switch {
		case m.KeyIs("timestamp"):
			ts = msg[m.Val:m.End]
		case m.KeyIs("type"):
			typ = msg[m.Val:m.End]
		case m.KeyIs("event"):
			event = msg[m.Val:m.End]
		case m.KeyIs("integrations"):
			integrations = msg[m.Val:m.End]
		}
	}
	var at time.Time
	ok := false
	if s, isStr := jsonString(ts); isStr {
		t, err := time.Parse(time.RFC3339Nano, s)
		at, ok = t, err == nil
	}
	name, _ := jsonString(typ)
	if e, isStr := jsonString(event); isStr && e != "" && name == "track" {
		name = e
	}
	if name == "" {
		name = "(no type)"
	}
	p.tl.add(at.UnixMilli(), ok, name)
	if p.dests != nil {
		p.dests.add(at.UnixMilli(), ok, integrations)
	}
}

// jsonString decodes a JSON string value; ok is false for any other value.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	for _, c := range v {
		if c == '\\' {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(v[1 : len(v)-1]), true
}
