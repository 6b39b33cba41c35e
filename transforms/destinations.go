package transforms

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// DestinationLimit is a destination of Segment's catalog with a known limit
// on the age of the events it takes: a backfill's older rows reach Segment
// and are then dropped (or refused) on their way to it. Keys are the names
// Segment's integrations object takes for it, as its catalog page gives
// them ("Refer to it as ... in the Integrations object").
type DestinationLimit struct {
	Name string
	Keys []string
	// MaxAge: events older than this (at sending) are dropped; 0 for none.
	MaxAge time.Duration
	// NotBefore: events before this time are refused; zero for none.
	NotBefore time.Time
	// Limit says the limit in words, after "drops events older than" or
	// the like: Verb and Limit make the warning's sentence.
	Verb, Limit string
	// Note is what else to know, or how the destination takes old data.
	Note string
}

// DestinationLimits are the destinations whose limits on old events are
// known. Destinations that take events of any age are listed too (MaxAge
// 0), with how they do it, so that the table says what was checked.
// Device-mode destinations (Google Ads (Gtag), Google Analytics 4 Web, ...)
// are not listed: they run in a browser or an app, and messages sent to
// Segment's HTTP API, as a backfill's are, never reach them.
var DestinationLimits = []DestinationLimit{
	{
		// Universal Analytics took hits through Measurement Protocol v1,
		// whose queue time (qt) moves a hit back at most 4 hours: older
		// hits are dropped. Google stopped processing Universal Analytics
		// hits on 1 July 2023 (360 properties: 1 October 2023), so it takes
		// no historical data at all.
		// https://www.simoahava.com/analytics/send-hits-past-google-analytics/
		// https://support.google.com/analytics/answer/11583528
		// Segment's names: the destination is "Google Universal Analytics",
		// formerly "Google Analytics" (segmentio/segment-docs,
		// src/connections/destinations/catalog/google-analytics/index.md).
		Name: "Google Universal Analytics", Keys: []string{"Google Analytics", "Google Universal Analytics"},
		MaxAge: 4 * time.Hour, Verb: "drops events older than", Limit: "4 hours",
		Note: "takes no historical data: Measurement Protocol v1 moves a hit back 4 hours at most, and Universal Analytics stopped processing hits in July 2023",
	},
	{
		// GA4's Measurement Protocol backdates events (timestamp_micros) up
		// to 72 hours; older ones are not recorded.
		// https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events
		// Segment's Google Analytics 4 Cloud sends through it: "Refer to it
		// as Actions Google Analytic 4, or Actions Google Analytics 4, or
		// Google Analytics 4, or Google Analytics 4 Cloud in the
		// Integrations object".
		// https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-google-analytics-4
		Name: "Google Analytics 4", Keys: []string{"Google Analytics 4", "Google Analytics 4 Cloud", "Actions Google Analytic 4", "Actions Google Analytics 4"},
		MaxAge: 72 * time.Hour, Verb: "drops events older than", Limit: "72 hours",
	},
	{
		// "The event_time can be up to 7 days before you send an event to
		// Facebook. If any event_time in data is greater than 7 days in the
		// past, we return an error for the entire request and process no
		// events."
		// https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event/
		// Segment: "Refer to it as Facebook Conversions API (Actions) in the
		// Integrations object"; the classic destination is "Facebook
		// Conversions API" (formerly Facebook Pixel Server Side).
		// https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-facebook-conversions-api
		// https://www.twilio.com/docs/segment/connections/destinations/catalog/facebook-pixel-server-side
		Name: "Facebook Conversions API", Keys: []string{"Facebook Conversions API (Actions)", "Facebook Conversions API", "Facebook Pixel Server Side"},
		MaxAge: 7 * 24 * time.Hour, Verb: "refuses events older than", Limit: "7 days",
		Note: "one event older than 7 days fails the whole request it is sent in",
	},
	{
		// An uploaded conversion is recorded only inside its conversion
		// action's click-through window (at most 90 days; 30 by default);
		// older ones fail with EXPIRED_EVENT.
		// https://support.google.com/google-ads/answer/3123169
		// https://developers.google.com/google-ads/api/reference/rpc/latest/ConversionUploadErrorEnum.ConversionUploadError
		// Segment's Google Ads Conversions: "Refer to it as Actions Google
		// Enhanced Conversions, Google Enhanced Conversions, Google Ads
		// Conversions in the Integrations object".
		// https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-google-enhanced-conversions
		Name: "Google Ads Conversions", Keys: []string{"Google Ads Conversions", "Google Enhanced Conversions", "Actions Google Enhanced Conversions"},
		MaxAge: 90 * 24 * time.Hour, Verb: "drops conversions older than", Limit: "90 days",
		Note: "90 days is the longest click-through window a conversion action takes (30 by default), counted from the ad click",
	},
	{
		// Mixpanel's /track takes the last 5 days only; /import takes any
		// time after 1971-01-01 (and refuses earlier ones).
		// https://docs.mixpanel.com/troubleshooting/errors/historical-events-not-appearing
		// Segment's Mixpanel (Actions) sends events to /import
		// (segmentio/action-destinations,
		// packages/destination-actions/src/destinations/mixpanel: trackEvent
		// posts to /import?strict=1); the classic destination needs the
		// project's API Secret for events older than 5 days.
		// "Refer to it as Mixpanel (Actions)"; classic: "Mixpanel, or
		// Mixpanel (Legacy)".
		// https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-mixpanel
		Name: "Mixpanel", Keys: []string{"Mixpanel (Actions)", "Mixpanel", "Mixpanel (Legacy)"},
		NotBefore: time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC), Verb: "refuses events before", Limit: "1971-01-01",
		Note: "any age after 1971-01-01, through /import: Mixpanel (Actions) uses it; the classic destination needs the API Secret for events older than 5 days",
	},
	{
		// Amplitude takes historical events through its APIs (its own
		// backfill guide uses the Batch Event Upload API); no age limit.
		// https://amplitude.com/docs/data/data-backfill
		// Segment: "Refer to it as Actions Amplitude in the Integrations
		// object"; the classic destination is "Amplitude".
		// https://www.twilio.com/docs/segment/connections/destinations/catalog/actions-amplitude
		Name: "Amplitude", Keys: []string{"Actions Amplitude", "Amplitude", "Amplitude (Actions)"},
		Note: "any age; backfilled events change first-seen dates and count toward the monthly event volume",
	},
}

