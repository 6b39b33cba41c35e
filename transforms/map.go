package transforms

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// ConventionSegmentWarehouse maps the columns of a Segment warehouse table
// (user_id, event_text, context_page_url, ...) back to message paths.
const ConventionSegmentWarehouse = "segment-warehouse"

// scalarKeys are message fields that take one value each.
var scalarKeys = []string{record.Type, record.UserID, record.AnonymousID, record.Event, record.Name,
	record.GroupID, record.PreviousID, record.Timestamp, record.MessageID}

// objectKeys are message fields that hold objects.
var objectKeys = []string{record.Properties, record.Traits, record.Context, record.Integrations}

var messageTypes = record.MessageTypes

func mapSpec() *config.Spec {
	var fields []*config.Field
	for _, k := range scalarKeys {
		desc := fmt.Sprintf("the message's %s: a column name, or {const: VALUE}", k)
		ex := any("customer_id")
		switch k {
		case record.Type:
			desc = "the message type: identify, track, page, screen, group or alias as a constant, a column name, or {column: NAME}"
			ex = "track"
		case record.Event:
			ex = "event_name"
		case record.Timestamp:
			ex = "created_at"
		case record.MessageID:
			ex = "order_id"
		}
		fields = append(fields, config.Any(k, desc).Optional().Example(ex))
	}
	for _, k := range objectKeys {
		fields = append(fields, config.Any(k, fmt.Sprintf(
			`the message's %s: a column holding the whole object (JSON or struct), "*" for every source column not mapped elsewhere, or an object whose keys map to a column name, {const: VALUE} or a nested object`, k)).
			Optional().Example(map[string]any{"total": "amount", "currency": map[string]any{"const": "USD"}}))
	}
	fields = append(fields,
		config.String("convention", "map the columns of a known table layout by convention; explicit keys override it").
			Optional().Enum(ConventionSegmentWarehouse),
		config.Bool("keep_ids", "with convention segment-warehouse: keep the table's id column as messageId (default: drop it, so a message_id transform derives a new one)").
			Default(false),
	)
	return config.NewSpec("set Segment message fields from source columns or constants", fields...).
		Rules(config.When("keep_ids", true).Requires("convention").
			Message("keep_ids applies only with convention "+ConventionSegmentWarehouse)).
		WithDescription(`The output record holds only the mapped columns, named by their message path
(userId, properties.total, context.ip), plus the internal columns (names
starting with "_") of the input. Columns are reused, not copied.
A plain string is a column name, except for type, where a message type name
(track, identify, ...) is a constant. {const: VALUE} is a constant of any YAML
type (an object or list becomes JSON); {column: NAME} is always a column.
With convention segment-warehouse, user_id, anonymous_id, event_text (or
event), timestamp, context_* (best effort: context_page_url -> context.page.url)
map back to message paths; received_at, sent_at, original_timestamp, uuid_ts,
loaded_at, uuid and id (unless keep_ids) are dropped; the other columns become
properties (track, page, screen) or traits (identify, group); an alias table's
other columns are an error (alias takes neither). The type is the type key, or
track when the table has an event_text or event column.

Each message type takes only its own fields, after Segment's Spec: track takes
event and properties; page and screen take name and properties; identify takes
traits; group takes groupId and traits; alias takes previousId and userId; and
every type takes userId, anonymousId, timestamp, messageId, context and
integrations. When type is a constant, mapping a field the type does not take
is an error, since Segment would drop it. Traits of a track, page or screen
call are not moved: a top-level traits there is refused, with the hint to
write context: {traits: {...}}, where Segment's Spec puts them. When the type
comes from a column, the sink rejects each row that carries a field its type
does not take (a null value there loses nothing and passes).`).
		WithExample("orders table to track calls", `type: track
event: {const: Order Completed}
userId: customer_id
timestamp: created_at
messageId: order_id
properties: {total: amount, currency: currency}
context: {ip: client_ip}`).
		WithExample("every other column as a property", `type: track
event: event_name
userId: user_id
timestamp: ts
properties: "*"`).
		WithExample("a Segment warehouse identifies table", `convention: segment-warehouse
type: identify`)
}

// mapTarget is one output column: a source column or a constant.
type mapTarget struct {
	path   string
	column string
	konst  *constColumn
}

// Map is the map transform.
type Map struct {
	targets    []mapTarget
	star       string // the object "*" fills, or ""
	convention string
	keepIDs    bool
	typeConst  string // the type when it is a constant
	plans      schemaCache[*mapPlan]
	namedColumns
}

