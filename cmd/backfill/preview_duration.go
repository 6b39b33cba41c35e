package main

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/engine"
	"github.com/backfillhq/backfill/sinks/segment"
)

// segmentDefaultRate is Segment's own limit when the sink sets none: about
// 1,000 events/s per workspace (sinks/segment's docs, bench/README.md).
const segmentDefaultRate = 1000

// sinkRate is the events/s the segment sink's request.rate_limit allows
// one shard of shards (a sharded run divides it), 0 when it sets none.
// ok is false for other sinks, whose speed no rate bounds.
func sinkRate(cfg *config.Pipeline, shards int) (rate float64, ok bool) {
	if cfg.Sink == nil || cfg.Sink.Name != "segment" {
		return 0, false
	}
	req := cfg.Sink.Conf.Object("request")
	if req == nil {
		return 0, true
	}
	r, err := segment.ParseRate(req.String("rate_limit"))
	if err != nil || r <= 0 {
		return 0, true
	}
	return r / float64(max(shards, 1)), true
}

// durationLine says how long sending rows takes at rate (0: none set, so
// Segment's default), e.g. "50,000 rows at 1,000/s: about 50 s". rows < 0
// is unknown.
func durationLine(rows int64, estimated bool, rate float64, shards int) string {
	at := fmtRate(rate) + "/s"
	if shards > 1 && rate > 0 {
		at += fmt.Sprintf(" (rate_limit over %d shards)", shards)
	}
	if rate <= 0 {
		rate = segmentDefaultRate
		at = "Segment's default of about 1,000 events/s per workspace (no request.rate_limit set)"
	}
	if rows < 0 {
		return fmt.Sprintf("the row count is unknown until read (preview --all counts it); at %s a million rows take %s",
			at, humanDuration(time.Duration(1e6/rate*float64(time.Second))))
	}
	n := commas(rows) + " rows"
	if estimated {
		n = "about " + n + " (estimated)"
	}
	return fmt.Sprintf("%s at %s: %s", n, at, humanDuration(time.Duration(float64(rows)/rate*float64(time.Second))))
}

// fmtRate writes events/s: 1,000; 16.7; 0.28.
func fmtRate(r float64) string {
	switch {
	case r >= 100 || r == math.Trunc(r):
		return commas(int64(math.Round(r)))
	case r >= 1:
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.2g", r)
}

// humanDuration rounds d to its two largest units: "about 50 s", "about 3
// min 20 s", "about 3 h 20 min", "about 2 d 4 h".
func humanDuration(d time.Duration) string {
	s := int64(math.Round(d.Seconds()))
	if s < 1 {
		return "under a second"
	}
	type unit struct {
		name string
		secs int64
	}
	units := []unit{{"d", 86400}, {"h", 3600}, {"min", 60}, {"s", 1}}
	for i, u := range units {
		if s < u.secs {
			continue
		}
		if i == len(units)-1 {
			return fmt.Sprintf("about %d s", s)
		}
		next := units[i+1]
		// round to the smaller unit
		total := (s + next.secs/2) / next.secs
		big, small := total/(u.secs/next.secs), total%(u.secs/next.secs)
		if small == 0 {
			return fmt.Sprintf("about %d %s", big, u.name)
		}
		return fmt.Sprintf("about %d %s %d %s", big, u.name, small, next.name)
	}
	return fmt.Sprintf("about %d s", s)
}

// splitRows sums the rows of splits; known is false when one does not
// count its rows before it is read.
func splitRows(splits []pipeline.Split) (rows int64, known bool) {
	for _, s := range splits {
		if s.Rows < 0 {
			return 0, false
		}
		rows += s.Rows
	}
	return rows, true
}

// logRunDuration logs once, as a run starts, how long it will take at the
// segment sink's rate: from the splits' row counts when they all have one
// (OnSplits, before "run starting"), else from the first progress that
// carries a total (estimated). It keeps the options' own hooks.
func logRunDuration(cfg *config.Pipeline, opts *engine.Options, log *slog.Logger, shards int) {
	rate, ok := sinkRate(cfg, shards)
	if !ok {
		return
	}
	var once sync.Once
	say := func(rows int64, estimated bool) {
		once.Do(func() {
			eff := rate
			if eff <= 0 {
				eff = segmentDefaultRate
			}
			log.Info("expected duration: "+durationLine(rows, estimated, rate, shards),
				"rows", rows, "estimated", estimated, "events_per_s", math.Round(eff*100)/100,
				"seconds", int64(math.Round(float64(rows)/eff)))
		})
	}
	onSplits := opts.OnSplits
	opts.OnSplits = func(selected, skipped []pipeline.Split) {
		if onSplits != nil {
			onSplits(selected, skipped)
		}
		if rows, known := splitRows(selected); known {
			say(rows, false)
		}
	}
	progress := opts.Progress
	opts.Progress = func(p engine.Progress) {
		if p.TotalRows > 0 && !p.Final {
			say(p.TotalRows, p.Estimated)
		}
		if progress != nil {
			progress(p)
		}
	}
}

// previewTotal is the number of rows a full run would read, seen from a
// preview: the splits' counts, the rows read when the preview read them
// all, or an estimate from the rows per byte of the splits it read whole.
type previewTotal struct {
	mu     sync.Mutex
	splits []pipeline.Split
	order  []string         // splits in the order batches came
	rows   map[string]int64 // rows read per split
}

func (p *previewTotal) onSplits(selected, _ []pipeline.Split) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.splits = selected
}

func (p *previewTotal) saw(split string, end int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rows == nil {
		p.rows = map[string]int64{}
	}
	if _, ok := p.rows[split]; !ok {
		p.order = append(p.order, split)
	}
	p.rows[split] = max(p.rows[split], end)
}

// total returns the rows of the whole input (-1: unknown) and whether that
// is an estimate. readAll: the preview read every row (--all, or fewer
// rows than --rows).
func (p *previewTotal) total(read int64, readAll bool) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rows, known := splitRows(p.splits); known && len(p.splits) > 0 {
		return rows, false
	}
	if readAll {
		return read, false
	}
	// Splits are read one after the other (one worker): all but the last
	// one batches came from were read whole.
	var doneRows, doneBytes, allBytes int64
	for _, s := range p.splits {
		if s.Bytes <= 0 {
			return -1, false
		}
		allBytes += s.Bytes
	}
	bytes := map[string]int64{}
	for _, s := range p.splits {
		bytes[s.ID] = s.Bytes
	}
	for i, id := range p.order {
		if i == len(p.order)-1 {
			break
		}
		doneRows += p.rows[id]
		doneBytes += bytes[id]
	}
	if doneRows == 0 || doneBytes == 0 {
		return -1, false
	}
	return int64(float64(doneRows) / float64(doneBytes) * float64(allBytes)), true
}
