package transforms

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill/pipeline/config"
)

func limit(t *testing.T, name string) *DestinationLimit {
	t.Helper()
	for i := range DestinationLimits {
		if DestinationLimits[i].Name == name {
			return &DestinationLimits[i]
		}
	}
	t.Fatalf("no limit for %s", name)
	return nil
}

// Segment's integrations object: a destination named false is off, named
// true or with options it is on, unnamed it follows All (true by default).
func TestDestinationReach(t *testing.T) {
	ga4 := limit(t, "Google Analytics 4")
	for _, tt := range []struct {
		obj  string
		want Reach
	}{
		{``, ReachedByAll},
		{`{}`, ReachedByAll},
		{`{"All": true}`, ReachedByAll},
		{`{"All": false}`, NotReached},
		{`{"All": false, "Google Analytics 4": true}`, ReachedByName},
		{`{"All": false, "Actions Google Analytic 4": {"measurementId": "G-1"}}`, ReachedByName},
		{`{"Google Analytics 4 Cloud": false}`, NotReached},
		{`{"google analytics 4": true, "All": false}`, NotReached}, // names are case-sensitive
		{`not json`, ReachedByAll},
	} {
		if got := ga4.ReachOf(ParseIntegrations([]byte(tt.obj))); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.obj, got, tt.want)
		}
	}
}

func TestDestinationRefuses(t *testing.T) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		dest string
		at   time.Time
		want bool
	}{
		{"Google Analytics 4", now.Add(-72 * time.Hour), false},
		{"Google Analytics 4", now.Add(-72*time.Hour - time.Millisecond), true},
		{"Facebook Conversions API", now.AddDate(0, 0, -6), false},
		{"Facebook Conversions API", now.AddDate(0, 0, -8), true},
		{"Google Ads Conversions", now.AddDate(0, 0, -89), false},
		{"Google Ads Conversions", now.AddDate(0, 0, -91), true},
		{"Google Universal Analytics", now.Add(-5 * time.Hour), true},
		{"Mixpanel", now.AddDate(-20, 0, 0), false},
		{"Mixpanel", time.Unix(0, 0), true}, // 1970: a zero read as a time
		{"Amplitude", time.Unix(0, 0), false},
	} {
		if got := limit(t, tt.dest).Refuses(tt.at, now); got != tt.want {
			t.Errorf("%s at %v: %v", tt.dest, tt.at, got)
		}
	}
	for _, d := range DestinationLimits {
		if d.Limited() && (d.Verb == "" || d.Limit == "") || len(d.Keys) == 0 {
			t.Errorf("%s: incomplete entry %+v", d.Name, d)
		}
	}
}

func loadTransforms(t *testing.T, transforms string) []*config.PluginConf {
	t.Helper()
	doc := "name: test\nsource: {stub: {}}\nsink: {stub: {}}\ntransforms:\n" + transforms
	cfg, err := config.Load("p.yaml", []byte(doc), config.LoadOptions{Registry: testRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Transforms
}

// ReadIntegrations follows the object through the transforms: replace
// sets it, merge adds to it, from_column and a map of integrations leave
// the unnamed destinations to each row.
func TestReadIntegrations(t *testing.T) {
	ga4, fb := limit(t, "Google Analytics 4"), limit(t, "Facebook Conversions API")
	for _, tt := range []struct {
		name, transforms string
		ga4, fb          Reach
	}{
		{"none", "  - map: {type: track, event: e}\n", ReachedByAll, ReachedByAll},
		{"All false", "  - integrations: {All: false, Google Analytics 4: true}\n", ReachedByName, NotReached},
		{"under destinations", "  - integrations: {destinations: {Facebook Conversions API (Actions): false}}\n", ReachedByAll, NotReached},
		{"replaced", "  - integrations: {All: false}\n  - integrations: {Amplitude: true}\n", ReachedByAll, ReachedByAll},
		{"merged", "  - integrations: {All: false}\n  - integrations: {mode: merge, Google Analytics 4: true}\n", ReachedByName, NotReached},
		{"from a column", "  - integrations: {from_column: d, Google Analytics 4: false}\n", NotReached, ReachedPerRow},
		{"from a column, All set", "  - integrations: {from_column: d, All: false}\n", NotReached, NotReached},
		{"mapped", "  - map: {type: track, event: e, integrations: i}\n", ReachedPerRow, ReachedPerRow},
		{"mapped, then replaced", "  - map: {type: track, event: e, integrations: i}\n  - integrations: {All: true}\n", ReachedByAll, ReachedByAll},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := ReadIntegrations(loadTransforms(t, tt.transforms))
			if g, f := u.ReachOf(ga4), u.ReachOf(fb); g != tt.ga4 || f != tt.fb {
				t.Errorf("GA4 %d, Facebook %d; want %d, %d", g, f, tt.ga4, tt.fb)
			}
		})
	}
}

// The table's names are destination names Segment knows: no "did you
// mean" for them.
func TestDestinationNamesAreKnown(t *testing.T) {
	for _, d := range DestinationLimits {
		for _, k := range d.Keys {
			var logs bytes.Buffer
			_, err := buildTransformEnv(nil, "integrations", "All: false\n"+k+": true", slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil || strings.Contains(logs.String(), "did you mean") {
				t.Errorf("%s: %v %s", k, err, logs.String())
			}
		}
	}
}
