package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/transforms"
)

// sendsToSegment reports whether the pipeline's sink posts to Segment
// itself: the destination names and limits (transforms.DestinationLimits)
// are Segment's. Another collector (rudder-server, a test server) has
// destinations of its own.
func sendsToSegment(cfg *config.Pipeline) bool {
	if cfg.Sink == nil || cfg.Sink.Name != "segment" {
		return false
	}
	u, err := url.Parse(cfg.Sink.Conf.String("endpoint"))
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	for _, suffix := range []string{"segment.io", "segmentapis.com", "segment.com"} {
		if h == suffix || strings.HasSuffix(h, "."+suffix) {
			return true
		}
	}
	return false
}

// allHint is what to do about All: true with historical data.
const allHint = "for historical data set All: false and name the destinations that take old events"

// destinationWarning is validate's one warning when the messages reach
// destinations that drop old events: named in integrations, or through
// All: true (written, or Segment's default without an integrations
// transform). Each row's own object (from_column, merge over the data)
// can only be counted by preview. nil when no such destination is reached.
func destinationWarning(cfg *config.Pipeline) *config.ConfigError {
	if !sendsToSegment(cfg) {
		return nil
	}
	use := transforms.ReadIntegrations(cfg.Transforms)
	var named, byAll, perRow []string
	for i := range transforms.DestinationLimits {
		d := &transforms.DestinationLimits[i]
		if d.MaxAge <= 0 { // an old-data limit; Mixpanel's 1971 is preview's to count
			continue
		}
		switch use.ReachOf(d) {
		case transforms.ReachedByName:
			named = append(named, fmt.Sprintf("%s %s", d.Name, d.Rule()))
		case transforms.ReachedByAll:
			byAll = append(byAll, fmt.Sprintf("%s (%s)", d.Name, d.Limit))
		case transforms.ReachedPerRow:
			perRow = append(perRow, d.Name)
		}
	}
	if len(named)+len(byAll)+len(perRow) == 0 {
		return nil
	}
	var msg []string
	if len(named) > 0 {
		msg = append(msg, "integrations sends to destinations that drop old events: "+strings.Join(named, "; "))
	}
	if len(byAll) > 0 {
		how := "integrations All: true sends"
		if _, set := use.Keys["All"]; !set {
			how = "with no All in integrations, Segment's default (All: true) sends"
			if use.Conf == nil {
				how = "with no integrations transform, Segment's default (All: true) sends"
			}
		}
		msg = append(msg, fmt.Sprintf("%s every message to every destination connected to the source, and some drop old events: %s", how, strings.Join(byAll, ", ")))
	}
	if len(perRow) > 0 {
		msg = append(msg, fmt.Sprintf("%s: whether rows reach %s only preview can count", use.PerRow, strings.Join(perRow, ", ")))
	}
	hint := "`backfill preview --all` counts the rows affected"
	if len(byAll) > 0 {
		hint = allHint + "; " + hint
	}
	var e *config.ConfigError
	if use.Conf != nil {
		e = use.Conf.Errorf("", "%s", strings.Join(msg, "; "))
	} else {
		e = cfg.Sink.Conf.Errorf("", "%s", strings.Join(msg, "; "))
	}
	e.Code, e.Hint = transforms.CodeHistoricalData, hint
	return e
}

// destinationCounter counts, in a preview, the rows each limited
// destination receives and refuses, from each message's integrations
// object (Segment's default All: true without one).
type destinationCounter struct {
	now   time.Time
	dests []*transforms.DestinationLimit
	stats []destinationStat
	cache map[string][]transforms.Reach // integrations text -> reach of each of dests
}

type destinationStat struct {
	reached, refused, refusedByAll int64
	when                           span // the refused rows' times
}

// maxReachCache bounds the distinct integrations objects remembered; past
// it, each is parsed again.
const maxReachCache = 1024

func newDestinationCounter(now time.Time) *destinationCounter {
	c := &destinationCounter{now: now, cache: map[string][]transforms.Reach{}}
	for i := range transforms.DestinationLimits {
		if d := &transforms.DestinationLimits[i]; d.Limited() {
			c.dests = append(c.dests, d)
		}
	}
	c.stats = make([]destinationStat, len(c.dests))
	return c
}

// add counts one message: its time (ok false: none, so Segment files it
// when received, within every limit) and its integrations object as sent.
func (c *destinationCounter) add(ms int64, ok bool, integrations []byte) {
	reach, cached := c.cache[string(integrations)]
	if !cached {
		obj := transforms.ParseIntegrations(integrations)
		reach = make([]transforms.Reach, len(c.dests))
		for i, d := range c.dests {
			reach[i] = d.ReachOf(obj)
		}
		if len(c.cache) < maxReachCache {
			c.cache[string(integrations)] = reach
		}
	}
	for i, d := range c.dests {
		if reach[i] == transforms.NotReached {
			continue
		}
		s := &c.stats[i]
		s.reached++
		if ok && d.Refuses(time.UnixMilli(ms), c.now) {
			s.refused++
			s.when.add(ms)
			if reach[i] == transforms.ReachedByAll {
				s.refusedByAll++
			}
		}
	}
}

// lines are the preview's warnings, one per destination refusing rows:
// "Google Analytics 4 drops events older than 72 hours: 49,812 of 50,000
// rows (2023-01-01 .. 2024-12-30)", and what to do about All: true.
func (c *destinationCounter) lines() []string {
	var out []string
	byAll := false
	for i, d := range c.dests {
		s := c.stats[i]
		if s.refused == 0 {
			continue
		}
		line := fmt.Sprintf("%s %s: %s of %s rows (%s .. %s)", d.Name, d.Rule(), commas(s.refused), commas(s.reached),
			fmtDay(s.when.min), fmtDay(s.when.max))
		if s.refusedByAll == s.refused {
			line += ", reached through All: true"
		}
		if d.Note != "" {
			line += "; " + d.Note
		}
		out = append(out, line)
		byAll = byAll || s.refusedByAll > 0
	}
	if byAll {
		out = append(out, "integrations All: true (Segment's default for a message that names no destination) sends to every destination connected to the source: "+allHint)
	}
	return out
}

// write prints the destinations section of a preview.
func (c *destinationCounter) write(w io.Writer) {
	lines := c.lines()
	if len(lines) == 0 {
		var limits []string
		for _, d := range c.dests {
			limits = append(limits, d.Name+" "+d.Limit)
		}
		fmt.Fprintf(w, "# destinations: no row reaches a destination that would drop it (checked: %s)\n", strings.Join(limits, ", "))
		return
	}
	fmt.Fprintf(w, "# destinations (as of now; rows age while the run goes on)\n")
	for _, l := range lines {
		fmt.Fprintf(w, "warning: %s\n", l)
	}
}
