package record

// Which top-level message fields each Segment message type takes, after
// Segment's public Spec (segment.com/docs/connections/spec/...):
//
//	common  (every type) type, userId, anonymousId, context, integrations,
//	        timestamp, messageId, sentAt
//	track    event, properties                      (spec/track)
//	page     name, properties                       (spec/page)
//	screen   name, properties                       (spec/screen)
//	identify traits                                 (spec/identify)
//	group    groupId, traits                        (spec/group)
//	alias    previousId, userId (required on alias) (spec/alias)
//
// Segment ignores a type-specific field on a type that does not take it
// (traits at the top level of a track call: a track call's user traits
// belong in context.traits, spec/track and spec/common). The map transform
// refuses such a field when the type is a constant, and the sinks' encoder
// rejects a row that carries one, so nothing is dropped silently. Fields
// outside this table (originalTimestamp, channel, ... in a replayed
// archive) are not judged here.

// Segment's message types, in the Spec's order.
const (
	TypeIdentify = "identify"
	TypeTrack    = "track"
	TypePage     = "page"
	TypeScreen   = "screen"
	TypeGroup    = "group"
	TypeAlias    = "alias"
)

// MessageTypes are Segment's message types, in the Spec's order.
var MessageTypes = []string{TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias}

// CommonFields are the top-level fields every message type takes (the
// Spec's common fields that a sender sets).
var CommonFields = []string{Type, UserID, AnonymousID, Context, Integrations, Timestamp, MessageID, SentAt}

// SentAt is the time a message is sent: the Segment sink stamps it on each
// message, fresh on every attempt (and on the request).
const SentAt = "sentAt"

// TypeFields are the top-level fields each message type takes beyond the
// common ones. userId is common, but alias requires it.
var TypeFields = map[string][]string{
	TypeTrack:    {Event, Properties},
	TypePage:     {Name, Properties},
	TypeScreen:   {Name, Properties},
	TypeIdentify: {Traits},
	TypeGroup:    {GroupID, Traits},
	TypeAlias:    {PreviousID, UserID},
}

// typedFields are the fields only some types take: the ones Takes judges.
var typedFields = map[string]bool{Event: true, Name: true, Properties: true, Traits: true, GroupID: true, PreviousID: true}

// Takes reports whether a message of type typ carries the top-level field.
// Common fields, fields outside the table and unknown types are taken:
// only a type-specific field on a known type that does not take it is not.
func Takes(typ, field string) bool {
	fields, known := TypeFields[typ]
	if !known || !typedFields[field] {
		return true
	}
	for _, f := range fields {
		if f == field {
			return true
		}
	}
	return false
}

// NotTaken says why a message of type typ cannot carry the top-level
// field, and where its values belong instead; both are "" when it can.
// For example ("track", "traits") gives "track messages carry no traits:
// Segment ignores top-level traits on track" and "map them to
// context.traits".
func NotTaken(typ, field string) (why, hint string) {
	if Takes(typ, field) {
		return "", ""
	}
	why = typ + " messages carry no " + field + ": Segment ignores top-level " + field + " on " + typ
	switch field {
	case Traits:
		hint = "map them to context.traits"
	case Properties:
		switch typ {
		case TypeIdentify, TypeGroup:
			hint = "map them to traits"
		default:
			hint = "alias takes only previousId and userId; send them on a track"
		}
	case Name:
		switch typ {
		case TypeTrack:
			hint = "map it to properties.name"
		case TypeIdentify, TypeGroup:
			hint = "map it to traits.name"
		default:
			hint = "only page and screen take name"
		}
	case Event:
		switch typ {
		case TypePage, TypeScreen:
			hint = "page and screen take name; map it to name or properties.event"
		default:
			hint = "only track takes event"
		}
	case GroupID:
		hint = "map it to context.groupId"
	case PreviousID:
		hint = "only alias takes previousId"
	}
	return why, hint
}
