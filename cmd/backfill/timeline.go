package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The timeline's thresholds.
const (
	// clusterShare: an instant (to the millisecond) holding at least this
	// share of the rows with a timestamp is flagged. Real events almost
	// never share a millisecond; a timestamp filled with one value (a
	// default, the time of reading, a date without its time) puts every
	// row on a few instants. 5% of a 1,000-row preview is 50 rows.
	clusterShare = 0.05
	// clusterMin: fewer rows than this at one instant are never a cluster
	// (a tiny preview has few instants anyway).
	clusterMin = 10
	// gapMinPerDay: days without events are flagged only where the data
	// averages at least this many rows a day (a Poisson day of mean 10 is
	// empty with probability 5e-5): a sparse sample has empty days by
	// chance.
	gapMinPerDay = 10
	// gapMaxDays: gaps are looked for in spans up to about two years,
	// where days make sense.
	gapMaxDays = 731
	// maxNames and maxInstants bound the memory of a preview of any size:
	// names past the first 1,000 count as "other", and instants are
	// counted by Misra-Gries with 10,000 counters (exact until 10,000
	// distinct instants, then at most rows/10,001 too low).
	maxNames    = 1000
	maxInstants = 10000
	// topNames: the names shown; the rest add up to "other".
	topNames = 8
	// chartWidth: the terminal chart fits 80 columns.
	chartWidth = 80
	// maxChartLines caps the buckets printed (a span of garbage years).
	maxChartLines = 200
	// defaultHorizon is --horizon's default: rows older than two years
	// are flagged. Most destinations keep event-level data about that
	// long (GA4 at most 14 months on a standard property, Amplitude and
	// Mixpanel plans by volume, not age), and a backfill reaching further
	// back is more often a wrong column or unit (seconds read as
	// milliseconds land in 1970) than intended; a deliberate one sets
	// --horizon to its first day.
	defaultHorizon = "2y"
)

const msPerDay = int64(24 * time.Hour / time.Millisecond)

// timeline counts the previewed messages by day, name and instant, in
// memory bounded whatever the number of rows: counters per day (the span's
// days), per name (maxNames) and per instant (maxInstants).
type timeline struct {
	now, horizon     time.Time
	nowMs, horizonMs int64

	rows, noTime int64
	minMs, maxMs int64
	days         map[int64]int64 // days since 1970-01-01 UTC -> rows
	future, old  span            // rows at or after now, before the horizon
	inst         instants
	names        map[string]int64
	otherNames   int64 // rows whose name came after the first maxNames
}

// span counts rows and their earliest and latest times.
type span struct{ n, min, max int64 }

func (s *span) add(ms int64) {
	if s.n == 0 || ms < s.min {
		s.min = ms
	}
	if s.n == 0 || ms > s.max {
		s.max = ms
	}
	s.n++
}

func newTimeline(now, horizon time.Time) *timeline {
	return &timeline{now: now, horizon: horizon, nowMs: now.UnixMilli(), horizonMs: horizon.UnixMilli(),
		days: map[int64]int64{}, names: map[string]int64{}, inst: instants{counts: map[int64]int64{}, k: maxInstants}}
}

// add counts one message: its time in ms since the epoch (ok false: it has
// no timestamp) and its name (a track's event, else its type).
func (t *timeline) add(ms int64, ok bool, name string) {
	t.rows++
	if n, seen := t.names[name]; seen || len(t.names) < maxNames {
		t.names[name] = n + 1
	} else {
		t.otherNames++
	}
	if !ok {
		t.noTime++
		return
	}
	timed := t.rows - t.noTime
	if timed == 1 || ms < t.minMs {
		t.minMs = ms
	}
	if timed == 1 || ms > t.maxMs {
		t.maxMs = ms
	}
	t.days[floorDiv(ms, msPerDay)]++
	if ms >= t.nowMs {
		t.future.add(ms)
	}
	if ms < t.horizonMs {
		t.old.add(ms)
	}
	t.inst.add(ms)
}

// instants finds the heavy hitters among instants (Misra-Gries): any
// instant holding more than 1/(k+1) of the rows keeps a counter, at most
// pruned too low.
type instants struct {
	counts map[int64]int64
	k      int
	pruned int64
}

