package message

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/backfillhq/backfill/internal/jsonscan"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/record"
)

// fail records why the row being encoded cannot be sent.
func (e *Encoder) fail(col, reason string) {
	if e.failReason == "" {
		e.failCol, e.failReason = col, reason
	}
}

func (e *Encoder) encode(b *pipeline.Batch, emit func(row int, msg []byte) error) ([]pipeline.Reject, error) {
	if b == nil || b.Record == nil || b.Record.NumRows() == 0 {
		return nil, nil
	}
	rec := b.Record
	p, err := e.planFor(rec.Schema())
	if err != nil {
		return nil, err
	}
	p.bind(rec)
	e.batch = b
	e.setIDPrefix(p, b)
	defer func() { e.batch = nil }()
	var rejects []pipeline.Reject
	n := int(rec.NumRows())
	for i := 0; i < n; i++ {
		e.failCol, e.failReason = "", ""
		buf, ok := e.writeSteps(append(e.buf[:0], '{'), p.steps, i)
		e.buf = buf
		if !ok {
			rejects = append(rejects, pipeline.Reject{Row: b.Row(i), Stage: "sink", Column: e.failCol, Reason: e.failReason})
			continue
		}
		// The placeholder sentAt goes last, so the sender finds it at a
		// known place; it counts against the message's size like any
		// member.
		e.sentAtOff = -1
		if e.opts.SentAt && !hasValue(p.sentAt, i) {
			if len(buf) > 1 {
				buf = append(buf, ',')
			}
			buf = append(buf, sentAtMember...)
			e.sentAtOff = len(buf) - 1 - len(SentAtStamp)
		}
		buf = append(buf, '}')
		e.buf = buf
		col, reason := e.validate(p, i)
		if reason == "" && len(buf) > e.max {
			reason = fmt.Sprintf("message is %d bytes, over Segment's %d-byte limit", len(buf), e.max)
			if e.sentAtOff >= 0 {
				reason = fmt.Sprintf("message is %d bytes with its sentAt, over Segment's %d-byte limit", len(buf), e.max)
			}
		}
		if reason != "" {
			msg := append([]byte(nil), buf...)
			if e.sentAtOff >= 0 {
				msg = WithoutSentAt(nil, buf, e.sentAtOff)
			}
			rejects = append(rejects, pipeline.Reject{Row: b.Row(i), Stage: "sink", Column: col, Reason: reason, Message: msg})
			continue
		}
		if err := emit(i, buf); err != nil {
			return rejects, err
		}
	}
	return rejects, nil
}

// writeSteps appends the members of the root object by running the plan's
// flat program (see plan.compile): the same output as writeMembers on the
// root, without a recursive call and child loop per node and row.
func (e *Encoder) writeSteps(dst []byte, steps []step, row int) ([]byte, bool) {
	first := true // no member written yet in the innermost open object
	st := e.stack[:0]
	for k := range steps {
		s := &steps[k]
		op := s.op
		if op == stepDict && !s.dict.cache {
			op = stepLeaf // a dictionary far larger than this batch: not cached
		}
		switch op {
		case stepString:
			// The common leaf, without interface calls: a utf8 column, or
			// an id field over one (empty means absent).
			w := s.str
			if w.null(row) {
				continue
			}
			// stringW.text, inlined by hand (too large for the compiler to).
			var v string
			if w.fast {
				v = b2s(w.vals[w.offs[row]:w.offs[row+1]])
			} else {
				v = w.a.Value(row)
			}
			if s.id && len(v) == 0 {
				continue
			}
			dst = append(dst, s.keyAfter(first)...)
			first = false
			dst = appendQuoted(dst, v, w.clean)
		case stepDict:
			// dictW.null and json, inlined by hand: the row's bit, then
			// its value's cached span, which also says if that is null.
			w := s.dict
			if w.nulls.null(row) {
				continue
			}
			sp := w.spans[w.idx32[row]]
			if sp.end == 0 {
				sp = w.fill(row)
			}
			if sp.end < 0 {
				continue
			}
			v := w.enc[sp.start:sp.end]
			if s.id && len(v) == 2 { // "": an absent id
				continue
			}
			dst = append(dst, s.keyAfter(first)...)
			first = false
			dst = append(dst, v...)
		case stepLeaf:
			if s.w.null(row) {
				continue
			}
			dst = append(dst, s.keyAfter(first)...)
			first = false
			var ok bool
			if dst, ok = s.w.write(e, dst, row); !ok {
				return dst, false
			}
		case stepOpen:
			st = append(st, frame{mark: len(dst), first: first})
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, s.key...) // `"name":{`
			first = true
		case stepClose:
			f := st[len(st)-1]
			st = st[:len(st)-1]
			if first {
				// Nothing inside: leave the key (and its comma) out.
				dst, first = dst[:f.mark], f.first
			} else {
				dst = append(dst, '}')
			}
		case stepNode:
			before := len(dst)
			if !first {
				dst = append(dst, ',')
			}
			start := len(dst)
			var ok bool
			if dst, ok = e.writeNode(dst, s.n, row, nil); !ok {
				return dst, false
			}
			if len(dst) == start {
				dst = dst[:before]
			} else {
				first = false
			}
		}
	}
	e.stack = st
	return dst, true
}

