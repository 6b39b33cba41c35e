package transforms

import (
	"bytes"
	"context"
	"errors"
	"path"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// PresetSegmentReplay is what Segment's docs say to remove from archived
// messages before sending them again.
const PresetSegmentReplay = "segment-replay"

// SegmentReplayFields are the top-level fields the segment-replay preset
// strips, in camelCase and snake_case.
var SegmentReplayFields = []string{
	"sentAt", "sent_at", "messageId", "message_id", "projectId", "project_id",
	"receivedAt", "received_at", "originalTimestamp", "original_timestamp",
	"_metadata", "channel", "version", "writeKey", "write_key",
}

func stripSpec() *config.Spec {
	return config.NewSpec("remove fields: columns and keys inside JSON columns",
		config.Strings("fields", `message paths to remove, with "*" globs per segment: a column (sentAt), everything below a path (context.library), or keys of a JSON column (properties.internal_*)`).
			Optional().Example([]string{"sentAt", "context.library", "properties.internal_*"}),
		config.String("preset", "a named list of fields: segment-replay strips "+strings.Join(SegmentReplayFields, ", ")).
			Optional().Enum(PresetSegmentReplay),
		config.Strings("keep", "paths never removed, even when fields or the preset match them").
			Optional().Example([]string{"messageId"}),
	).Rules(
		config.AtLeastOne("fields", "preset").Message("strip removes nothing: give fields or a preset"),
	).WithDescription(`A field is removed wherever it is: as a column, or as a key inside a JSON
column (a properties or context object read whole from NDJSON). The
segment-replay preset removes what Segment's docs say an archived message
must lose before it is sent again, in camelCase and snake_case.`).
		WithExample("archived Segment messages, keeping a re-derived messageId", `preset: segment-replay
keep: [messageId]`).
		WithExample("internal properties", `fields: [context.library, "properties.internal_*"]`)
}

// Strip is the strip transform.
type Strip struct {
	drop, keep []keyPattern
	mem        memory.Allocator
	plans      schemaCache[*stripPlan]
}

type stripJSON struct {
	idx        int
	drop, keep []keyPattern
	// needles are the texts a row must contain for a drop pattern to match
	// at its top level (`library"`, `internal_`); nil when a glob pattern
	// needs every row parsed.
	needles [][]byte
}

// newStripJSON plans the stripping of one JSON column.
func newStripJSON(idx int, drop, keep []keyPattern) stripJSON {
	j := stripJSON{idx: idx, drop: drop, keep: keep}
	for _, d := range drop {
		switch d[0].kind {
		// A needle starts with the key's own text, not its opening quote:
		// '"' is everywhere in JSON and would make every search slow.
		case segLiteral:
			j.needles = append(j.needles, []byte(d[0].pat+`"`))
		case segPrefix:
			j.needles = append(j.needles, []byte(d[0].prefix))
		default:
			j.needles = nil
			return j
		}
	}
	return j
}

// mayMatch reports whether a row's JSON text may hold a key to drop. Most
// rows of most columns do not: they are copied without being parsed. A
// backslash (an escaped key) always means parsing.
func (j stripJSON) mayMatch(text []byte) bool {
	if j.needles == nil || bytes.IndexByte(text, '\\') >= 0 {
		return true
	}
	for _, n := range j.needles {
		if bytes.Contains(text, n) {
			return true
		}
	}
	return false
}

type stripPlan struct {
	dropCols map[int]bool
	json     []stripJSON
}

func newStrip(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	s := &Strip{mem: env.Alloc}
	var errs []error
	fields := conf.Strings("fields")
	if conf.String("preset") == PresetSegmentReplay {
		fields = append(fields, SegmentReplayFields...)
	}
	for _, f := range fields {
		p := newKeyPattern(f)
		for _, seg := range p {
			if _, err := path.Match(seg.pat, ""); err != nil || seg.pat == "" {
				errs = append(errs, conf.Errorf("fields", "%q is not a valid path pattern", f))
				break
			}
		}
		s.drop = append(s.drop, p)
	}
	for _, k := range conf.Strings("keep") {
		s.keep = append(s.keep, newKeyPattern(k))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// matchPrefix reports whether p matches the first len(p) segments of segs.
func matchPrefix(p keyPattern, segs []string) bool {
	if len(p) > len(segs) {
		return false
	}
	for i, x := range p {
		if !x.match(segs[i]) {
			return false
		}
	}
	return true
}

func (s *Strip) plan(schema *arrow.Schema) (*stripPlan, error) {
	p := &stripPlan{dropCols: map[int]bool{}}
	for i, f := range schema.Fields() {
		segs := record.SplitPath(f.Name)
		kept := false
		for _, k := range s.keep {
			if len(k) <= len(segs) && k.String() == strings.Join(segs[:len(k)], ".") {
				kept = true
			}
		}
		var inner, innerKeep []keyPattern
		for _, d := range s.drop {
			if matchPrefix(d, segs) {
				if !kept {
					p.dropCols[i] = true
				}
			} else if len(d) > len(segs) && matchPrefix(d[:len(segs)], segs) {
				inner = append(inner, d[len(segs):])
			}
		}
		if p.dropCols[i] || len(inner) == 0 || !record.IsJSON(f.Type) {
			continue
		}
		for _, k := range s.keep {
			if len(k) > len(segs) && k[:len(segs)].String() == strings.Join(segs, ".") {
				innerKeep = append(innerKeep, k[len(segs):])
			}
		}
		p.json = append(p.json, newStripJSON(i, inner, innerKeep))
	}
	return p, nil
}

// Apply drops matching columns and rewrites affected JSON columns; rows
// whose JSON does not parse are rejected.
func (s *Strip) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	rec := b.Record
	p, _ := s.plans.get(rec.Schema(), s.plan)
	var fates map[int]pipeline.RowFate
	if len(p.json) > 0 {
		names := make([]string, 0, len(p.json))
		cols := make([]arrow.Array, 0, len(p.json))
		for _, j := range p.json {
			name := rec.Schema().Field(j.idx).Name
			out := s.rewrite(rec.Column(j.idx).(*record.JSONArray), name, j, &fates)
			if out == nil {
				continue // nothing removed: keep the column as it is
			}
			defer out.Release()
			names, cols = append(names, name), append(cols, out)
		}
		out := rec
		if len(cols) > 0 {
			out = replaceColumns(rec, names, cols)
		}
		if err := replaceAndDrop(b, s.mem, out, fates); err != nil {
			return err
		}
		rec = b.Record
	}
	if out := dropColumns(rec, p.dropCols); out != nil {
		b.ReplaceRecord(out)
	}
	return nil
}

// rewrite returns the stripped column, or nil when no row changed.
func (s *Strip) rewrite(in *record.JSONArray, name string, j stripJSON, fates *map[int]pipeline.RowFate) arrow.Array {
	n := in.Len()
	src := in.Storage().(*array.String)
	// Most columns hold no key to strip in any row: find that out before
	// allocating anything.
	any := false
	for i := 0; i < n && !any; i++ {
		any = !in.IsNull(i) && j.mayMatch(in.ValueBytes(i))
	}
	if !any {
		return nil
	}
	// Rows are written straight into the new column's buffers: a stripped
	// text is never longer than the original, so the data buffer sized to
	// the input never grows, and nothing is copied twice.
	data := memory.NewResizableBuffer(s.mem)
	defer data.Release()
	data.Reserve(len(src.ValueBytes()) + 1)
	offs := memory.NewResizableBuffer(s.mem)
	defer offs.Release()
	offs.Resize((n + 1) * arrow.Int32SizeBytes)
	o := arrow.Int32Traits.CastFromBytes(offs.Bytes())
	out := data.Buf()[:0]
	changed := false
	for i := 0; i < n; i++ {
		o[i] = int32(len(out))
		if in.IsNull(i) {
			continue
		}
		text := in.ValueBytes(i)
		if !j.mayMatch(text) {
			out = append(out, text...)
			continue
		}
		start := len(out)
		res, ch, err := stripObject(text, j.drop, j.keep, out, 0)
		if err != nil {
			if *fates == nil {
				*fates = map[int]pipeline.RowFate{}
			}
			(*fates)[i] = reject("strip", name, "%s: not valid JSON (%v)", name, err)
			out = append(out[:start], text...)
			continue
		}
		out = res
		changed = changed || ch
	}
	o[n] = int32(len(out))
	if !changed {
		return nil
	}
	if len(out) > 0 && &out[0] != &data.Buf()[0] { // cannot happen; stay correct if it does
		data.Resize(len(out))
		copy(data.Bytes(), out)
	} else {
		data.ResizeNoShrink(len(out))
	}
	var valid *memory.Buffer
	if in.NullN() > 0 {
		valid = memory.NewResizableBuffer(s.mem)
		defer valid.Release()
		valid.Resize(int(bitutil.BytesForBits(int64(n))))
		bitutil.CopyBitmap(src.NullBitmapBytes(), src.Data().Offset(), n, valid.Bytes(), 0)
	}
	d := array.NewData(arrow.BinaryTypes.String, n, []*memory.Buffer{valid, offs, data}, nil, in.NullN(), 0)
	defer d.Release()
	str := array.NewStringData(d)
	defer str.Release()
	return array.NewExtensionArrayWithStorage(record.JSON, str)
}