// mapPlan is how one input schema turns into the output record.
type mapPlan struct {
	schema *arrow.Schema
	src    []int          // input column per output column, -1 for a constant
	konst  []*constColumn // the constant, where src is -1
}

func newMap(conf *config.Conf, _ *pipeline.Env) (pipeline.Transform, error) {
	m := &Map{convention: conf.String("convention"), keepIDs: conf.Bool("keep_ids")}
	var errs []error
	for _, k := range scalarKeys {
		if !conf.Has(k) {
			continue
		}
		t, err := parseScalarTarget(k, conf.Any(k))
		if err != nil {
			errs = append(errs, conf.Errorf(k, "%s", strings.TrimPrefix(err.Error(), k+": ")))
			continue
		}
		if k == record.Type && t.konst != nil {
			s, ok := t.konst.val.(string)
			if !ok || !contains(messageTypes, s) {
				errs = append(errs, conf.Errorf(k, "type %v is not a message type (one of %s)", t.konst.val, strings.Join(messageTypes, ", ")))
				continue
			}
			m.typeConst = s
		}
		m.targets = append(m.targets, t)
	}
	for _, k := range objectKeys {
		if !conf.Has(k) {
			continue
		}
		v := conf.Any(k)
		if v == "*" {
			if m.star != "" {
				errs = append(errs, conf.Errorf(k, `only one object can take "*" (%s already does)`, m.star))
				continue
			}
			m.star = k
			continue
		}
		ts, err := parseObjectTargets(k, v)
		if err != nil {
			errs = append(errs, conf.Errorf(k, "%v", err))
			continue
		}
		m.targets = append(m.targets, ts...)
	}
	if m.typeConst != "" {
		errs = append(errs, foreignFields(conf, m.typeConst)...)
	}
	if m.star != "" && m.convention != "" {
		errs = append(errs, conf.Errorf(m.star, `"*" and convention both map the remaining columns: use one`))
	}
	if len(errs) == 0 && len(m.targets) == 0 && m.star == "" && m.convention == "" {
		errs = append(errs, conf.Errorf("", "map sets nothing: give at least one field (type, userId, event, properties, ...) or a convention"))
	}
	seen := map[string]bool{}
	for _, t := range m.targets {
		if seen[t.path] {
			errs = append(errs, conf.Errorf(strings.SplitN(t.path, ".", 2)[0], "%s is mapped twice", t.path))
		}
		seen[t.path] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, t := range m.targets {
		if t.column != "" {
			path, node := targetNode(conf, t.path)
			m.nameCol(conf, t.column, path, node)
		}
	}
	return m, nil
}

// targetNode finds the value naming a target's column in map's config:
// userId: customer_id, properties: {total: amount}, {column: NAME}.
func targetNode(conf *config.Conf, path string) (string, *yaml.Node) {
	segs := record.SplitPath(path)
	node := conf.Node(segs[0])
	ptr := conf.Path() + "/" + pointerSeg(segs[0])
	for _, seg := range segs[1:] {
		_, v := mappingEntry(node, seg)
		if v == nil {
			return ptr, node
		}
		node, ptr = v, ptr+"/"+pointerSeg(seg)
	}
	if _, v := mappingEntry(node, "column"); v != nil {
		node, ptr = v, ptr+"/column"
	}
	return ptr, node
}

// foreignFields are errors for the fields conf maps that a message of type
// typ does not take (record.TypeFields): Segment would drop them.
func foreignFields(conf *config.Conf, typ string) []error {
	var errs []error
	for _, keys := range [][]string{scalarKeys, objectKeys} {
		for _, k := range keys {
			if !conf.Has(k) {
				continue
			}
			why, hint := record.NotTaken(typ, k)
			if why == "" {
				continue
			}
			e := conf.Errorf(k, "%s", why)
			e.Hint = yamlHint(hint)
			errs = append(errs, e)
		}
	}
	return errs
}

// yamlHint adds to a hint that names one message path (map them to
// context.traits) how to write it in map: context: {traits: {...}}.
func yamlHint(hint string) string {
	for _, p := range []string{"map them to ", "map it to "} {
		path, ok := strings.CutPrefix(hint, p)
		if !ok || strings.Contains(path, " ") {
			continue
		}
		parts := record.SplitPath(path)
		if len(parts) != 2 {
			continue
		}
		inner := "..."
		if p == "map them to " {
			inner = "{...}"
		}
		return fmt.Sprintf("%s: write %s: {%s: %s}", hint, parts[0], parts[1], inner)
	}
	return hint
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// parseScalarTarget reads `col`, `{const: v}` or `{column: col}`.
func parseScalarTarget(path string, v any) (mapTarget, error) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return mapTarget{}, fmt.Errorf("%s: empty column name", path)
		}
		if path == record.Type && contains(messageTypes, x) {
			c, _ := newConstColumn(x)
			return mapTarget{path: path, konst: c}, nil
		}
		return mapTarget{path: path, column: x}, nil
	case map[string]any:
		if len(x) == 1 {
			if c, ok := x["const"]; ok {
				k, err := newConstColumn(c)
				if err != nil {
					return mapTarget{}, fmt.Errorf("%s: %v", path, err)
				}
				return mapTarget{path: path, konst: k}, nil
			}
			if c, ok := x["column"]; ok {
				s, _ := c.(string)
				if s == "" {
					return mapTarget{}, fmt.Errorf("%s: column must be a non-empty column name", path)
				}
				return mapTarget{path: path, column: s}, nil
			}
		}
		return mapTarget{}, fmt.Errorf("%s: expected a column name, {const: VALUE} or {column: NAME}", path)
	case nil:
		return mapTarget{}, fmt.Errorf("%s: needs a column name or {const: VALUE}", path)
	}
	return mapTarget{}, fmt.Errorf("%s: %v is not a column name; write {const: %v} for a constant", path, v, v)
}