// CodeHistoricalData is the code of validate's warning that the messages
// reach destinations that drop old events.
const CodeHistoricalData = "historical_data"

// Limited reports whether the destination refuses some events by time.
func (d *DestinationLimit) Limited() bool { return d.MaxAge > 0 || !d.NotBefore.IsZero() }

// Refuses reports whether the destination refuses an event at t sent at now.
func (d *DestinationLimit) Refuses(t, now time.Time) bool {
	if d.MaxAge > 0 && now.Sub(t) > d.MaxAge {
		return true
	}
	return !d.NotBefore.IsZero() && t.Before(d.NotBefore)
}

// Rule is the limit in a sentence: "drops events older than 72 hours".
func (d *DestinationLimit) Rule() string { return d.Verb + " " + d.Limit }

// Reach is whether an integrations object sends a message to a destination.
type Reach uint8

const (
	NotReached Reach = iota
	// ReachedByAll: the destination is not named, and All is true or
	// unset (Segment's default): every destination connected to the
	// source gets the message.
	ReachedByAll
	// ReachedByName: the destination is named, true or with options.
	ReachedByName
	// ReachedPerRow: each row's own integrations object decides (a
	// from_column, merge mode, or a map of integrations): only the data
	// says.
	ReachedPerRow
)

// ReachOf reads a message's integrations object (nil: none, Segment's
// default All: true). A destination named with false is off; named with
// true or an options object it is on; unnamed, All decides.
func (d *DestinationLimit) ReachOf(obj map[string]any) Reach {
	for _, k := range d.Keys {
		if v, ok := obj[k]; ok {
			if v == false {
				return NotReached
			}
			return ReachedByName
		}
	}
	if obj["All"] == false {
		return NotReached
	}
	return ReachedByAll
}

// IntegrationsUse is what a pipeline's transforms make of each message's
// integrations object, read from the pipeline file alone.
type IntegrationsUse struct {
	// Keys are the destinations (and All) the integrations transforms
	// set, the last one winning.
	Keys map[string]any
	// PerRow, when not empty, says why the data's own objects decide for
	// the destinations Keys does not name.
	PerRow string
	// Conf is the last integrations transform, Index its place among the
	// transforms; nil when there is none.
	Conf  *config.Conf
	Index int
}

// ReadIntegrations follows the integrations object through a pipeline's
// transforms: a map or expand that brings one from the data, then each
// integrations transform (replace, merge, from_column) in order.
func ReadIntegrations(ts []*config.PluginConf) IntegrationsUse {
	u := IntegrationsUse{Keys: map[string]any{}, Index: -1}
	for i, t := range ts {
		switch t.Name {
		case "map":
			if t.Conf.Has(record.Integrations) {
				u.Keys, u.PerRow = map[string]any{}, "the map transform sets integrations from the data"
			}
		case "expand":
			u.Keys, u.PerRow = map[string]any{}, "the expand transform may bring each message's integrations"
		case "integrations":
			u.Conf, u.Index = t.Conf, i
			from, merge := t.Conf.String("from_column"), t.Conf.String("mode") == "merge"
			switch {
			case from != "":
				u.Keys, u.PerRow = map[string]any{}, fmt.Sprintf("each row's object comes from column %q", from)
			case !merge:
				u.Keys, u.PerRow = map[string]any{}, ""
			}
			for _, e := range append(t.Conf.Map("destinations"), t.Conf.Extra()...) {
				u.Keys[e.Key] = e.Value
			}
		}
	}
	return u
}

// ReachOf says whether the pipeline's messages reach d.
func (u *IntegrationsUse) ReachOf(d *DestinationLimit) Reach {
	for _, k := range d.Keys {
		if _, ok := u.Keys[k]; ok {
			return d.ReachOf(u.Keys)
		}
	}
	if _, ok := u.Keys["All"]; !ok && u.PerRow != "" {
		return ReachedPerRow
	}
	return d.ReachOf(u.Keys)
}

// ParseIntegrations reads a message's integrations object (JSON text); an
// empty or unreadable one is Segment's default (nil).
func ParseIntegrations(text []byte) map[string]any {
	var obj map[string]any
	if len(text) == 0 || json.Unmarshal(text, &obj) != nil {
		return nil
	}
	return obj
}

// Every name the table knows is a destination name Segment knows: a key
// such as "Google Analytics 4 Cloud" is no near miss of "Google Analytics".
func init() {
	for _, d := range DestinationLimits {
		for _, k := range d.Keys {
			if !contains(knownDestinations, k) {
				knownDestinations = append(knownDestinations, k)
			}
		}
	}
}
