package message

import (
	"fmt"
	"strings"

	"github.com/backfillhq/backfill/internal/jsonscan"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/backfillhq/backfill/pipeline/record"
)

// node is one key of the message tree. A leaf writes its column; an
// object node writes its children and, when it also has a column (a JSON
// `properties` next to `properties.plan`), merges that column's members in.
type node struct {
	name   string // unescaped key
	key    []byte // `"name":`
	path   string // full path, for reasons
	w      writer // the column's writer; nil when no column sits here
	obj    bool   // must be an object (properties, traits, context, integrations)
	kids   []*node
	spans  []jsonscan.Member // the merged object's members, per row (reused)
	used   []bool            // which of spans a sub-path column took
	tmp    []byte            // a struct/map column encoded for merging (reused)
	isJSON bool
	t      texter // w as a texter, or nil: asserted once, not per row
	// fallback is JSON written here when the row has nothing to say at
	// this key (no column value, no member of an enclosing JSON column):
	// this tool's context.library, unless the data has its own.
	fallback []byte
}

func (n *node) child(name, path string) *node {
	for _, k := range n.kids {
		if k.name == name {
			return k
		}
	}
	k := &node{name: name, key: append(appendString(nil, name), ':'), path: path}
	n.kids = append(n.kids, k)
	return k
}

type binding struct {
	col int
	w   writer
}

// plan is how one schema is encoded.
type plan struct {
	schema *arrow.Schema
	root   *node
	binds  []binding
	// the root fields Segment's rules look at (nil when absent)
	typ, userID, anonID, event, groupID, prevID, msgCol, sentAt *node
	idCols                                                      []writer // Options.IDColumns, raw writers
	steps                                                       []step   // root's members as a flat program
	// foreign holds, per message type (record.MessageTypes' order), the
	// root fields this schema has columns for that the type does not take
	// (record.TypeFields): checked per row only where the row's type has
	// some, so a schema that fits its types costs nothing per row.
	foreign [numTypes][]foreignField
}

// foreignField is a root field a message type does not take, and why.
type foreignField struct {
	n      *node
	reason string
}

// step is one instruction of a plan's flat program: the tree walked once
// per schema instead of once per row.
type step struct {
	op   int
	key  []byte   // stepLeaf, stepString, stepDict: `"name":`; stepOpen: `"name":{`
	ckey []byte   // stepLeaf, stepString, stepDict: `,"name":`
	w    writer   // stepLeaf
	str  *stringW // stepString
	dict *dictW   // stepDict
	id   bool     // stepString, stepDict: an id field, where "" is absent
	n    *node    // stepNode
}

// keyAfter is the step's key as it follows what the object holds so far:
// with a comma unless it is the object's first member.
func (s *step) keyAfter(first bool) []byte {
	if first {
		return s.key
	}
	return s.ckey
}

const (
	stepLeaf   = iota // write w's value under key unless null
	stepString        // the same for a utf8 column, devirtualized
	stepDict          // the same for a string dictionary column
	stepOpen          // open an object under key
	stepClose         // close it, or drop it when nothing was written inside
	stepNode          // an object merged with its own column: writeNode's slow path
)

// frame is an open object while steps run: where its key starts (with
// the comma before it) and whether its parent had members before it.
type frame struct {
	mark  int
	first bool
}

// compile flattens n's members into steps, in writeMembers' order.
func compile(steps []step, n *node) []step {
	for _, k := range n.kids {
		switch {
		case len(k.kids) == 0 && k.w != nil && k.fallback != nil:
			// Enclosed by no JSON column here (that is stepNode's path),
			// so the column, else the fallback.
			steps = append(steps, step{op: stepLeaf, key: k.key, ckey: append([]byte{','}, k.key...),
				w: &fallbackW{inner: k.w, v: k.fallback}})
		case len(k.kids) == 0 && k.fallback != nil:
			steps = append(steps, step{op: stepLeaf, key: k.key, ckey: append([]byte{','}, k.key...), w: &constW{v: k.fallback}})
		case k.fallback != nil:
			steps = append(steps, step{op: stepNode, n: k}) // writeNode knows fallbacks
		case len(k.kids) == 0 && k.w != nil:
			st := step{op: stepLeaf, key: k.key, ckey: append([]byte{','}, k.key...), w: k.w}
			switch w := k.w.(type) {
			case *stringW:
				st.op, st.str = stepString, w
			case *dictW:
				if w.str != nil {
					st.op, st.dict = stepDict, w
				}
			case *idW:
				switch iw := w.inner.(type) {
				case *stringW:
					st.op, st.str, st.id = stepString, iw, true
				case *dictW:
					if iw.str != nil {
						st.op, st.dict, st.id = stepDict, iw, true
					}
				}
			}
			steps = append(steps, st)
		case len(k.kids) == 0:
			// no column and no merged object: writes nothing
		case k.w == nil:
			steps = append(steps, step{op: stepOpen, key: append(k.key[:len(k.key):len(k.key)], '{')})
			steps = compile(steps, k)
			steps = append(steps, step{op: stepClose})
		default:
			steps = append(steps, step{op: stepNode, n: k})
		}
	}
	return steps
}

// objectFields must hold objects.
var objectFields = map[string]bool{record.Properties: true, record.Traits: true, record.Context: true, record.Integrations: true}

// idFields are strings where empty means absent and integers are quoted.
var idFields = map[string]bool{record.UserID: true, record.AnonymousID: true, record.GroupID: true,
	record.PreviousID: true, record.Event: true, record.Name: true, record.MessageID: true}

