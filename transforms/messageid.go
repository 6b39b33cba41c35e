package transforms

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/pipeline/record"
)

func messageIDSpec() *config.Spec {
	return config.NewSpec("derive deterministic messageIds, so reruns and retries send the same ids",
		config.Strings("key", "columns that identify a row; the id is a hash of the pipeline name, the salt and their values. Default: the from column (the original messageId)").
			Optional().Example([]string{"order_id"}),
		config.String("from", "with no key: the column holding the original id").Default(record.MessageID),
		config.String("salt", "mixed into the hash: change it to send the same rows again as new messages (a replay that Segment must not drop as duplicates of the originals)").
			Optional().Example("replay-2024-06"),
		config.String("mode", "derive: always write a derived id; keep: keep a present, non-empty messageId under 100 characters and derive only the missing ones").
			Default("derive").Enum("derive", "keep"),
	).WithDescription(`Ids are UUID-shaped (8-4-4-4-12, version 8): the first 128 bits of
SHA-256 over the pipeline name, the salt and the key values (each length-
prefixed; numbers, booleans and times in a canonical text form, so 42 and
"42" give the same id). A row whose key values are all null is rejected.

Without this transform, a message with no messageId gets one from the sink,
derived from the pipeline name, the split and the row (a version-5 UUID),
so a rerun or a retry sends the same ids and Segment drops the copies.
Use key when rows may move between runs (a re-exported table), and salt
to replay an archive whose original messageIds Segment has already seen.`).
		WithExample("replaying an archive", `salt: replay-2024-06`).
		WithExample("one id per order line", `key: [order_id, line_no]`)
}

// MessageID is the message_id transform.
type MessageID struct {
	keys   []string
	prefix []byte // hash input shared by every row: name and salt
	keep   bool
	mem    memory.Allocator
	namedColumns
}

func newMessageID(conf *config.Conf, env *pipeline.Env) (pipeline.Transform, error) {
	m := &MessageID{keys: conf.Strings("key"), keep: conf.String("mode") == "keep", mem: env.Alloc}
	var errs []error
	if conf.IsSet("key") && len(m.keys) == 0 {
		errs = append(errs, conf.Errorf("key", "key is empty: name the columns that identify a row"))
	}
	if len(m.keys) == 0 {
		m.keys = []string{conf.String("from")}
		if m.keys[0] == record.MessageID && m.keep {
			errs = append(errs, conf.Errorf("mode", "mode keep derives ids for rows without a messageId: give key columns to derive them from"))
		}
	}
	seen := map[string]bool{}
	for _, k := range m.keys {
		if seen[k] || k == "" {
			errs = append(errs, conf.Errorf("key", "key column %q is empty or repeated", k))
		}
		seen[k] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.prefix = appendPart(appendPart(nil, []byte(env.Name)), []byte(conf.String("salt")))
	if conf.IsSet("key") {
		m.nameItems(conf, "key")
	} else {
		m.nameField(conf, "from")
	}
	return m, nil
}

func appendPart(buf, p []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(p)))
	return append(buf, p...)
}

// Apply writes the messageId column.
func (m *MessageID) Apply(_ context.Context, b *pipeline.Batch) error {
	if b.Record == nil {
		return nil
	}
	// Keys hash through their text, and a kept messageId must be read as
	// a string: both as plain columns.
	b.DecodeDictionaries(m.mem, func(n string) bool { return n == record.MessageID && m.keep || slices.Contains(m.keys, n) })
	rec := b.Record
	keys := make([]arrow.Array, len(m.keys))
	for k, name := range m.keys {
		i := colIndex(rec.Schema(), name)
		if i < 0 {
			return missingColumn("message_id", name, rec.Schema())
		}
		keys[k] = rec.Column(i)
	}
	var existing arrow.Array
	if m.keep {
		if i := colIndex(rec.Schema(), record.MessageID); i >= 0 {
			existing = rec.Column(i)
		}
	}
	n := int(rec.NumRows())
	bld := array.NewStringBuilder(m.mem)
	defer bld.Release()
	bld.Reserve(n)
	bld.ReserveData(n * 36)
	var fates map[int]pipeline.RowFate
	buf := make([]byte, 0, 256)
	var val []byte
	var id [36]byte
	for i := 0; i < n; i++ {
		if existing != nil && !existing.IsNull(i) {
			if s, ok := stringAt(existing, i); ok && s != "" && len(s) < 100 {
				bld.Append(s)
				continue
			}
		}
		buf = append(buf[:0], m.prefix...)
		nulls := 0
		for _, k := range keys {
			if k.IsNull(i) {
				nulls++
				buf = append(buf, 0xff) // null differs from every length prefix of a value
				continue
			}
			val = canonicalValue(val[:0], k, i)
			buf = appendPart(buf, val)
		}
		if nulls == len(keys) {
			if fates == nil {
				fates = map[int]pipeline.RowFate{}
			}
			fates[i] = reject("message_id", m.keys[0], "message_id: %s is null: nothing to derive a messageId from", strings.Join(m.keys, ", "))
			bld.AppendNull()
			continue
		}
		sum := sha256.Sum256(buf)
		formatUUID(&id, sum[:16])
		bld.BinaryBuilder.Append(id[:])
	}
	out := bld.NewArray()
	defer out.Release()
	return replaceAndDrop(b, m.mem, replaceColumns(rec, []string{record.MessageID}, []arrow.Array{out}), fates)
}

const hexDigits = "0123456789abcdef"

// formatUUID writes h as a version-8 (custom) RFC 9562 UUID.
func formatUUID(dst *[36]byte, h []byte) {
	var u [16]byte
	copy(u[:], h)
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
}

// canonicalValue renders row i as text that does not depend on the column
// type a source chose: 42 (int64) and "42" (string) give the same bytes.
func canonicalValue(buf []byte, a arrow.Array, i int) []byte {
	if s, ok := stringAt(a, i); ok {
		return append(buf, s...)
	}
	switch x := a.(type) {
	case *array.Int8, *array.Int16, *array.Int32, *array.Int64, *array.Uint8, *array.Uint16, *array.Uint32:
		return strconv.AppendInt(buf, numAsInt(a, i), 10)
	case *array.Uint64:
		return strconv.AppendUint(buf, x.Value(i), 10)
	case *array.Float32, *array.Float64:
		return strconv.AppendFloat(buf, numAsFloat(a, i), 'g', -1, 64)
	case *array.Boolean:
		return strconv.AppendBool(buf, x.Value(i))
	case *array.Timestamp:
		unit := x.DataType().(*arrow.TimestampType).Unit
		return x.Value(i).ToTime(unit).UTC().AppendFormat(buf, time.RFC3339Nano)
	}
	return append(buf, a.ValueStr(i)...)
}

// Requires is the key columns, and messageId when kept.
func (m *MessageID) Requires(out pipeline.Columns) pipeline.Columns {
	names := append([]string(nil), m.keys...)
	if m.keep {
		names = append(names, record.MessageID)
	} else {
		out = withoutName(out, record.MessageID)
	}
	return requireNames(out, names...)
}

// String describes the transform for logs.
func (m *MessageID) String() string { return fmt.Sprintf("message_id(key=%v keep=%v)", m.keys, m.keep) }