// writeNode appends `"key":value` for n, or nothing when the row has no
// value there. overlay is the value the enclosing JSON column holds at
// this key, if any.
func (e *Encoder) writeNode(dst []byte, n *node, row int, overlay []byte) ([]byte, bool) {
	if len(n.kids) == 0 {
		if n.w != nil && !n.w.null(row) {
			return n.w.write(e, append(dst, n.key...), row)
		}
		if overlay != nil && (n.fallback == nil || !noValue(overlay)) {
			dst = append(dst, n.key...)
			return append(dst, overlay...), true
		}
		if n.fallback != nil {
			dst = append(dst, n.key...)
			return append(dst, n.fallback...), true
		}
		return dst, true
	}
	// An object built from sub-path columns, merged with what a JSON (or
	// struct) column holds at the same path. The slow path: it parses.
	own := overlay
	if own != nil && own[0] != '{' {
		own = nil // sub-path columns win over a non-object
	}
	if n.w != nil && !n.w.null(row) {
		var ok bool
		if own, ok = e.objectValue(n, row); !ok {
			return dst, false
		}
	}
	mark := len(dst)
	dst = append(dst, n.key...)
	dst = append(dst, '{')
	inner := len(dst)
	dst, ok := e.writeMembers(dst, n, row, own)
	if !ok {
		return dst, false
	}
	if len(dst) == inner && (own == nil || n.fallback != nil) {
		dst = dst[:mark] // nothing to say: leave the key out
		if n.fallback != nil {
			dst = append(dst, n.key...)
			dst = append(dst, n.fallback...)
		}
		return dst, true
	}
	return append(dst, '}'), true
}

// noValue reports whether a JSON value says nothing: null or {}.
func noValue(v []byte) bool { return string(v) == "null" || emptyObject(v) }

// objectValue returns the object n's own column holds at row, as JSON.
func (e *Encoder) objectValue(n *node, row int) ([]byte, bool) {
	switch w := n.w.(type) {
	case *jsonW:
		v, ok := w.value(e, row)
		if !ok {
			return nil, false
		}
		if v[0] != '{' {
			e.fail(n.path, fmt.Sprintf("%s holds %s, not an object, so %s.* columns cannot be merged into it", n.path, jsonscan.Describe(v), n.path))
			return nil, false
		}
		return v, true
	case *structW, *mapW:
		var ok bool
		n.tmp, ok = w.write(e, n.tmp[:0], row)
		return n.tmp, ok
	case *notObjectW:
		return w.write(e, nil, row)
	}
	e.fail(n.path, fmt.Sprintf("%s is not an object, so %s.* columns cannot be merged into it", n.path, n.path))
	return nil, false
}