func (e *Encoder) newPlan(s *arrow.Schema) (*plan, error) {
	p := &plan{schema: s, root: &node{}}
	raw := map[string]writer{}
	for i, f := range s.Fields() {
		parts := record.SplitPath(f.Name)
		for _, part := range parts {
			if part == "" {
				return nil, fmt.Errorf("message: column %q is not a message path (empty key)", f.Name)
			}
		}
		w := newWriter(f.Type, f.Name)
		raw[f.Name] = w
		p.binds = append(p.binds, binding{i, w})
		switch {
		case strings.HasPrefix(f.Name, "_"):
			continue // internal
		case parts[0] == record.SentAt && len(parts) > 1:
			continue // sentAt is a time, not an object
		case e.opts.OwnLibrary && parts[0] == record.Context && len(parts) > 1 && parts[1] == "library":
			continue // this tool's library wins
		}
		n := p.root
		for j, part := range parts {
			n = n.child(part, strings.Join(parts[:j+1], "."))
		}
		if n.w != nil {
			return nil, fmt.Errorf("message: two columns write %s", n.path)
		}
		n.isJSON = record.IsJSON(f.Type)
		if len(parts) == 1 && idFields[parts[0]] {
			switch w.(type) {
			case *stringW, decimalAppender:
				w = newIDW(w)
			case *dictW:
				if _, ok := w.(*dictW).inner.(*stringW); ok {
					w = newIDW(w)
				}
			}
		}
		if _, ok := asTexter(w); ok && len(parts) == 1 && (parts[0] == record.Timestamp || parts[0] == record.SentAt) {
			w = newTimeTextW(w, f.Name)
		}
		if len(parts) == 1 && objectFields[parts[0]] {
			n.obj = true
			switch jw := w.(type) {
			case *jsonW:
				jw.obj = true
			case *structW, *mapW:
			default:
				w = &notObjectW{inner: w, col: f.Name, typ: f.Type}
			}
		}
		n.w = w
		// The binding must bind the wrapper's inner writer once: wrappers
		// forward bind, so bind through the outermost one.
		p.binds[len(p.binds)-1].w = w
	}
	for _, c := range e.opts.IDColumns {
		w, ok := raw[c]
		if !ok {
			return nil, fmt.Errorf("message: id column %q is not in the record", c)
		}
		p.idCols = append(p.idCols, w)
	}
	// Every message gets a messageId and a context.library: the data's,
	// or this tool's where the data has none (or always, OwnLibrary).
	p.msgCol = p.root.child(record.MessageID, record.MessageID)
	mid := &msgIDW{col: p.msgCol.w, enc: e, plan: p}
	p.msgCol.w = mid
	ctx := p.root.child(record.Context, record.Context)
	ctx.obj = true
	lib := ctx.child("library", "context.library")
	if e.opts.OwnLibrary {
		lib.w = &constW{v: e.library}
	} else {
		lib.fallback = e.library
	}
	p.steps = compile(nil, p.root)
	for _, k := range p.root.kids {
		k.t, _ = asTexter(k.w)
		switch k.name {
		case record.Type:
			p.typ = k
		case record.UserID:
			p.userID = k
		case record.AnonymousID:
			p.anonID = k
		case record.Event:
			p.event = k
		case record.GroupID:
			p.groupID = k
		case record.PreviousID:
			p.prevID = k
		case record.SentAt:
			p.sentAt = k
		}
	}
	var flat []foreignField // one backing array for every type's list
	for i := range p.foreign {
		start := len(flat)
		for _, k := range p.root.kids {
			if k.w == nil && len(k.kids) == 0 {
				continue // no column writes it
			}
			if reason, ok := foreignReasons[i][k.name]; ok {
				flat = append(flat, foreignField{k, reason})
			}
		}
		p.foreign[i] = flat[start:len(flat):len(flat)]
	}
	return p, nil
}

// foreignReasons holds, per message type (record.MessageTypes' order), the
// root fields the type does not take and the reason a row carrying one is
// rejected: record.NotTaken's, computed once.
var foreignReasons = func() (r [numTypes]map[string]string) {
	if len(record.MessageTypes) != numTypes {
		panic("message: record.MessageTypes and the encoder's type indices differ")
	}
	for i, typ := range record.MessageTypes {
		r[i] = map[string]string{}
		for _, fields := range record.TypeFields {
			for _, f := range fields {
				if why, hint := record.NotTaken(typ, f); why != "" {
					r[i][f] = why + "; " + hint
				}
			}
		}
	}
	return r
}()

func (p *plan) bind(rec arrow.Record) {
	for _, b := range p.binds {
		b.w.bind(rec.Column(b.col))
	}
}

// planFor returns the plan of schema s, building it on first sight. Plans
// are looked up by pointer first (readers reuse one schema), then by
// equality (transforms may rebuild an equal schema per batch).
func (e *Encoder) planFor(s *arrow.Schema) (*plan, error) {
	for i, p := range e.plans {
		if p.schema == s || p.schema.Equal(s) {
			p.schema = s
			if i > 0 {
				e.plans[0], e.plans[i] = p, e.plans[0]
			}
			return p, nil
		}
	}
	p, err := e.newPlan(s)
	if err != nil {
		return nil, err
	}
	if len(e.plans) >= 8 {
		e.plans = e.plans[:7]
	}
	e.plans = append([]*plan{p}, e.plans...)
	return p, nil
}
