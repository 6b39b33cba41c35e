package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gapAndClusterTimeline is March 2024 with 40 rows a day, none from the
// 10th to the 12th, none after the 25th, and 300 rows on one instant at
// "now" (2024-04-01 12:00 UTC): what a missing timestamp filled with the
// time of reading looks like.
func gapAndClusterTimeline() (*timeline, time.Time) {
	now := time.Date(2024, 4, 1, 12, 0, 0, 0, time.UTC)
	tl := newTimeline(now, now.AddDate(-2, 0, 0))
	for day := 1; day <= 25; day++ {
		if day >= 10 && day <= 12 {
			continue
		}
		for i := 0; i < 40; i++ {
			at := time.Date(2024, 3, day, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 31 * time.Minute)
			name := "Order Completed"
			if i%4 == 0 {
				name = "identify"
			}
			tl.add(at.UnixMilli(), true, name)
		}
	}
	for i := 0; i < 300; i++ {
		tl.add(now.UnixMilli(), true, "Order Completed")
	}
	tl.add(0, false, "Order Completed") // one without a timestamp
	return tl, now
}

// The timeline of generated data with a gap and a cluster at now: days,
// the gap and the trailing empty days flagged, the last day flagged as at
// now and a cluster, and the flags say so with counts.
func TestTimelineFlagsGapAndClusterAtNow(t *testing.T) {
	tl, now := gapAndClusterTimeline()
	r := tl.report("2y")
	if r.Unit != unitDay || r.Rows != 22*40+300+1 || r.Timed != 22*40+300 || r.NoTime != 1 {
		t.Fatalf("unit %s, rows %d, timed %d, no time %d", r.Unit, r.Rows, r.Timed, r.NoTime)
	}
	if len(r.Buckets) != 32 { // 2024-03-01 .. 2024-04-01
		t.Fatalf("%d buckets, want 32: %+v", len(r.Buckets), r.Buckets)
	}
	for _, b := range r.Buckets {
		day := b.Start.Day()
		switch {
		case b.Start.Month() == time.April:
			if b.N != 300 || !b.Future || !b.Cluster || b.Gap || b.marker() != "! now,cluster" {
				t.Errorf("now's bucket %+v", b)
			}
		case day >= 10 && day <= 12, day >= 26:
			if b.N != 0 || !b.Gap || b.marker() != "! gap" {
				t.Errorf("gap bucket %+v", b)
			}
		default:
			if b.N != 40 || b.Gap || b.Future || b.Cluster || b.Old {
				t.Errorf("bucket %+v", b)
			}
		}
	}
	want := []string{
		"300 rows (25.4%) at or after now (2024-04-01 12:00 UTC), 2024-04-01 .. 2024-04-01",
		"300 rows (25.4%) at one instant, 2024-04-01T12:00:00.000Z",
		"9 days with no events inside the span: 2024-03-10 .. 2024-03-12, 2024-03-26 .. 2024-03-31",
		"1 row (<0.1%) with no timestamp",
	}
	if len(r.Flags) != len(want) {
		t.Fatalf("flags:\n%s", strings.Join(r.Flags, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(r.Flags[i], w) {
			t.Errorf("flag %d:\n%s\nwant it to start with\n%s", i, r.Flags[i], w)
		}
	}
	if r.Gaps[0] != [2]time.Time{time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 12, 0, 0, 0, 0, time.UTC)} {
		t.Errorf("gaps %v", r.Gaps)
	}
	if len(r.Clusters) != 1 || !r.Clusters[0].At.Equal(now) || r.Clusters[0].N != 300 || !r.Clusters[0].Exact {
		t.Errorf("clusters %+v", r.Clusters)
	}
	if r.Names[0] != (nameCount{"Order Completed", 22*30 + 300 + 1}) || r.Names[1] != (nameCount{"identify", 22 * 10}) {
		t.Errorf("names %+v", r.Names)
	}

	// The chart: a line per day in 80 columns, bars aligned.
	var out strings.Builder
	r.writeText(&out)
	text := out.String()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.HasPrefix(line, "  2024-") && len([]rune(line)) > 80 {
			t.Errorf("chart line over 80 columns: %q", line)
		}
	}
	for _, w := range []string{
		"# timeline: 1,180 rows with a timestamp, 2024-03-01 .. 2024-04-01 UTC, per day",
		"  2024-03-10" + strings.Repeat(" ", 3),
		"300 ! now,cluster\n",
		"  0 ! gap\n",
		"# flags\n  ! 300 rows (25.4%) at or after now",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("chart lacks %q:\n%s", w, text)
		}
	}
	bar1 := strings.Index(text, "  2024-03-01 █") // bars start in one column
	bar2 := strings.Index(text[bar1+1:], "  2024-03-02 █")
	if bar1 < 0 || bar2 < 0 {
		t.Errorf("bars not aligned after the date:\n%s", text)
	}
}