// parseObjectTargets reads an object key: a column, a constant, or a map of
// sub-keys (nested to any depth).
func parseObjectTargets(path string, v any) ([]mapTarget, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 1 && (m["const"] != nil || m["column"] != nil) {
		t, err := parseScalarTarget(path, v)
		if err != nil {
			return nil, err
		}
		return []mapTarget{t}, nil
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%s: empty object", path)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // YAML maps decode unordered; keep the output stable
	var out []mapTarget
	var errs []error
	for _, k := range keys {
		if k == "*" {
			errs = append(errs, fmt.Errorf(`%s: "*" works only as the whole value (%s: "*")`, path, path))
			continue
		}
		ts, err := parseObjectTargets(path+"."+escapeKey(k), m[k])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, ts...)
	}
	return out, errors.Join(errs...)
}

// escapeKey writes a key with dots as one path segment (record.SplitPath).
func escapeKey(k string) string { return strings.ReplaceAll(k, ".", `\.`) }

// Apply renames and assembles the mapped columns.
func (m *Map) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	rec := b.Record
	p, err := m.plans.get(rec.Schema(), m.plan)
	if err != nil {
		return err
	}
	n := int(rec.NumRows())
	cols := make([]arrow.Array, len(p.src))
	for i, s := range p.src {
		if s >= 0 {
			cols[i] = rec.Column(s)
			continue
		}
		cols[i] = p.konst[i].get(n)
		defer cols[i].Release()
	}
	b.ReplaceRecord(array.NewRecord(p.schema, cols, int64(n)))
	return nil
}

func (m *Map) plan(s *arrow.Schema) (*mapPlan, error) {
	p := &mapPlan{}
	var fields []arrow.Field
	used := map[int]bool{}
	paths := map[string]bool{}
	add := func(path string, src int, k *constColumn) {
		if src >= 0 {
			f := s.Field(src)
			fields = append(fields, arrow.Field{Name: path, Type: f.Type, Nullable: f.Nullable, Metadata: f.Metadata})
			used[src] = true
		} else {
			fields = append(fields, arrow.Field{Name: path, Type: k.typ})
		}
		p.src = append(p.src, src)
		p.konst = append(p.konst, k)
		paths[path] = true
	}
	for _, t := range m.targets {
		if t.konst != nil {
			add(t.path, -1, t.konst)
			continue
		}
		i := colIndex(s, t.column)
		if i < 0 {
			return nil, missingColumn("map: "+t.path, t.column, s)
		}
		add(t.path, i, nil)
	}
	if m.convention == ConventionSegmentWarehouse {
		if err := m.warehouse(s, used, paths, add); err != nil {
			return nil, err
		}
	}
	for i, f := range s.Fields() {
		if used[i] {
			continue
		}
		switch {
		case strings.HasPrefix(f.Name, "_"):
			add(f.Name, i, nil) // internal columns pass through
		case m.star != "":
			path := m.star + "." + escapeKey(f.Name)
			if paths[path] {
				continue // set explicitly: the explicit mapping wins
			}
			add(path, i, nil)
		}
	}
	// The output is named by message paths: the data's columns no longer
	// describe it (pipeline.DataColumns).
	md := pipeline.WithoutDataColumns(s.Metadata())
	p.schema = arrow.NewSchema(fields, &md)
	return p, nil
}

