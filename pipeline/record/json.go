// Package record holds the record contract between transforms and sinks:
// after mapping, a record's columns are named by their path in the Segment
// message ("type", "userId", "properties.plan", "context.ip"), and a whole
// JSON object travels in a column of the JSON extension type defined here
// (arrow/go/v15 has no canonical JSON type).
package record

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// JSONType is a string column whose values are JSON texts, spliced into
// messages as they are.
type JSONType struct {
	arrow.ExtensionBase
}

// JSON is the one instance of JSONType.
var JSON = &JSONType{ExtensionBase: arrow.ExtensionBase{Storage: arrow.BinaryTypes.String}}

func init() {
	if err := arrow.RegisterExtensionType(JSON); err != nil {
		panic(err)
	}
}

func (*JSONType) ArrayType() reflect.Type { return reflect.TypeOf(JSONArray{}) }
func (*JSONType) ExtensionName() string   { return "backfill.json" }
func (*JSONType) Serialize() string       { return "" }
func (*JSONType) Deserialize(storage arrow.DataType, _ string) (arrow.ExtensionType, error) {
	if !arrow.TypeEqual(storage, arrow.BinaryTypes.String) {
		return nil, fmt.Errorf("backfill.json: storage must be utf8, got %s", storage)
	}
	return JSON, nil
}
func (*JSONType) ExtensionEquals(o arrow.ExtensionType) bool {
	return o.ExtensionName() == "backfill.json"
}
func (*JSONType) String() string { return "json" }

// JSONArray is an array of JSON texts.
type JSONArray struct {
	array.ExtensionArrayBase
}

// Value returns row i's JSON text ("" when null).
func (a *JSONArray) Value(i int) string { return a.Storage().(*array.String).Value(i) }

// ValueStr returns row i's JSON text, or "(null)", as Arrow's printers expect.
func (a *JSONArray) ValueStr(i int) string {
	if a.IsNull(i) {
		return "(null)"
	}
	return a.Value(i)
}

// ValueBytes returns row i's JSON text without copying.
func (a *JSONArray) ValueBytes(i int) []byte {
	s := a.Storage().(*array.String)
	return s.ValueBytes()[s.ValueOffset(i):s.ValueOffset(i+1)]
}

// IsJSON reports whether dt is the JSON extension type.
func IsJSON(dt arrow.DataType) bool {
	e, ok := dt.(arrow.ExtensionType)
	return ok && e.ExtensionName() == "backfill.json"
}

// NewJSONBuilder builds a JSON column. Append texts with AppendJSON.
func NewJSONBuilder(mem memory.Allocator) *array.ExtensionBuilder {
	return array.NewExtensionBuilder(mem, JSON)
}

// AppendJSON appends one JSON text to a builder made by NewJSONBuilder.
func AppendJSON(b *array.ExtensionBuilder, text []byte) {
	b.StorageBuilder().(*array.StringBuilder).BinaryBuilder.Append(text)
}

// JSONField is a field of the JSON type.
func JSONField(name string, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: JSON, Nullable: nullable}
}

// Valid reports whether text is one JSON value (for column builders that
// take text from outside).
func Valid(text []byte) bool { return json.Valid(text) }

// Segment message paths the sinks and transforms agree on.
const (
	Type         = "type"
	UserID       = "userId"
	AnonymousID  = "anonymousId"
	Event        = "event"
	Name         = "name"
	GroupID      = "groupId"
	PreviousID   = "previousId"
	Timestamp    = "timestamp"
	MessageID    = "messageId"
	Properties   = "properties"
	Traits       = "traits"
	Context      = "context"
	Integrations = "integrations"
)

// SplitPath splits "properties.plan" into ["properties", "plan"]. A dot
// inside a key is written as "\.".
func SplitPath(path string) []string {
	if !strings.Contains(path, `\`) {
		return strings.Split(path, ".")
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(path); i++ {
		switch {
		case path[i] == '\\' && i+1 < len(path) && path[i+1] == '.':
			cur.WriteByte('.')
			i++
		case path[i] == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(path[i])
		}
	}
	return append(parts, cur.String())
}