// The bucket follows the span: days up to 60 days, weeks up to two years,
// months beyond.
func TestTimelineUnitFollowsTheSpan(t *testing.T) {
	const day = 24 * time.Hour
	for _, tt := range []struct {
		span time.Duration
		want string
	}{
		{0, unitDay}, {10 * day, unitDay}, {60 * day, unitDay},
		{61 * day, unitWeek}, {300 * day, unitWeek}, {730 * day, unitWeek},
		{3 * 365 * day, unitMonth}, {15 * 365 * day, unitMonth},
	} {
		if got := timelineUnit(tt.span); got != tt.want {
			t.Errorf("span %v: %s, want %s", tt.span, got, tt.want)
		}
	}
	// Weeks start on Monday; months on the 1st.
	from := time.Date(2023, 1, 4, 10, 0, 0, 0, time.UTC) // a Wednesday
	tl := newTimeline(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{})
	tl.add(from.UnixMilli(), true, "a")
	tl.add(from.AddDate(0, 10, 0).UnixMilli(), true, "a")
	r := tl.report("2y")
	if r.Unit != unitWeek || r.Buckets[0].Label != "2023-01-02" || r.Buckets[0].Start.Weekday() != time.Monday {
		t.Errorf("weeks: %s, first %+v", r.Unit, r.Buckets[0])
	}
	if r.GapsNote == "" || r.GapDays != 0 {
		t.Errorf("two rows in ten months cannot tell gaps: %q %d", r.GapsNote, r.GapDays)
	}
	tl.add(from.AddDate(3, 0, 0).UnixMilli(), true, "a")
	if r := tl.report("2y"); r.Unit != unitMonth || r.Buckets[0].Label != "2023-01" || len(r.Buckets) != 37 {
		t.Errorf("months: %s, %d buckets, first %+v", r.Unit, len(r.Buckets), r.Buckets[0])
	}
}

// Memory stays bounded: instants past maxInstants are counted by
// Misra-Gries, which still finds a cluster, as a lower bound.
func TestTimelineInstantsStayBounded(t *testing.T) {
	now := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	tl := newTimeline(now, now.AddDate(-2, 0, 0))
	at := now.Add(-time.Hour).UnixMilli()
	for i := 0; i < 3*maxInstants; i++ {
		tl.add(now.Add(-time.Duration(i+2)*time.Second).UnixMilli(), true, fmt.Sprintf("e%d", i))
		if i%5 == 0 {
			tl.add(at, true, "x")
		}
	}
	if len(tl.inst.counts) > maxInstants || len(tl.names) > maxNames {
		t.Fatalf("%d instants, %d names kept", len(tl.inst.counts), len(tl.names))
	}
	r := tl.report("2y")
	if len(r.Clusters) != 1 || r.Clusters[0].At.UnixMilli() != at || r.Clusters[0].Exact || r.Clusters[0].N > int64(3*maxInstants/5) {
		t.Fatalf("clusters %+v", r.Clusters)
	}
	if !strings.Contains(strings.Join(r.Flags, "\n"), "at least ") {
		t.Errorf("a pruned count is a lower bound: %v", r.Flags)
	}
	if last := r.Names[len(r.Names)-1]; last.Name != "(other)" || len(r.Names) != topNames+1 {
		t.Errorf("names %v", r.Names)
	}
}

