package transforms

import (
	"context"
	"errors"
	"path"
	"strings"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
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

func stripSpec() *pipeline.Spec {
	return pipeline.NewSpec("remove fields: columns and keys inside JSON columns",
		pipeline.Strings("fields", `message paths to remove, with "*" globs per segment: a column (sentAt), everything below a path (context.library), or keys of a JSON column (properties.internal_*)`).
			Optional().Example([]string{"sentAt", "context.library", "properties.internal_*"}),
		pipeline.String("preset", "a named list of fields: segment-replay strips "+strings.Join(SegmentReplayFields, ", ")).
			Optional().Enum(PresetSegmentReplay),
		pipeline.Strings("keep", "paths never removed, even when fields or the preset match them").
			Optional().Example([]string{"messageId"}),
	).WithExample("archived Segment messages, keeping a re-derived messageId", `preset: segment-replay
keep: [messageId]`).
		WithExample("internal properties", `fields: [context.library, "properties.internal_*"]`)
}

func init() { pipeline.Default.RegisterTransform("strip", stripSpec(), newStrip) }

// Strip is the strip transform.
type Strip struct {
	drop, keep []keyPattern
	mem        memory.Allocator
	plans      schemaCache[*stripPlan]
}

type stripJSON struct {
	idx        int
	drop, keep []keyPattern
}

type stripPlan struct {
	dropCols map[int]bool
	json     []stripJSON
}

func newStrip(conf *pipeline.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	s := &Strip{mem: env.Alloc}
	var errs []error
	fields := conf.Strings("fields")
	if conf.String("preset") == PresetSegmentReplay {
		fields = append(fields, SegmentReplayFields...)
	}
	if len(fields) == 0 {
		errs = append(errs, conf.Errorf("fields", "strip removes nothing: give fields or a preset"))
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
		p.json = append(p.json, stripJSON{idx: i, drop: inner, keep: innerKeep})
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
		if len(cols) > 0 {
			rec = replaceColumns(rec, names, cols)
			b.ReplaceRecord(rec)
		}
	}
	if out := dropColumns(rec, p.dropCols); out != nil {
		b.ReplaceRecord(out)
	}
	return b.Drop(s.mem, fates)
}

// rewrite returns the stripped column, or nil when no row changed.
func (s *Strip) rewrite(in *record.JSONArray, name string, j stripJSON, fates *map[int]pipeline.RowFate) arrow.Array {
	n := in.Len()
	bld := record.NewJSONBuilder(s.mem)
	defer bld.Release()
	sb := bld.StorageBuilder().(*array.StringBuilder)
	sb.Reserve(n)
	sb.ReserveData(len(in.Storage().(*array.String).ValueBytes()))
	changed := false
	var buf []byte
	for i := 0; i < n; i++ {
		if in.IsNull(i) {
			sb.AppendNull()
			continue
		}
		text := in.ValueBytes(i)
		out, ch, err := stripObject(text, j.drop, j.keep, buf[:0], 0)
		buf = out
		if err != nil {
			if *fates == nil {
				*fates = map[int]pipeline.RowFate{}
			}
			(*fates)[i] = reject("strip", name, "%s: not valid JSON (%v)", name, err)
			sb.BinaryBuilder.Append(text)
			continue
		}
		if ch {
			changed = true
			sb.BinaryBuilder.Append(out)
		} else {
			sb.BinaryBuilder.Append(text)
		}
	}
	if !changed {
		return nil
	}
	return bld.NewArray()
}