func (c *instants) add(ms int64) {
	if n, ok := c.counts[ms]; ok || len(c.counts) < c.k {
		c.counts[ms] = n + 1
		return
	}
	c.pruned++
	for v, n := range c.counts {
		if n == 1 {
			delete(c.counts, v)
		} else {
			c.counts[v] = n - 1
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Timeline units.
const (
	unitDay   = "day"
	unitWeek  = "week"
	unitMonth = "month"
	unitYear  = "year"
)

// timelineUnit picks the bucket for a span: days up to 60 days, weeks
// (from Monday) up to two years, months up to 20 years, and years beyond
// (a span of bad data, not of events, usually).
func timelineUnit(span time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case span <= 60*day:
		return unitDay
	case span <= 731*day:
		return unitWeek
	case span <= 20*366*day:
		return unitMonth
	}
	return unitYear
}

// timelineReport is what the timeline shows, for the terminal and the HTML
// report alike.
type timelineReport struct {
	Now, Horizon  time.Time
	HorizonSource string // --horizon as given
	Rows, NoTime  int64
	Timed         int64
	From, To      time.Time // earliest and latest timestamps
	Unit          string
	Buckets       []bucket
	Names         []nameCount
	DistinctNames int // names counted one by one (at most maxNames)
	Future, Old   span
	Clusters      []cluster
	GapDays       int64
	Gaps          [][2]time.Time // first and last day of each run of empty days
	GapsNote      string         // why gaps were not looked for, when they were not
	Flags         []string
}

type bucket struct {
	Start                time.Time
	Label                string
	N                    int64
	Future, Old, Cluster bool
	Gap                  bool // no events, and gaps are judged
}

type nameCount struct {
	Name string
	N    int64
}

type cluster struct {
	At    time.Time
	N     int64
	Exact bool // false: the count is a lower bound (Misra-Gries pruned)
}

// report computes the buckets and flags.
func (t *timeline) report(horizonSource string) *timelineReport {
	r := &timelineReport{Now: t.now, Horizon: t.horizon, HorizonSource: horizonSource,
		Rows: t.rows, NoTime: t.noTime, Timed: t.rows - t.noTime, Future: t.future, Old: t.old}
	r.Names, r.DistinctNames = t.topNames()
	if r.Timed > 0 {
		r.From, r.To = time.UnixMilli(t.minMs).UTC(), time.UnixMilli(t.maxMs).UTC()
		r.Unit = timelineUnit(r.To.Sub(r.From))
		r.Clusters = t.clusters(r.Timed)
		t.gaps(r)
		t.buckets(r)
	}
	r.Flags = r.flags()
	return r
}

func (t *timeline) topNames() ([]nameCount, int) {
	all := make([]nameCount, 0, len(t.names))
	for n, c := range t.names {
		all = append(all, nameCount{n, c})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].N != all[j].N {
			return all[i].N > all[j].N
		}
		return all[i].Name < all[j].Name
	})
	distinct := len(all)
	if len(all) <= topNames && t.otherNames == 0 {
		return all, distinct
	}
	keep := min(topNames, len(all))
	other := nameCount{Name: "(other)", N: t.otherNames}
	for _, n := range all[keep:] {
		other.N += n.N
	}
	return append(all[:keep:keep], other), distinct
}

func (t *timeline) clusters(timed int64) []cluster {
	least := max(int64(clusterMin), int64(float64(timed)*clusterShare+0.999999))
	var out []cluster
	for ms, n := range t.inst.counts {
		if n >= least {
			out = append(out, cluster{At: time.UnixMilli(ms).UTC(), N: n, Exact: t.inst.pruned == 0})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].At.Before(out[j].At)
	})
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// gaps finds the days without events between the first and the last, where
// days make sense and the data is dense enough to tell.
func (t *timeline) gaps(r *timelineReport) {
	first, last := floorDiv(t.minMs, msPerDay), floorDiv(t.maxMs, msPerDay)
	days := last - first + 1
	switch {
	case days > gapMaxDays:
		r.GapsNote = "days without events are looked for in spans up to two years"
		return
	case float64(r.Timed)/float64(days) < gapMinPerDay:
		r.GapsNote = fmt.Sprintf("%s rows over %s days are too few to tell days without events from chance (%d a day are needed; --all reads every row)",
			commas(r.Timed), commas(days), gapMinPerDay)
		return
	}
	for d := first; d <= last; d++ {
		if t.days[d] > 0 {
			continue
		}
		r.GapDays++
		day := dayTime(d)
		if n := len(r.Gaps); n > 0 && r.Gaps[n-1][1].Equal(day.AddDate(0, 0, -1)) {
			r.Gaps[n-1][1] = day
		} else {
			r.Gaps = append(r.Gaps, [2]time.Time{day, day})
		}
	}
}

func dayTime(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }

