package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/backfillhq/backfill/pipeline/engine"
)

// progressView shows a run's progress on stderr: a bar with rate and ETA
// on a terminal, a log line every few seconds elsewhere (CI, Kubernetes).
type progressView struct {
	mode  string // bar, log, none
	every time.Duration
	w     io.Writer
	log   *slog.Logger
	bar   *progressbar.ProgressBar
	total int64
}

func newProgressView(w io.Writer, mode string, log *slog.Logger) *progressView {
	if mode == "auto" || mode == "" {
		mode = "log"
		if isTerminal(w) {
			mode = "bar"
		}
	}
	v := &progressView{mode: mode, w: w, log: log, every: 200 * time.Millisecond}
	if mode == "log" {
		v.every = 10 * time.Second
	}
	return v
}

func (v *progressView) update(p engine.Progress) {
	switch v.mode {
	case "bar":
		if v.bar != nil && v.total != p.TotalRows && (v.total > 0) == (p.TotalRows > 0) {
			// An estimate moved (or became exact): same bar, new length.
			v.total = p.TotalRows
			v.bar.ChangeMax64(p.TotalRows)
		}
		if v.bar == nil || v.total != p.TotalRows {
			v.total = p.TotalRows
			max := p.TotalRows
			if max <= 0 {
				max = -1
			}
			if v.bar != nil {
				v.bar.Finish()
			}
			v.bar = progressbar.NewOptions64(max,
				progressbar.OptionSetWriter(v.w),
				progressbar.OptionSetDescription("rows"),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("rows"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionFullWidth(),
				progressbar.OptionClearOnFinish(),
			)
		}
		v.bar.Set64(p.Read)
		about := ""
		if p.Estimated {
			about = ", total estimated from the bytes read"
		}
		v.bar.Describe(fmt.Sprintf("splits %d/%d, delivered %d, rejected %d%s%s", p.SplitsDone, p.SplitsAll, p.Delivered, p.Rejected, about, rateNote(p.Sink)))
	case "log":
		if p.Final {
			return
		}
		rate := float64(p.Read) / p.Elapsed.Seconds()
		attrs := []any{"read", p.Read, "delivered", p.Delivered, "rejected", p.Rejected,
			"splits", fmt.Sprintf("%d/%d", p.SplitsDone, p.SplitsAll), "rows_per_s", int64(rate)}
		if p.TotalRows > 0 && rate > 0 {
			left := time.Duration(float64(p.TotalRows-p.Read) / rate * float64(time.Second))
			attrs = append(attrs, "total", p.TotalRows, "eta", left.Round(time.Second).String())
			if p.Estimated {
				// From the rows per byte of the splits finished so far.
				attrs = append(attrs, "estimated", true)
			}
		}
		if r, ok := p.Sink[sinkRateLimit]; ok {
			// The sink's events/s limit in force: configured, or adapted
			// to a collector's 429s.
			attrs = append(attrs, "rate_limit", fmt.Sprintf("%d/s", r))
		}
		v.log.Info("progress", attrs...)
	}
}

// sinkRateLimit is the sink stat holding the events/s limit in force
// (the segment sink's, adapted to 429s).
const sinkRateLimit = "rate_limit_events_per_s"

// rateNote is the bar's mention of the sink's rate limit, if any.
func rateNote(stats map[string]int64) string {
	r, ok := stats[sinkRateLimit]
	if !ok {
		return ""
	}
	if stats["rate_limit_cuts"] > 0 {
		return fmt.Sprintf(", sending at most %d events/s (slowed by HTTP 429s)", r)
	}
	return fmt.Sprintf(", at most %d events/s", r)
}

func (v *progressView) done() {
	if v.bar != nil {
		v.bar.Finish()
	}
}
