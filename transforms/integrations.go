package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unsafe"

	"github.com/backfillhq/backfill/internal/jsonscan"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/bitutil"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

// knownDestinations are integration names as Segment spells them, to catch
// likely typos (names are case-sensitive). Not exhaustive: an unknown name
// is fine, a near miss of a known one gets a warning.
var knownDestinations = []string{"All", "Warehouses", "Segment.io", "Amplitude", "Mixpanel", "Google Analytics",
	"Google Analytics 4", "Google Tag Manager", "Intercom", "Braze", "Salesforce", "HubSpot", "Customer.io",
	"Facebook Pixel", "Facebook Conversions API", "Heap", "FullStory", "Iterable", "Klaviyo", "Kissmetrics",
	"Vero", "Zendesk", "Marketo V2", "Optimizely", "Appcues", "Pendo", "Slack", "Webhooks", "Webhook",
	"Google Ads Conversions", "Snowflake", "BigQuery", "Redshift", "Mailchimp", "Sendgrid", "Pardot", "Hotjar",
	"Mixpanel (Actions)", "Amplitude (Actions)", "Actions Amplitude", "Actions Google Analytic 4"}

func integrationsSpec() *config.Spec {
	return config.NewSpec("set the integrations object of every message (which destinations receive it)",
		config.Map("destinations", `destination name (case-sensitive, as in Segment) -> true, false or an options object; "All" is the default for unnamed destinations; {All: false} still reaches warehouses unless Warehouses: {all: false}`,
			config.Any("", "")).Optional().
			Example(map[string]any{"All": false, "Amplitude": true, "Warehouses": map[string]any{"all": false}}),
		config.String("mode", "replace: the configured object replaces any in the data; merge: keep the data's object and set the configured keys over it").
			Default("replace").Enum("replace", "merge"),
		config.String("from_column", "take each row's object from this column (JSON text); destinations are set over it").Optional(),
	).WithExtra(config.Any("", "a destination, as in Segment's integrations object (same as under destinations)")).
		WithDescription(`Destinations may be written directly, as in Segment's own integrations
object ({All: false, Vero: true}), or under destinations:; both together
are merged.`).
		WithExample("replay to one destination only, written as Segment writes it", `All: false
Amplitude: true
Warehouses: {all: false}`).
		WithExample("the same under destinations", `destinations:
  All: false
  Amplitude: true
  Warehouses: {all: false}`).
		WithExample("keep per-message choices, never to warehouses", `mode: merge
destinations: {Warehouses: {all: false}}`)
}

// Integrations is the integrations transform.
type Integrations struct {
	text    []byte          // the configured object as JSON, keys in file order
	keys    map[string]bool // its keys
	keyList []string        // the same, for hasKey
	members []byte          // its members without braces, for merging
	merge   bool
	from    string
	konst   *constColumn
	mem     memory.Allocator
	namedColumns
}