// bucketStart is the first day of the unit holding day d.
func bucketStart(d int64, unit string) time.Time {
	switch unit {
	case unitWeek:
		return dayTime(d - floorMod(d+3, 7)) // 1970-01-01 was a Thursday
	case unitMonth:
		t := dayTime(d)
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	case unitYear:
		return time.Date(dayTime(d).Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return dayTime(d)
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func nextBucket(t time.Time, unit string) time.Time {
	switch unit {
	case unitWeek:
		return t.AddDate(0, 0, 7)
	case unitMonth:
		return t.AddDate(0, 1, 0)
	case unitYear:
		return t.AddDate(1, 0, 0)
	}
	return t.AddDate(0, 0, 1)
}

func bucketLabel(t time.Time, unit string) string {
	switch unit {
	case unitMonth:
		return t.Format("2006-01")
	case unitYear:
		return t.Format("2006")
	}
	return t.Format("2006-01-02")
}

func (t *timeline) buckets(r *timelineReport) {
	counts := map[time.Time]int64{}
	for d, n := range t.days {
		counts[bucketStart(d, r.Unit)] += n
	}
	gapDays := map[time.Time]bool{}
	for _, g := range r.Gaps {
		for d := g[0]; !d.After(g[1]); d = d.AddDate(0, 0, 1) {
			gapDays[d] = true
		}
	}
	first := bucketStart(floorDiv(t.minMs, msPerDay), r.Unit)
	last := bucketStart(floorDiv(t.maxMs, msPerDay), r.Unit)
	var all []bucket
	for b := first; !b.After(last); b = nextBucket(b, r.Unit) {
		end := nextBucket(b, r.Unit)
		startMs, endMs := b.UnixMilli(), end.UnixMilli()
		n := counts[b]
		bk := bucket{Start: b, Label: bucketLabel(b, r.Unit), N: n,
			// the bucket holds rows at or after now, or before the horizon
			Future: n > 0 && t.future.n > 0 && t.future.min < endMs && t.future.max >= startMs,
			Old:    n > 0 && t.old.n > 0 && t.old.min < endMs && t.old.max >= startMs}
		if r.Unit == unitDay || r.Unit == unitWeek {
			for d := b; d.Before(end); d = d.AddDate(0, 0, 1) {
				bk.Gap = bk.Gap || gapDays[d]
			}
		}
		for _, c := range r.Clusters {
			if !c.At.Before(b) && c.At.Before(end) {
				bk.Cluster = true
			}
		}
		all = append(all, bk)
		if len(all) > 100000 { // years of garbage dates: the rest is empty or capped below
			break
		}
	}
	if len(all) > maxChartLines { // keep the buckets that hold rows
		kept := all[:0]
		for _, b := range all {
			if b.N > 0 {
				kept = append(kept, b)
			}
		}
		all = kept
	}
	r.Buckets = all
}

func (r *timelineReport) flags() []string {
	var out []string
	if r.Future.n > 0 {
		out = append(out, fmt.Sprintf("%s (%s) at or after now (%s), %s .. %s: destinations file them in the future (a clock, time zone or unit error?)",
			nrows(r.Future.n), pct(r.Future.n, r.Timed), r.Now.UTC().Format("2006-01-02 15:04 UTC"),
			fmtDay(r.Future.min), fmtDay(r.Future.max)))
	}
	for _, c := range r.Clusters {
		n := nrows(c.N)
		if !c.Exact {
			n = "at least " + n
		}
		out = append(out, fmt.Sprintf("%s (%s) at one instant, %s: the mark of a timestamp filled with one value (a default, the time of reading, a date without its time)",
			n, pct(c.N, r.Timed), c.At.Format("2006-01-02T15:04:05.000Z")))
	}
	if r.GapDays > 0 {
		var parts []string
		for i, g := range r.Gaps {
			if i == 5 {
				parts = append(parts, fmt.Sprintf("and %d more", len(r.Gaps)-5))
				break
			}
			if g[0].Equal(g[1]) {
				parts = append(parts, g[0].Format("2006-01-02"))
			} else {
				parts = append(parts, g[0].Format("2006-01-02")+" .. "+g[1].Format("2006-01-02"))
			}
		}
		out = append(out, fmt.Sprintf("%s days with no events inside the span: %s (a missing export or partition?)",
			commas(r.GapDays), strings.Join(parts, ", ")))
	}
	if r.Old.n > 0 {
		out = append(out, fmt.Sprintf("%s (%s) before the horizon, %s (--horizon %s), %s .. %s: very old for most destinations, or a wrong column or unit",
			nrows(r.Old.n), pct(r.Old.n, r.Timed), r.Horizon.UTC().Format("2006-01-02"), r.HorizonSource,
			fmtDay(r.Old.min), fmtDay(r.Old.max)))
	}
	if r.NoTime > 0 {
		out = append(out, fmt.Sprintf("%s (%s) with no timestamp: Segment files them at the time it receives them, as if they happened during the run",
			nrows(r.NoTime), pct(r.NoTime, r.Rows)))
	}
	return out
}

// nrows is "1 row" or "12,345 rows".
func nrows(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return commas(n) + " rows"
}

func fmtDay(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02") }

// pct is n of total as a percentage, "<0.1%" for a few.
func pct(n, total int64) string {
	if total <= 0 {
		return "0%"
	}
	p := 100 * float64(n) / float64(total)
	if p > 0 && p < 0.1 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", p)
}

// commas writes n with thousands separators: 50,000.
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// bar draws n of max as Unicode blocks over width cells, in eighths; a
// count above zero always shows.
func bar(n, max int64, width int) string {
	if n <= 0 || max <= 0 {
		return ""
	}
	eighths := int(float64(n) / float64(max) * float64(width*8))
	if eighths < 1 {
		eighths = 1
	}
	return strings.Repeat("█", eighths/8) + []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}[eighths%8]
}

// pad right-pads s to width runes.
func pad(s string, width int) string {
	if n := utf8.RuneCountInString(s); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}

// clip shortens s to width runes, with an ellipsis.
func clip(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

func (b bucket) marker() string {
	var m []string
	if b.Future {
		m = append(m, "now")
	}
	if b.Cluster {
		m = append(m, "cluster")
	}
	if b.Old {
		m = append(m, "old")
	}
	if b.Gap {
		m = append(m, "gap")
	}
	if len(m) == 0 {
		return ""
	}
	return "! " + strings.Join(m, ",")
}

// writeText prints the timeline, the names and the flags, in 80 columns.
func (r *timelineReport) writeText(w io.Writer) {
	if r.Timed == 0 {
		fmt.Fprintf(w, "# timeline: no row has a timestamp\n")
	} else {
		per := "per " + r.Unit
		if r.Unit == unitWeek {
			per += " (from Monday)"
		}
		fmt.Fprintf(w, "# timeline: %s rows with a timestamp, %s .. %s UTC, %s\n",
			commas(r.Timed), r.From.Format("2006-01-02"), r.To.Format("2006-01-02"), per)
		var maxN int64
		labelW, countW, markW := 0, 0, 0
		for _, b := range r.Buckets {
			maxN = max(maxN, b.N)
			labelW = max(labelW, len(b.Label))
			countW = max(countW, len(commas(b.N)))
			markW = max(markW, utf8.RuneCountInString(b.marker()))
		}
		barW := max(10, chartWidth-2-labelW-1-1-countW-1-markW)
		for i, b := range r.Buckets {
			if i == maxChartLines {
				fmt.Fprintf(w, "  ... %d more\n", len(r.Buckets)-i)
				break
			}
			line := fmt.Sprintf("  %s %s %*s", pad(b.Label, labelW), pad(bar(b.N, maxN, barW), barW), countW, commas(b.N))
			if m := b.marker(); m != "" {
				line += " " + m
			}
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
	if len(r.Names) > 0 {
		fmt.Fprintf(w, "# by event (a track's event name, else the type): %d distinct\n", r.DistinctNames)
		var maxN int64
		nameW, countW := 0, 0
		for _, n := range r.Names {
			maxN = max(maxN, n.N)
			nameW = max(nameW, utf8.RuneCountInString(clip(n.Name, 24)))
			countW = max(countW, len(commas(n.N)))
		}
		barW := max(10, chartWidth-2-nameW-1-1-countW-7)
		for _, n := range r.Names {
			fmt.Fprintf(w, "  %s %s %*s %6s\n", pad(clip(n.Name, 24), nameW), pad(bar(n.N, maxN, barW), barW), countW, commas(n.N), pct(n.N, r.Rows))
		}
	}
	if len(r.Flags) == 0 {
		fmt.Fprintf(w, "# flags: none (no row at or after now, none before %s, no instant with %.0f%% of the rows, no day without events, every row has a timestamp)\n",
			r.Horizon.UTC().Format("2006-01-02"), clusterShare*100)
	} else {
		fmt.Fprintf(w, "# flags\n")
		for _, f := range r.Flags {
			fmt.Fprintf(w, "  ! %s\n", f)
		}
	}
	if r.GapsNote != "" && r.Timed > 0 {
		fmt.Fprintf(w, "  (%s)\n", r.GapsNote)
	}
}

// parseHorizon reads --horizon: a duration back from now ("2y", "18m",
// "90d", "12w", "36h") or a date ("2023-01-01", RFC 3339).
func parseHorizon(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var n int
	var unit string
	if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err == nil && n >= 0 {
		switch unit {
		case "y":
			return now.AddDate(-n, 0, 0), nil
		case "m":
			return now.AddDate(0, -n, 0), nil
		case "w":
			return now.AddDate(0, 0, -7*n), nil
		case "d":
			return now.AddDate(0, 0, -n), nil
		case "h":
			return now.Add(-time.Duration(n) * time.Hour), nil
		}
	}
	return time.Time{}, fmt.Errorf("--horizon %q: want a time back from now (2y, 18m, 12w, 90d, 36h) or a date (2023-01-01)", s)
}
