package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/pipeline/state"
)

// writeSummary prints a run's report for a person: one aligned line per
// count, in words.
func writeSummary(w io.Writer, r *engine.Report) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-11s%s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "\n%s: %s in %s\n", r.Pipeline, r.Status, time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond))
	line("splits", "%d (%d done now, %d done before)", r.Splits, r.SplitsDone, r.SplitsSkipped)
	line("read", "%d rows (%.0f rows/s)", r.RowsRead, r.RowsPerSecond)
	line("delivered", "%d%s", r.RowsDelivered, arrow(r.Destination))
	if r.RowsRejected > 0 {
		line("rejected", "%d%s (%s)", r.RowsRejected, arrow(r.DeadLetters), byStage(r.RejectsByStage))
		if r.DeadLetterCopy != "" {
			line("", "copied to %s", r.DeadLetterCopy)
		}
	} else {
		line("rejected", "0")
	}
	if r.RowsFiltered > 0 {
		if r.Sync != nil && r.Sync.Unchanged > 0 {
			line("filtered", "%d (%d unchanged since the last sync)", r.RowsFiltered, r.Sync.Unchanged)
		} else {
			line("filtered", "%d", r.RowsFiltered)
		}
	}
	if s := r.Sync; s != nil {
		removed := fmt.Sprintf("%d removed", s.Removed)
		if s.RemovedNotChecked != "" {
			removed = "removed not looked for: " + s.RemovedNotChecked
		}
		line("sync", "%d added, %d changed, %d unchanged, %s%s", s.Added, s.Changed, s.Unchanged, removed, arrow(s.Snapshot))
	}
	if r.Ledger != "" {
		line("ledger", "%d rows%s", r.LedgerRows, arrow(r.Ledger))
	}
	if r.RowsUnacked > 0 {
		line("unacked", "%d rows read but not acknowledged: the run stopped first (a resume reads them again)", r.RowsUnacked)
	}
	if r.RowsSkipped > 0 {
		line("skipped", "%d rows acknowledged by an earlier run", r.RowsSkipped)
	}
	if r.CheckpointSaveFailures > 0 {
		line("checkpoint", "%d save(s) failed and were retried (see the log)", r.CheckpointSaveFailures)
	}
	for _, l := range sinkLines(r.Sink) {
		line(l[0], "%s", l[1])
	}
	if n := len(r.SplitsChanged); n > 0 {
		line("changed", "%d split(s) read again from the start, their input changed since an earlier run: %s", n, someOf(r.SplitsChanged, 5))
	}
	if len(r.SplitsFailed) > 0 {
		line("failed", "%d split(s): %s", len(r.SplitsFailed), someOf(r.SplitsFailed, 5))
	}
	if r.Splits > 0 && r.SplitsSkipped == r.Splits && r.Status == "ok" {
		line("", "nothing to do: every split was delivered by an earlier run (--fresh starts over)")
	}
	if r.Error != "" && r.Status != "interrupted" {
		line("error", "%s", r.Error)
	}
}

func arrow(where string) string {
	if where == "" {
		return ""
	}
	return " -> " + where
}