func newIntegrations(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	t := &Integrations{merge: conf.String("mode") == "merge", from: conf.String("from_column"), mem: env.Alloc, keys: map[string]bool{}}
	var errs []error
	var members []string
	dests := append(conf.Map("destinations"), conf.Extra()...)
	for _, e := range dests {
		path := conf.Path() + "/destinations/" + e.Key
		if t.keys[e.Key] {
			errs = append(errs, conf.NodeErrorf(e.Node, path, "%s is set twice", e.Key))
			continue
		}
		switch v := e.Value.(type) {
		case bool:
		case map[string]any:
			if e.Key == "Warehouses" {
				if _, ok := v["All"]; ok {
					warn(env, conf, e, `Warehouses takes "all" in lower case: {all: false}`)
				}
			}
		default:
			errs = append(errs, conf.NodeErrorf(e.Node, path, "%s: want true, false or an options object, got %v", e.Key, e.Value))
			continue
		}
		if !contains(knownDestinations, e.Key) {
			if s := config.Suggest(e.Key, knownDestinations); s != "" {
				warn(env, conf, e, fmt.Sprintf("%q is not a destination name Segment knows; did you mean %q? (names are case-sensitive)", e.Key, s))
			}
		}
		k, _ := json.Marshal(e.Key)
		v, err := json.Marshal(e.Value)
		if err != nil {
			errs = append(errs, conf.NodeErrorf(e.Node, path, "%s: %v", e.Key, err))
			continue
		}
		members = append(members, string(k)+":"+string(v))
		t.keys[e.Key] = true
		t.keyList = append(t.keyList, e.Key)
	}
	if conf.IsSet("destinations") && len(dests) == 0 && !t.merge {
		errs = append(errs, conf.Errorf("destinations", "destinations is empty: an empty integrations object changes nothing"))
	}
	if len(dests) == 0 && t.from == "" {
		errs = append(errs, conf.Errorf("destinations", "integrations needs destinations or from_column"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t.members = []byte(strings.Join(members, ","))
	t.text = []byte("{" + string(t.members) + "}")
	t.konst = &constColumn{val: t.text, typ: record.JSON}
	if t.from != "" {
		t.nameField(conf, "from_column")
	}
	return t, nil
}

func warn(env *pipeline.Env, conf *config.Conf, e config.MapEntry, msg string) {
	if env.Logger == nil {
		return
	}
	env.Logger.Warn("integrations: "+msg, slog.String("at", conf.NodeErrorf(e.Node, conf.Path()+"/destinations/"+e.Key, "").Error()))
}

// Apply writes the integrations column.
func (t *Integrations) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	rec := b.Record
	n := int(rec.NumRows())
	base := t.from
	if base == "" && t.merge {
		base = record.Integrations
	}
	idx := -1
	if base != "" {
		idx = colIndex(rec.Schema(), base)
		if idx < 0 && t.from != "" {
			return missingColumn("integrations: from_column", t.from, rec.Schema())
		}
	}
	var out arrow.Array
	var fates map[int]pipeline.RowFate
	if idx < 0 {
		out = t.konst.get(n)
	} else {
		b.DecodeDictionaries(t.mem, named(base))
		rec = b.Record
		in := rec.Column(idx)
		if !isStringLike(in.DataType()) {
			return fmt.Errorf("integrations: column %q is %s; want JSON text", base, in.DataType())
		}
		out, fates = t.mergeColumn(in, base)
	}
	defer out.Release()
	return replaceAndDrop(b, t.mem, replaceColumns(rec, []string{record.Integrations}, []arrow.Array{out}), fates)
}

// mergeColumn sets the configured keys over each row's object. Rows are
// written straight into the new column's buffers, sized once for the
// longest possible result (a row keeps at most all its bytes and gains
// the configured members and a comma), so nothing is copied twice and
// the data buffer never grows.
func (t *Integrations) mergeColumn(in arrow.Array, name string) (arrow.Array, map[int]pipeline.RowFate) {
	n := in.Len()
	// string and JSON columns are read without stringAt's type switch
	var strs *array.String
	switch x := in.(type) {
	case *array.String:
		strs = x
	case *record.JSONArray:
		strs, _ = x.Storage().(*array.String)
	}
	at := func(i int) string {
		if strs != nil {
			return strs.Value(i)
		}
		s, _ := stringAt(in, i)
		return s
	}
	bound := 0
	for i := 0; i < n; i++ {
		s := at(i)
		if in.IsNull(i) || s == "" {
			bound += len(t.text)
		} else {
			bound += len(s) + len(t.members) + 2
		}
	}
	data := memory.NewResizableBuffer(t.mem)
	defer data.Release()
	data.Reserve(bound + 1)
	offs := memory.NewResizableBuffer(t.mem)
	defer offs.Release()
	offs.Resize((n + 1) * arrow.Int32SizeBytes)
	o := arrow.Int32Traits.CastFromBytes(offs.Bytes())
	out := data.Buf()[:0]
	var valid *memory.Buffer // only when a row is rejected (written as null)
	nulls := 0
	var fates map[int]pipeline.RowFate
	var ms []jsonscan.Member
	for i := 0; i < n; i++ {
		o[i] = int32(len(out))
		s := at(i)
		if in.IsNull(i) || s == "" {
			out = append(out, t.text...)
			continue
		}
		text := unsafe.Slice(unsafe.StringData(s), len(s)) // read only, no copy
		var isObj bool
		var err error
		ms, isObj, err = jsonscan.Members(text, ms[:0])
		if err != nil || !isObj {
			if fates == nil {
				fates = map[int]pipeline.RowFate{}
			}
			fates[i] = reject("integrations", name, "%s: %.80q is not a JSON object", name, s)
			if valid == nil {
				valid = memory.NewResizableBuffer(t.mem)
				defer valid.Release()
				valid.Resize(int(bitutil.BytesForBits(int64(n))))
				bitutil.SetBitsTo(valid.Bytes(), 0, int64(n), true)
			}
			bitutil.ClearBit(valid.Bytes(), i)
			nulls++
			continue
		}
		start := len(out)
		out = append(out, '{')
		for _, m := range ms {
			if t.hasKey(m.Name()) {
				continue
			}
			if len(out) > start+1 {
				out = append(out, ',')
			}
			out = append(out, text[m.Start:m.End]...)
		}
		if len(t.members) > 0 {
			if len(out) > start+1 {
				out = append(out, ',')
			}
			out = append(out, t.members...)
		}
		out = append(out, '}')
	}
	o[n] = int32(len(out))
	if len(out) > 0 && &out[0] != &data.Buf()[0] { // cannot happen (bound); stay correct if it does
		data.Resize(len(out))
		copy(data.Bytes(), out)
	} else {
		data.ResizeNoShrink(len(out))
	}
	d := array.NewData(arrow.BinaryTypes.String, n, []*memory.Buffer{valid, offs, data}, nil, nulls, 0)
	defer d.Release()
	str := array.NewStringData(d)
	defer str.Release()
	return array.NewExtensionArrayWithStorage(record.JSON, str), fates
}

// hasKey is t.keys[k]; a configured object has a few keys, which a loop
// compares faster than a map hashes.
func (t *Integrations) hasKey(k string) bool {
	if len(t.keyList) > 8 {
		return t.keys[k]
	}
	for _, c := range t.keyList {
		if c == k {
			return true
		}
	}
	return false
}

// Requires adds from_column (or the data's integrations when merging).
func (t *Integrations) Requires(out pipeline.Columns) pipeline.Columns {
	switch {
	case t.from != "":
		return requireNames(withoutName(out, record.Integrations), t.from)
	case t.merge:
		return requireNames(out, record.Integrations)
	}
	return withoutName(out, record.Integrations)
}
