package record

import (
	"strings"
	"testing"
)

// The table follows Segment's Spec page by page: each type takes the
// common fields and its own, and no other type-specific field.
func TestTypeFields(t *testing.T) {
	own := map[string]string{
		TypeTrack:    "event properties",
		TypePage:     "name properties",
		TypeScreen:   "name properties",
		TypeIdentify: "traits",
		TypeGroup:    "groupId traits",
		TypeAlias:    "previousId",
	}
	typed := []string{Event, Name, Properties, Traits, GroupID, PreviousID}
	for _, typ := range MessageTypes {
		for _, f := range CommonFields {
			if !Takes(typ, f) {
				t.Errorf("%s does not take the common field %s", typ, f)
			}
		}
		for _, f := range typed {
			want := strings.Contains(" "+own[typ]+" ", " "+f+" ")
			if Takes(typ, f) != want {
				t.Errorf("Takes(%s, %s) = %v, want %v", typ, f, !want, want)
			}
			why, hint := NotTaken(typ, f)
			if (why == "") != want || !want && hint == "" {
				t.Errorf("NotTaken(%s, %s) = %q, %q", typ, f, why, hint)
			}
		}
	}
	if why, hint := NotTaken(TypeTrack, Traits); why != "track messages carry no traits: Segment ignores top-level traits on track" || hint != "map them to context.traits" {
		t.Errorf("track traits: %q, %q", why, hint)
	}
	// Fields outside the table, and unknown types, are not judged here.
	if !Takes(TypeTrack, "originalTimestamp") || !Takes("bogus", Traits) {
		t.Error("judged a field or type outside the table")
	}
}