func TestParseHorizon(t *testing.T) {
	now := time.Date(2024, 6, 15, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2y":         time.Date(2022, 6, 15, 12, 0, 0, 0, time.UTC),
		"18m":        time.Date(2022, 12, 15, 12, 0, 0, 0, time.UTC),
		"90d":        now.AddDate(0, 0, -90),
		"2023-01-01": time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseHorizon(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := parseHorizon("soon", now); err == nil {
		t.Error("soon parsed")
	}
}

// eventsPipeline writes rows as NDJSON (no ts: no timestamp) and a
// pipeline mapping them to track calls; mapExtra is more lines of the map,
// extra more transforms, sink the sink block.
func eventsPipeline(t *testing.T, rows []map[string]string, mapExtra, extra, sink string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for _, r := range rows {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	writeFile(t, filepath.Join(dir, "events.ndjson"), b.String())
	cfg := filepath.Join(dir, "p.yaml")
	writeFile(t, cfg, "name: events\n"+
		"source:\n  file:\n    path: "+filepath.Join(dir, "events.ndjson")+"\n"+
		"transforms:\n  - map:\n      type: track\n      event: event\n      userId: user_id\n      timestamp: ts\n"+mapExtra+
		"  - timestamp: {field: timestamp, on_missing: now}\n"+extra+
		"sink:\n"+sink+
		"state: "+filepath.Join(dir, "state")+"\n")
	return cfg
}

// segmentSink posts to Segment with an unset write key: preview and
// validate send nothing and need none.
func segmentSink(t *testing.T, request string) string {
	t.Helper()
	unsetenv(t, writeKeyVar)
	s := "  segment:\n    write_key: ${" + writeKeyVar + "}\n"
	if request != "" {
		s += "    request: " + request + "\n"
	}
	return s
}

// preview over generated data, end to end: rows a day with a gap, and
// rows without a timestamp filled with the time of reading (on_missing:
// now) piling up on one instant at now. --all reads them all; --report
// writes the page.
func TestPreviewShowsTheTimeline(t *testing.T) {
	now := time.Now().UTC()
	var rows []map[string]string
	for d := 30; d >= 1; d-- {
		if d >= 12 && d <= 13 {
			continue
		}
		for i := 0; i < 20; i++ {
			at := now.AddDate(0, 0, -d).Truncate(24 * time.Hour).Add(time.Duration(i) * time.Hour)
			rows = append(rows, map[string]string{"user_id": "u1", "event": "Order Completed", "ts": at.Format(time.RFC3339)})
		}
	}
	for i := 0; i < 100; i++ {
		rows = append(rows, map[string]string{"user_id": "u2", "event": "Signed Up"})
	}
	cfg := eventsPipeline(t, rows, "", "", "  file: {path: out.ndjson}\n")
	html := filepath.Join(t.TempDir(), "preview.html")
	code, out, errs := runCLI(t, "", "preview", "--all", "--show", "0", "--report", html, cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	gap := now.AddDate(0, 0, -13).Format("2006-01-02") + " .. " + now.AddDate(0, 0, -12).Format("2006-01-02")
	for _, w := range []string{
		"read 660 rows: 660 would be sent",
		"# timeline: 660 rows with a timestamp, " + now.AddDate(0, 0, -30).Format("2006-01-02") + " .. " + now.Format("2006-01-02") + " UTC, per day",
		"100 ! now,cluster\n",
		"100 rows (15.2%) at or after now",
		"100 rows (15.2%) at one instant",
		"2 days with no events inside the span: " + gap,
		"  Order Completed",
		"# report: " + html,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("preview lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "# duration") || strings.Contains(out, "# destinations") {
		t.Errorf("a file sink has no destinations nor rate:\n%s", out)
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<svg id=\"timeline\"") {
		t.Fatalf("report: %v\n%s", err, page)
	}
	for _, external := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(string(page), external) {
			t.Errorf("the report fetches something (%s): it must open offline", external)
		}
	}

	// Without --all, --rows bounds the rows read; the timeline covers them.
	code, out, _ = runCLI(t, "", "preview", "--rows", "50", "--show", "0", cfg)
	if code != 0 || !strings.Contains(out, "read 50 rows") || !strings.Contains(out, "# timeline: ") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if code, _, errs := runCLI(t, "", "preview", "--horizon", "soon", cfg); code != exitConfig || !strings.Contains(errs, "--horizon") {
		t.Errorf("bad --horizon: exit %d %s", code, errs)
	}
}