// writeMembers appends the members of n's object: its children, then the
// members of own (an object's JSON) that no child overrides.
func (e *Encoder) writeMembers(dst []byte, n *node, row int, own []byte) ([]byte, bool) {
	var spans []jsonscan.Member
	if own != nil {
		// own is valid JSON (a checked column, or what a writer made).
		n.spans, _, _ = jsonscan.Members(own, n.spans[:0])
		spans = n.spans
		if cap(n.used) < len(spans) {
			n.used = make([]bool, len(spans))
		}
		n.used = n.used[:len(spans)]
		clear(n.used)
	}
	used := n.used
	first := true
	for _, k := range n.kids {
		var ov []byte
		for j := range spans {
			if sp := &spans[j]; !used[j] && sp.KeyIs(k.name) {
				ov, used[j] = own[sp.Val:sp.End], true // the last duplicate wins
			}
		}
		before := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		start := len(dst)
		var ok bool
		if dst, ok = e.writeNode(dst, k, row, ov); !ok {
			return dst, false
		}
		if len(dst) == start {
			dst = dst[:before]
		} else {
			first = false
		}
	}
	for j := range spans {
		if sp := &spans[j]; !used[j] {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, sp.Quoted...)
			dst = append(dst, ':')
			dst = append(dst, own[sp.Val:sp.End]...)
		}
	}
	return dst, true
}

// msgIDW writes the messageId column's value, or derives one.
type msgIDW struct {
	col  writer // nil without a messageId column
	enc  *Encoder
	plan *plan
}

func (w *msgIDW) bind(a arrow.Array) { w.col.bind(a) }
func (*msgIDW) null(int) bool        { return false }
func (w *msgIDW) write(e *Encoder, dst []byte, i int) ([]byte, bool) {
	e.idOff = len(dst) // the value's start in the message (MessageIDOffset)
	if w.col != nil && !w.col.null(i) {
		return w.col.write(e, dst, i)
	}
	// e.scr holds namespace+name prefix for this batch (set in encode); only
	// the row's own part is appended per row.
	e.scr = e.scr[:e.scrN]
	if len(w.plan.idCols) == 0 {
		// Rows mostly follow each other: the last row's digits, still
		// after the prefix, are counted up instead of formatted again.
		row := e.batch.Row(i)
		if e.lastRow >= 0 && row == e.lastRow+1 && incDecimal(e.scr[e.scrN:e.rowEnd]) {
			e.scr = e.scr[:e.rowEnd]
		} else {
			e.scr = strconv.AppendInt(e.scr, row, 10)
		}
		e.lastRow, e.rowEnd = row, len(e.scr)
	} else {
		for _, c := range w.plan.idCols {
			e.scr = append(e.scr, 0)
			if c.null(i) {
				e.scr = append(e.scr, "null"...)
				continue
			}
			var ok bool
			if e.scr, ok = c.write(e, e.scr, i); !ok {
				return dst, false
			}
		}
	}
	dst = append(dst, '"')
	dst = appendUUID5Sum(dst, e.mid.sumOf(e.scr))
	return append(dst, '"'), true
}

// setIDPrefix puts the SHA-1 input every derived id of b starts with in
// e.scr: the namespace, then "PIPELINE\x00SPLIT\x00" (the row number
// follows) or "PIPELINE\x00key" (the key columns follow).
func (e *Encoder) setIDPrefix(p *plan, b *pipeline.Batch) {
	e.scr = append(e.scr[:0], namespace[:]...)
	e.scr = append(e.scr, e.opts.Pipeline...)
	if len(p.idCols) == 0 {
		e.scr = append(e.scr, 0)
		e.scr = append(e.scr, b.Split...)
		e.scr = append(e.scr, 0)
	} else {
		e.scr = append(e.scr, "\x00key"...)
	}
	e.scrN = len(e.scr)
	e.lastRow = -1
	e.mid.reset(e.scr)
}

// incDecimal adds one to the decimal number d in place; false when d is
// all nines (the number gets a digit longer) or not a number.
func incDecimal(d []byte) bool {
	for j := len(d) - 1; j >= 0; j-- {
		switch c := d[j]; {
		case c >= '0' && c < '9':
			d[j] = c + 1
			return true
		case c == '9':
			d[j] = '0'
		default:
			return false
		}
	}
	return false
}

