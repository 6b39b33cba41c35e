package transforms

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// colRef is one place a transform's config names an input column it reads.
type colRef struct {
	column string
	path   string     // JSON pointer of the value naming it
	node   *yaml.Node // that value; nil: the transform's own object (a default)
}

// namedColumns records where a transform's config names the input columns
// it reads, so that `backfill validate` reports a column the data lacks at
// the value that names it. Transforms embed it: it makes them a
// pipeline.ColumnNamer.
type namedColumns struct {
	conf *config.Conf
	refs []colRef
}

var _ pipeline.ColumnNamer = (*namedColumns)(nil)

// nameCol records that column is read, named by node at the JSON pointer
// path (nil node: the transform's object, for a default).
func (n *namedColumns) nameCol(conf *config.Conf, column, path string, node *yaml.Node) {
	n.conf = conf
	n.refs = append(n.refs, colRef{column: column, path: path, node: node})
}

// nameField records a string field naming a column (field: created_at).
func (n *namedColumns) nameField(conf *config.Conf, field string) {
	n.nameCol(conf, conf.String(field), conf.Path()+"/"+pointerSeg(field), conf.Node(field))
}

// nameItems records a list field whose items name columns (key: [a, b]).
func (n *namedColumns) nameItems(conf *config.Conf, field string) {
	node := conf.Node(field)
	for i, c := range conf.Strings(field) {
		var item *yaml.Node
		if node != nil && node.Kind == yaml.SequenceNode && i < len(node.Content) {
			item = node.Content[i]
		}
		n.nameCol(conf, c, conf.Path()+"/"+pointerSeg(field)+"/"+strconv.Itoa(i), item)
	}
}

// nameKeys records a map field whose keys name columns (fields: {a: int64}),
// positioned at the keys.
func (n *namedColumns) nameKeys(conf *config.Conf, field string) {
	for _, e := range conf.Map(field) {
		k, _ := mappingEntry(conf.Node(field), e.Key)
		if k == nil {
			k = e.Node
		}
		n.nameCol(conf, e.Key, conf.Path()+"/"+pointerSeg(field)+"/"+pointerSeg(e.Key), k)
	}
}

// ColumnError is the error for column missing from the data, at every
// value naming it; nil when this transform's config names it nowhere.
func (n *namedColumns) ColumnError(column, msg, hint string) error {
	if n.conf == nil {
		return nil
	}
	var errs []error
	for _, r := range n.refs {
		if r.column != column {
			continue
		}
		e := n.conf.NodeErrorf(r.node, r.path, "%s", msg)
		if r.node == nil {
			e = n.conf.Errorf("", "%s", msg)
			e.Path = r.path
		}
		e.Code, e.Hint = config.CodeUnknownColumn, hint
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// mappingEntry finds key in a YAML mapping: its key and value nodes.
func mappingEntry(m *yaml.Node, key string) (k, v *yaml.Node) {
	for m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v = m.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return m.Content[i], v
		}
	}
	return nil, nil
}

// pointerSeg escapes one JSON pointer segment.
func pointerSeg(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// identNode points into a one-line scalar holding an expression at the
// first place it reads identifier ident (not inside a string literal, not
// after a '.'), so an error lands on the name itself; n when it cannot
// tell (a block scalar, escapes before it).
func identNode(n *yaml.Node, ident string) *yaml.Node {
	if n == nil || n.Kind != yaml.ScalarNode || ident == "" || strings.Contains(n.Value, "\n") {
		return n
	}
	v := n.Value
	var quote byte
	at := -1
	for i := 0; i < len(v) && at < 0; i++ {
		c := v[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case strings.HasPrefix(v[i:], ident) && (i == 0 || !identByte(v[i-1]) && v[i-1] != '.') &&
			(i+len(ident) == len(v) || !identByte(v[i+len(ident)])):
			at = i
		}
	}
	if at < 0 {
		return n
	}
	prefix := v[:at]
	off := utf8.RuneCountInString(prefix)
	switch n.Style {
	case 0:
	case yaml.SingleQuotedStyle:
		off += 1 + strings.Count(prefix, "'") // '' in the file is one ' in the value
	case yaml.DoubleQuotedStyle:
		if strings.ContainsAny(prefix, "\"\\") {
			return n
		}
		off++
	default:
		return n
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Value: ident, Line: n.Line, Column: n.Column + off}
}

func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
