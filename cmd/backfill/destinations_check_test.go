package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// rowsAt makes n rows of one event at t (zero: no timestamp).
func rowsAt(n int, event string, at time.Time) []map[string]string {
	var out []map[string]string
	for i := 0; i < n; i++ {
		r := map[string]string{"user_id": "u1", "event": event}
		if !at.IsZero() {
			r["ts"] = at.Add(time.Duration(i) * time.Second).Format(time.RFC3339)
		}
		out = append(out, r)
	}
	return out
}

// GA4 named in integrations: preview counts exactly the rows older than
// 72 hours (not the recent ones, nor those without a timestamp, which
// Segment files when received), with their first and last days.
func TestPreviewWarnsGA4WithTheRowsOlderThan72Hours(t *testing.T) {
	now := time.Now().UTC()
	old := now.Add(-100 * time.Hour).Truncate(time.Hour)
	older := now.AddDate(0, 0, -40).Truncate(time.Hour)
	var rows []map[string]string
	rows = append(rows, rowsAt(25, "Order Completed", older)...)
	rows = append(rows, rowsAt(12, "Order Completed", old)...)
	rows = append(rows, rowsAt(13, "Order Completed", now.Add(-24*time.Hour))...)
	rows = append(rows, rowsAt(5, "Order Completed", time.Time{})...)
	integrations := "  - integrations:\n      All: false\n      Google Analytics 4: true\n      Amplitude: true\n"
	cfg := eventsPipeline(t, rows, "", integrations, segmentSink(t, ""))
	code, out, errs := runCLI(t, "", "preview", "--all", "--show", "0", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	want := "warning: Google Analytics 4 drops events older than 72 hours: 37 of 55 rows (" +
		older.Format("2006-01-02") + " .. " + old.Format("2006-01-02") + ")\n"
	if !strings.Contains(out, want) {
		t.Fatalf("preview lacks\n%s\ngot:\n%s", want, out)
	}
	for _, not := range []string{"All: true", "Facebook", "Amplitude drops", "Universal"} {
		if strings.Contains(out, not) {
			t.Errorf("preview mentions %q, which All: false keeps away:\n%s", not, out)
		}
	}
	// The same pipeline, validated: one warning line about it (besides the
	// unset write key's), exit 0.
	code, stdout, stderr := runCLI(t, "", "validate", cfg)
	if code != 0 || strings.Count(stderr, "warning:") != 2 || !strings.Contains(stderr, writeKeyVar+" is not set") ||
		!strings.Contains(stderr, "/transforms/2/integrations: integrations sends to destinations that drop old events: Google Analytics 4 drops events older than 72 hours") {
		t.Fatalf("validate: exit %d\n%s%s", code, stdout, stderr)
	}
}

// With no integrations transform, Segment's default (All: true) reaches
// every connected destination: preview names each that drops rows, says
// they are reached through All, and says to use All: false.
func TestPreviewWarnsAllTrue(t *testing.T) {
	now := time.Now().UTC()
	tenDays := now.AddDate(0, 0, -10).Truncate(time.Hour) // its 30 rows stay in one day
	rows := rowsAt(30, "Order Completed", tenDays)
	rows = append(rows, rowsAt(10, "Order Completed", now.Add(-2*time.Hour))...)
	cfg := eventsPipeline(t, rows, "", "", segmentSink(t, "{rate_limit: 10/s}"))
	code, out, errs := runCLI(t, "", "preview", "--all", "--show", "0", cfg)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	day := tenDays.Format("2006-01-02")
	for _, w := range []string{
		"warning: Google Analytics 4 drops events older than 72 hours: 30 of 40 rows (" + day + " .. " + day + "), reached through All: true\n",
		"warning: Facebook Conversions API refuses events older than 7 days: 30 of 40 rows (" + day + " .. " + day + "), reached through All: true;",
		"warning: Google Universal Analytics drops events older than 4 hours: 30 of 40 rows",
		"sends to every destination connected to the source: for historical data set All: false and name the destinations that take old events",
		"# duration: 40 rows at 10/s: about 4 s\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("preview lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "Google Ads Conversions") || strings.Contains(out, "Mixpanel") {
		t.Errorf("10-day-old rows are within Google Ads' 90 days and Mixpanel's any age:\n%s", out)
	}
}

// validate warns once, exit 0, when the messages reach destinations that
// drop old events: named, through All: true or Segment's default; only
// preview can count rows whose own integrations decide. Pipelines that
// keep old events away, and collectors other than Segment, get none.
func TestValidateWarnsOnceAboutDestinationsThatDropOldEvents(t *testing.T) {
	rows := rowsAt(2, "Order Completed", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, r := range rows {
		r["dest"] = `{"Amplitude": true}`
	}
	for _, tt := range []struct {
		name, mapExtra, integrations, sink string
		want                               string // "" for no warning
	}{
		{"no integrations transform", "", "", "",
			"with no integrations transform, Segment's default (All: true) sends every message to every destination connected to the source, and some drop old events: Google Universal Analytics (4 hours), Google Analytics 4 (72 hours), Facebook Conversions API (7 days), Google Ads Conversions (90 days) (for historical data set All: false and name the destinations that take old events; `backfill preview --all` counts the rows affected)"},
		{"All: true written", "", "  - integrations: {destinations: {All: true, Amplitude: true, Facebook Conversions API (Actions): false}}\n", "",
			"integrations All: true sends every message to every destination connected to the source, and some drop old events: Google Universal Analytics (4 hours), Google Analytics 4 (72 hours), Google Ads Conversions (90 days)"},
		{"named through an alias", "", "  - integrations: {All: false, Google Analytics 4 Cloud: true, Google Enhanced Conversions: {}}\n", "",
			"integrations sends to destinations that drop old events: Google Analytics 4 drops events older than 72 hours; Google Ads Conversions drops conversions older than 90 days (`backfill preview --all` counts the rows affected)"},
		{"per row", "      properties: {dest: dest}\n", "  - integrations: {from_column: properties.dest, Warehouses: {all: false}}\n", "",
			`each row's object comes from column "properties.dest": whether rows reach Google Universal Analytics, Google Analytics 4, Facebook Conversions API, Google Ads Conversions only preview can count`},
		{"kept away", "", "  - integrations: {All: false, Amplitude: true, Mixpanel (Actions): true}\n", "", ""},
		{"another collector", "", "", "  segment:\n    endpoint: http://127.0.0.1:1\n    write_key: ${" + writeKeyVar + "}\n", ""},
		{"a file", "", "", "  file: {path: out.ndjson}\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := tt.sink
			if sink == "" {
				sink = segmentSink(t, "")
			}
			unsetenv(t, writeKeyVar)
			cfg := eventsPipeline(t, rows, tt.mapExtra, tt.integrations, sink)
			code, stdout, stderr := runCLI(t, "", "validate", cfg)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			// the unset write key is the other warning, when the sink is Segment's
			n := strings.Count(stderr, "warning:") - strings.Count(stderr, "is not set")
			if tt.want == "" {
				if n != 0 {
					t.Fatalf("warned:\n%s", stderr)
				}
				return
			}
			if n != 1 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("want one warning with\n%s\ngot:\n%s", tt.want, stderr)
			}
			code, stdout, _ = runCLI(t, "", "validate", "--format", "json", cfg)
			var res struct {
				Valid    bool
				Warnings []map[string]any
			}
			if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != 0 || !res.Valid {
				t.Fatalf("json: exit %d %v\n%s", code, err, stdout)
			}
			found := 0
			for _, w := range res.Warnings {
				if w["code"] == "historical_data" {
					found++
				}
			}
			if found != 1 {
				t.Errorf("json warnings %v", res.Warnings)
			}
		})
	}
}