// warehouseDropped are Segment warehouse bookkeeping columns.
var warehouseDropped = map[string]bool{"received_at": true, "sent_at": true, "original_timestamp": true,
	"uuid_ts": true, "loaded_at": true, "uuid": true, "event": true}

// warehouseTop maps warehouse columns to top-level message fields.
var warehouseTop = map[string]string{"user_id": record.UserID, "anonymous_id": record.AnonymousID,
	"event_text": record.Event, "timestamp": record.Timestamp, "group_id": record.GroupID,
	"previous_id": record.PreviousID}

// contextObjects are the nested objects of Segment's context, flattened in
// warehouses as context_<object>_<key>.
var contextObjects = []string{"page", "campaign", "device", "os", "app", "library", "location",
	"network", "screen", "referrer", "traits", "instance"}

// WarehouseContextPath maps a flattened context column back to its message
// path: context_page_url -> context.page.url, context_user_agent ->
// context.userAgent. It is a best effort: warehouses lose the original case.
func WarehouseContextPath(col string) (string, bool) {
	rest, ok := strings.CutPrefix(col, "context_")
	if !ok || rest == "" {
		return "", false
	}
	for _, o := range contextObjects {
		if sub, ok := strings.CutPrefix(rest, o+"_"); ok && sub != "" {
			return record.Context + "." + o + "." + snakeToCamel(sub), true
		}
	}
	return record.Context + "." + snakeToCamel(rest), true
}

func snakeToCamel(s string) string {
	if !strings.Contains(s, "_") {
		return s
	}
	var b strings.Builder
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' && b.Len() > 0:
			up = true
		case up && c >= 'a' && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
			up = false
		default:
			b.WriteByte(c)
			up = false
		}
	}
	return b.String()
}

func (m *Map) warehouse(s *arrow.Schema, used map[int]bool, paths map[string]bool, add func(string, int, *constColumn)) error {
	typ := m.typeConst
	hasEvent := colIndex(s, "event_text") >= 0 || colIndex(s, "event") >= 0
	if !paths[record.Type] {
		if !hasEvent {
			return fmt.Errorf("map: convention %s cannot tell the message type of a table without event_text or event columns: set type (identify, page, screen, group, alias)", ConventionSegmentWarehouse)
		}
		typ = "track"
		c, _ := newConstColumn(typ)
		add(record.Type, -1, c)
	}
	// The other columns go where the type takes them: properties, or traits
	// (identify, group). Alias takes neither.
	rest := record.Properties
	switch typ {
	case record.TypeIdentify, record.TypeGroup:
		rest = record.Traits
	case record.TypeAlias:
		rest = ""
	}
	var homeless []string
	for i, f := range s.Fields() {
		if used[i] {
			continue
		}
		name := f.Name
		path, mapped := warehouseTop[name]
		switch {
		case mapped:
		case name == "event" && colIndex(s, "event_text") < 0:
			path, mapped = record.Event, true
		case name == "id":
			if !m.keepIDs {
				used[i] = true
				continue
			}
			path, mapped = record.MessageID, true
		case name == "name" && (typ == record.TypePage || typ == record.TypeScreen):
			path, mapped = record.Name, true
		case warehouseDropped[name]:
			used[i] = true
			continue
		case strings.HasPrefix(name, "_"):
			continue
		default:
			path, mapped = WarehouseContextPath(name)
		}
		if mapped && typ != "" && !record.Takes(typ, path) {
			// A column named like a field the type does not take (a
			// property called group_id on a tracks table) is one of the
			// other columns, not that field.
			mapped = false
		}
		if !mapped {
			if rest == "" {
				homeless = append(homeless, name)
				continue
			}
			path = rest + "." + escapeKey(name)
		}
		if paths[path] {
			used[i] = true // an explicit key already sets it
			continue
		}
		add(path, i, nil)
	}
	if len(homeless) > 0 {
		return fmt.Errorf("map: convention %s: alias messages carry no properties or traits (Segment would drop them), so columns %s have nowhere to go: map them explicitly (context: {traits: {...}}) or leave them out of the source's columns",
			ConventionSegmentWarehouse, strings.Join(homeless, ", "))
	}
	return nil
}

// Requires is the referenced columns, or every column with "*" or a
// convention (the leftovers are not known before the data is).
func (m *Map) Requires(out pipeline.Columns) pipeline.Columns {
	if m.star != "" || m.convention != "" {
		return pipeline.AllColumns
	}
	var names []string
	for _, t := range m.targets {
		if t.column != "" {
			names = append(names, t.column)
		}
	}
	return requireNames(pipeline.Columns{}, append(names, internalNames(out)...)...)
}