func byStage(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// someOf lists the first n items and says how many more there are.
func someOf(items []string, n int) string {
	s := strings.Join(items[:min(len(items), n)], ", ")
	if len(items) > n {
		s += fmt.Sprintf(" and %d more", len(items)-n)
	}
	return s
}

// sinkLines puts a sink's counters (StatsSink) in words: the requests and
// what met them, the responses by status, then any other counter.
func sinkLines(stats map[string]int64) [][2]string {
	if len(stats) == 0 {
		return nil
	}
	used := map[string]bool{}
	take := func(k string) int64 { used[k] = true; return stats[k] }
	var out [][2]string
	if n := take("requests"); n > 0 {
		var notes []string
		if b := take("bytes_sent"); b > 0 {
			notes = append(notes, bytesWord(b)+" sent")
		}
		for _, c := range []struct{ key, word string }{
			{"retries", "retried"}, {"rate_limited", "rate limited (HTTP 429)"}, {"status_0", "network errors"},
			{"splits", "split to find a message the endpoint refused"},
			{"throttle_splits", "halved while HTTP 429s continued"},
		} {
			if v := take(c.key); v > 0 {
				notes = append(notes, fmt.Sprintf("%d %s", v, c.word))
			}
		}
		out = append(out, [2]string{"requests", fmt.Sprintf("%d (%s)", n, strings.Join(notes, ", "))})
	}
	var codes []int
	for k := range stats {
		if code, ok := strings.CutPrefix(k, "status_"); ok {
			used[k] = true
			if c, err := strconv.Atoi(code); err == nil && c != 0 {
				codes = append(codes, c)
			}
		}
	}
	sort.Ints(codes)
	var resp []string
	for _, c := range codes {
		resp = append(resp, fmt.Sprintf("HTTP %d ×%d", c, stats["status_"+strconv.Itoa(c)]))
	}
	if len(resp) > 0 {
		out = append(out, [2]string{"responses", strings.Join(resp, ", ")})
	}
	if l, ok := rateLine(stats, take); ok {
		out = append(out, [2]string{"rate limit", l})
	}
	// The rest, as words; counts the lines above already give are left out.
	for _, k := range []string{"events_sent", "dead_lettered", "rejected_encode", "rejected_http", "batches", "batches_acked", "batches_failed"} {
		used[k] = true
	}
	var rest []string
	for _, k := range sortedKeys(stats) {
		if !used[k] && stats[k] != 0 {
			rest = append(rest, fmt.Sprintf("%s %d", strings.ReplaceAll(k, "_", " "), stats[k]))
		}
	}
	if len(rest) > 0 {
		out = append(out, [2]string{"sink", strings.Join(rest, ", ")})
	}
	return out
}

// rateLine puts the sink's rate limit in words: the configured one, or
// what it adapted to after HTTP 429s.
func rateLine(stats map[string]int64, take func(string) int64) (string, bool) {
	_, ok := stats[sinkRateLimit]
	r, cuts, size := take(sinkRateLimit), take("rate_limit_cuts"), take("request_max_events_now")
	switch {
	case !ok:
		return "", false
	case cuts == 0:
		return fmt.Sprintf("%d events/s", r), true
	}
	s := fmt.Sprintf("%d events/s at the end, adapted to HTTP 429s (lowered %d time%s", r, cuts, plural(cuts))
	if size > 0 {
		s += fmt.Sprintf("; requests of at most %d messages", size)
	}
	return s + ")", true
}

// counted is n and the noun, plural unless n is 1: "1 split", "2 splits".
func counted(n int64, noun string) string { return fmt.Sprintf("%d %s%s", n, noun, plural(n)) }

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func bytesWord(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// runOutput is where a run's outcome goes: text on stderr, or, with
// --log-format json, JSON log records (the summary one object).
type runOutput struct {
	stderr     io.Writer
	log        *slog.Logger
	json       bool
	pipeline   string // the pipeline file, for the resume hint
	reportPath string // --report
	red        *redact.Redactor
}

// finishRun prints a run's summary and what to do next, writes --report,
// and turns the run's error into the exit code.
func finishRun(out runOutput, rep *engine.Report, err error) error {
	locked := errors.As(err, new(*state.LockedError))
	if rep != nil && !locked { // a locked run did nothing: the error says it all
		if out.json {
			out.log.Info("summary", "report", rep)
		} else {
			writeSummary(out.stderr, rep)
		}
		if out.reportPath != "" {
			if werr := writeReport(out.reportPath, rep); werr != nil {
				out.say(slog.LevelError, "writing the report failed", "error", werr)
			}
		}
	}
	resume := "backfill run " + out.pipeline
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrInterrupted):
		out.say(slog.LevelInfo, "Stopped. Progress is saved; resume with: "+resume)
		return &exitError{exitInterrupted, nil}
	case len(config.AsConfigErrors(err)) > 0:
		return configExit(err)
	case locked:
		return out.fail(exitLocked, err)
	}
	if rep != nil && rep.Checkpoint != "" {
		out.say(slog.LevelInfo, "Progress up to the failure is saved; fix the cause and resume with: "+resume)
	}
	return out.fail(exitFailed, err)
}

// say prints a line for a person, or logs it as a record in JSON.
func (o runOutput) say(level slog.Level, msg string, args ...any) {
	if o.json {
		o.log.Log(context.Background(), level, msg, args...)
		return
	}
	fmt.Fprintln(o.stderr, append([]any{msg}, args...)...)
}

// fail returns the exit code; in JSON the error is a log record, not a
// line of text.
func (o runOutput) fail(code int, err error) error {
	if o.json {
		o.log.Error("run failed", "error", err.Error())
		return &exitError{code, nil}
	}
	return &exitError{code, errors.New(o.red.String(err.Error()))}
}