// field reads a root field as a string: present is false when the row
// has none, isString false when it is not a string.
func field(n *node, row int) (s string, present, isString bool) {
	if !hasValue(n, row) {
		return "", false, false
	}
	if n.t != nil {
		return n.t.text(row), true, true
	}
	return "", true, false
}

// hasValue reports whether a root field is a column with a value in row.
func hasValue(n *node, row int) bool {
	return n != nil && n.w != nil && len(n.kids) == 0 && !n.w.null(row)
}

// has reports whether a root field is present and a string, or returns a
// reason when it is present but not a string.
func has(n *node, row int) (bool, string) {
	if !hasValue(n, row) {
		return false, ""
	}
	if n.t == nil { // the value itself is not needed: only that it is a string
		return false, n.path + " is not a string"
	}
	return true, ""
}

const validTypes = "identify, track, page, screen, group, alias"

// Indices of the message types in record.MessageTypes.
const (
	iIdentify = iota
	iTrack
	iPage
	iScreen
	iGroup
	iAlias
	numTypes
)

// carries reports whether row has something to say at the root field n:
// a value that is not null, not an empty id, and not an empty object.
func (e *Encoder) carries(n *node, row int) bool {
	if !anyValue(n, row) {
		return false
	}
	if !n.obj {
		return true
	}
	// An object: encode it again (the row encoded once already, so this
	// cannot fail) to tell {} from an object with members.
	out, _ := e.writeNode(e.scr2[:0], n, row, nil)
	e.scr2 = out
	return len(out) > 0 && !emptyObject(out[len(n.key):])
}

// anyValue reports whether a column at or below n has a value in row.
func anyValue(n *node, row int) bool {
	if n.w != nil && !n.w.null(row) {
		return true
	}
	for _, k := range n.kids {
		if anyValue(k, row) {
			return true
		}
	}
	return false
}

// emptyObject reports whether v is a JSON object without members.
func emptyObject(v []byte) bool {
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// validate applies Segment's message rules to row; it returns the column
// to blame and why, or an empty reason.
func (e *Encoder) validate(p *plan, row int) (string, string) {
	typ, ok, isStr := field(p.typ, row)
	switch {
	case !ok:
		return "type", "message has no type"
	case !isStr:
		return "type", "type is not a string"
	}
	hasUser, why := has(p.userID, row)
	if why != "" {
		return "userId", why
	}
	hasAnon, why := has(p.anonID, row)
	if why != "" {
		return "anonymousId", why
	}
	var ti int // typ's index in record.MessageTypes
	switch typ {
	case record.TypeTrack:
		ti = iTrack
		if ok, why := has(p.event, row); !ok {
			return "event", or(why, "track message has no event")
		}
	case record.TypeGroup:
		ti = iGroup
		if ok, why := has(p.groupID, row); !ok {
			return "groupId", or(why, "group message has no groupId")
		}
	case record.TypeAlias:
		ti = iAlias
		if !hasUser {
			return "userId", "alias message has no userId"
		}
		if ok, why := has(p.prevID, row); !ok {
			return "previousId", or(why, "alias message has no previousId")
		}
	case record.TypeIdentify:
		ti = iIdentify
	case record.TypePage:
		ti = iPage
	case record.TypeScreen:
		ti = iScreen
	default:
		return "type", fmt.Sprintf("type %q is not one of %s", typ, validTypes)
	}
	if !hasUser && !hasAnon {
		return "userId", typ + " message has neither userId nor anonymousId"
	}
	// Fields the type does not take: Segment would drop them. Only the
	// schema's such columns are looked at, and a row whose value there is
	// null (or an empty id or object) loses nothing.
	for _, f := range p.foreign[ti] {
		if e.carries(f.n, row) {
			return f.n.path, f.reason
		}
	}
	if mid := p.msgCol.w.(*msgIDW).col; mid != nil && !mid.null(row) {
		t, ok := asTexter(mid)
		if !ok {
			return "messageId", "messageId is not a string"
		}
		if n := utf8.RuneCountInString(t.text(row)); n >= 100 {
			return "messageId", fmt.Sprintf("messageId is %d characters; Segment takes fewer than 100", n)
		}
	}
	return "", ""
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
