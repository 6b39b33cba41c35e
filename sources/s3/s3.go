// Package s3 is the s3 source: objects of a bucket (by prefix and glob,
// explicit keys, or a Redshift UNLOAD manifest) read as Parquet, CSV or
// NDJSON through the shared format readers. One split per object, ID
// "s3://bucket/key".
//
// Parquet is read with ranged GETs (footer, then only the column chunks
// needed, never the row groups before a resume offset), with a small
// capped read-ahead cache, so memory is bounded whatever the object size.
// CSV and NDJSON stream one GET per object.
//
// Layouts:
//   - plain (default): every object under prefix matching pattern.
//   - segment-archive: Segment's S3 destination,
//     [prefix/]segment-logs/SOURCE_ID/RECEIVED_DAY/*.gz, gzipped NDJSON by
//     default; source_ids and from/to (UTC received days, inclusive)
//     select the folders before any object is listed.
//   - hive: key=value folders (segment_type=track/day=2024-01-02/hr=05)
//     become constant string columns named partition_prefix+key
//     ("_partition.day" by default) on every batch, and partitions filters
//     them while listing: a folder whose value fails is not listed at all.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/backfillhq/backfill/internal/s3client"
	"github.com/backfillhq/backfill/sources/glob"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sources/format"
)

const (
	layoutPlain   = "plain"
	layoutArchive = "segment-archive"
	layoutHive    = "hive"
)

// spec is the s3 source's declared config.
func spec() *config.Spec {
	fields := []*config.Field{
		config.String("bucket", "bucket name").Example("acme-archive").Check(nonEmpty),
		config.String("prefix", "key prefix to read under").Default("").Example("exports/orders/"),
		config.String("pattern", "glob over keys relative to prefix; * and ? within a folder, ** across folders; without it every object under prefix except _hidden and .hidden files").
			Optional().Example("**/*.parquet").Check(func(v any) error { return glob.Check(v.(string)) }),
		config.Strings("keys", "explicit keys (or s3://bucket/key URLs) instead of listing").Optional(),
		config.String("manifest", "a Redshift UNLOAD manifest (key in bucket, or s3:// URL) listing the objects").Optional().
			Example("unload/orders/manifest"),
		config.String("layout", "how keys are organized: plain, segment-archive (Segment's S3 destination), hive (key=value folders become columns)").
			Default(layoutPlain).Enum(layoutPlain, layoutArchive, layoutHive),
		config.Strings("source_ids", "segment-archive: the Segment source ids to read; default all").Optional(),
		config.String("from", "segment-archive: first UTC received day to read (YYYY-MM-DD, inclusive)").Optional().
			Example("2024-01-01").Check(checkDay),
		config.String("to", "segment-archive: last UTC received day to read (YYYY-MM-DD, inclusive)").Optional().
			Example("2024-01-31").Check(checkDay),
		config.Map("partitions", "hive: filters on partition values, applied while listing (a folder whose value fails is never listed): `day: {from: 2024-01-01, to: 2024-01-31}` (inclusive; numbers compare as numbers), `segment_type: track` or a list of allowed values",
			config.Any("", "")).Optional(),
		config.String("partition_prefix", "hive: prefix of the partition column names (\"\" for bare names)").Default("_partition."),
		config.String("region", "bucket region; default from the environment/profile, else us-east-1").Optional().Example("eu-west-1"),
		config.String("profile", "shared config profile (~/.aws/config)").Optional(),
		config.String("role_arn", "IAM role to assume (STS) with the base credentials").Optional().
			Example("arn:aws:iam::123456789012:role/backfill-reader"),
		config.String("external_id", "external id for role_arn").Optional().Secret(),
		config.String("endpoint", "S3-compatible endpoint (MinIO, R2, GCS interop)").Optional().Example("http://localhost:9000"),
		config.Bool("path_style", "path-style addressing (endpoint/bucket/key); MinIO needs it").Default(false),
		config.Bool("anonymous", "send unsigned requests (public buckets, local servers without auth)").Default(false),
		config.String("access_key_id", "static access key id (emulators); prefer the default credential chain").Optional(),
		config.String("secret_access_key", "static secret key, with access_key_id").Optional().Secret(),
		config.String("session_token", "session token for temporary static keys").Optional().Secret(),
		config.Int("max_attempts", "attempts per request, transient errors (throttling, 5xx, resets) retried with backoff").
			Default(5).Check(config.Positive),
		config.Int("page_size", "keys per ListObjectsV2 page (max 1000)").Default(1000).Check(func(v any) error {
			if n := v.(int); n < 1 || n > 1000 {
				return errors.New("page_size must be between 1 and 1000")
			}
			return nil
		}),
		config.Int("read_ahead", "Parquet: bytes fetched per ranged GET when a column is read sequentially").
			Default(4 << 20).Check(config.Positive),
		config.Int("max_buffered", "Parquet: cap on read-ahead bytes held per open object, shared by the columns being read").Default(16 << 20).Check(config.Positive),
	}
	fields = append(fields, format.FieldSpecs()...)
	return config.NewSpec("objects of an S3 (or S3-compatible) bucket: Parquet, CSV or NDJSON", fields...).
		WithDescription(`The file source's formats, read in place from S3 or any S3-compatible
store (endpoint, path_style, anonymous: MinIO, R2, GCS interop). There is
one split per object, its ID s3://bucket/key. Formats, compression, bad
rows and unreadable objects are handled as in the file source (backfill
plugins file).

- Credentials come from the default chain (environment, shared profile,
  SSO, web identity, instance role), or from profile, role_arn or static
  keys. Errors name the bucket, the key and the credential source, never a
  secret.
- Objects come from bucket + prefix + pattern (a glob over keys), explicit
  keys, or a Redshift UNLOAD manifest. Listing is paginated and in a stable
  order.
- Parquet is read with ranged GETs and a bounded read-ahead (read_ahead,
  max_buffered) shared by the columns read, so a 100 MB+ object is read in
  about 30 MB of heap and each byte is fetched once. NDJSON and CSV are
  streamed, one GET per object.
- When the run plans, Parquet footers are read (one ranged GET each) to
  give the progress an exact total, for up to 256 objects. For more, a
  sample of 64 gives rows per byte, and the total starts as an estimate.
- layout: segment-archive reads Segment's S3 destination,
  segment-logs/SOURCE_ID/RECEIVED_DAY/*.gz (gzipped NDJSON), and lists only
  the source_ids and received days between from and to.
- layout: hive turns key=value folders (Data Lakes' day=, hr=,
  segment_type=) into columns named partition_prefix + key. partitions
  filters prune while listing: a folder whose value fails is never listed.
- Progress is saved per object version (its ETag): an object rewritten
  since an earlier run is read again from its start.`).
		Rules(
			config.AtMostOne("keys", "manifest").Message("set keys or manifest, not both"),
			config.Excludes("pattern", "keys", "manifest").Message("pattern filters a listing: it does not apply to keys or manifest"),
			config.Together("access_key_id", "secret_access_key").Message("access_key_id and secret_access_key go together"),
			config.When("anonymous", true).Excludes("access_key_id", "role_arn", "profile").
				Message("anonymous sends unsigned requests: drop access_key_id, role_arn and profile"),
		).
		WithExample("Parquet files under a prefix", `bucket: acme-exports
prefix: orders/
pattern: "**/*.parquet"
region: eu-west-1`).
		WithExample("Segment S3 destination archive, January 2024", `bucket: acme-segment-logs
layout: segment-archive
source_ids: [AbC123xyz]
from: 2024-01-01
to: 2024-01-31`).
		WithExample("Segment Data Lakes, tracks of one week", `bucket: acme-datalake
prefix: segment-data/data/SOURCE/
layout: hive
partitions:
  segment_type: track
  day: {from: 2024-03-01, to: 2024-03-07}`).
		WithExample("Redshift UNLOAD manifest with an assumed role", `bucket: acme-unload
manifest: orders/manifest
role_arn: arn:aws:iam::123456789012:role/backfill-reader
format: csv
csv: { header: false, delimiter: "|" }`).
		WithExample("local MinIO", `bucket: test
endpoint: http://127.0.0.1:9000
path_style: true
access_key_id: minioadmin
secret_access_key: ${MINIO_SECRET}`)
}

// Plugins declares the s3 source.
func Plugins() []config.Plugin { return []config.Plugin{config.SourcePlugin("s3", spec(), New)} }

func init() { config.Default.Register(Plugins()...) }

func nonEmpty(v any) error {
	if strings.TrimSpace(v.(string)) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func parseDay(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a day (YYYY-MM-DD)", s)
	}
	return t.UTC().Truncate(24 * time.Hour), nil
}

func checkDay(v any) error { _, err := parseDay(v.(string)); return err }

// Source is the s3 source.
type Source struct {
	client    *awss3.Client
	creds     *s3client.Creds
	region    string
	anonymous bool

	bucket, prefix, pattern string
	keys                    []string
	manifest                string
	layout                  string
	sourceIDs               []string
	from, to                time.Time
	filter                  partFilter
	filterKeys              []string // filter's keys, for walkHive's bitmask
	prunedDirs              int      // partition folders walkHive did not list
	partPrefix              string

	maxAttempts, pageSize  int
	readAhead, maxBuffered int64

	opts     format.Options
	mem      memory.Allocator
	log      *slog.Logger
	estimate int64 // rows, from Parquet footers (countParquetRows)
	peek     bool  // a copy listing for PeekColumns: stop at the first object
}

// New builds the source from its config. It reaches no network: the
// credential chain and the bucket are first used by Splits.
func New(c *config.Conf, env *pipeline.Env) (pipeline.Source, error) {
	s := &Source{
		bucket:      c.String("bucket"),
		prefix:      c.String("prefix"),
		pattern:     c.String("pattern"),
		keys:        c.Strings("keys"),
		manifest:    c.String("manifest"),
		layout:      c.String("layout"),
		sourceIDs:   c.Strings("source_ids"),
		partPrefix:  c.String("partition_prefix"),
		anonymous:   c.Bool("anonymous"),
		maxAttempts: c.Int("max_attempts"),
		pageSize:    c.Int("page_size"),
		readAhead:   int64(c.Int("read_ahead")),
		maxBuffered: int64(c.Int("max_buffered")),
		mem:         memory.DefaultAllocator,
		log:         slog.New(slog.DiscardHandler),
	}
	if env != nil && env.Alloc != nil {
		s.mem = env.Alloc
	}
	if env != nil && env.Logger != nil {
		s.log = env.Logger
	}
	var errs []error
	opts, err := format.OptionsFromConf(c)
	if err != nil {
		errs = append(errs, err)
	}
	s.opts = opts
	if s.layout == layoutArchive {
		// Segment's destination writes gzipped NDJSON whatever the names say.
		if !c.IsSet("format") {
			s.opts.Format = format.NDJSON
		}
		if !c.IsSet("compression") {
			s.opts.Compression = format.Gzip
		}
	}
	// The spec's rules saw to keys or manifest (not both, and no pattern
	// with them) and to the credentials that do not go together. What
	// depends on the layout's value is checked here.
	if (len(s.keys) > 0 || s.manifest != "") && s.layout != layoutPlain {
		errs = append(errs, c.Errorf("layout", "layout %s lists objects itself: drop keys/manifest", s.layout))
	}
	for _, f := range []string{"source_ids", "from", "to"} {
		if c.IsSet(f) && s.layout != layoutArchive {
			errs = append(errs, c.Errorf(f, "%s applies to layout: segment-archive", f))
		}
	}
	if c.IsSet("partitions") && s.layout != layoutHive {
		errs = append(errs, c.Errorf("partitions", "partitions applies to layout: hive"))
	}
	if v := c.String("from"); v != "" {
		s.from, _ = parseDay(v)
	}
	if v := c.String("to"); v != "" {
		s.to, _ = parseDay(v)
	}
	if !s.from.IsZero() && !s.to.IsZero() && s.to.Before(s.from) {
		errs = append(errs, c.Errorf("to", "to (%s) is before from (%s)", c.String("to"), c.String("from")))
	}
	filter, ferrs := parsePartitions(c)
	s.filter = filter
	s.filterKeys = slices.Sorted(maps.Keys(filter))
	errs = append(errs, ferrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cc := s3client.Config{
		Region: c.String("region"), Profile: c.String("profile"), RoleARN: c.String("role_arn"),
		ExternalID: c.String("external_id"), Endpoint: c.String("endpoint"), PathStyle: c.Bool("path_style"),
		Anonymous: s.anonymous, AccessKeyID: c.String("access_key_id"), SecretAccessKey: c.String("secret_access_key"),
		Token: c.String("session_token"), MaxAttempts: s.maxAttempts,
	}
	s.client, s.creds, s.region, err = s3client.NewClient(context.Background(), cc)
	if err != nil {
		return nil, c.Errorf("profile", "%v", err)
	}
	return s, nil
}

// parsePartitions reads `partitions:`: a value, a list of values, or
// {from, to}.
func parsePartitions(c *config.Conf) (partFilter, []error) {
	entries := c.Map("partitions")
	if len(entries) == 0 {
		return nil, nil
	}
	f := partFilter{}
	var errs []error
	path := c.Path() + "/partitions/"
	bad := func(e config.MapEntry, format string, args ...any) {
		errs = append(errs, c.NodeErrorf(e.Node, path+e.Key, format, args...))
	}
	scalar := func(v any) (string, bool) {
		switch x := v.(type) {
		case string:
			return x, true
		case int, int64, float64, bool:
			return fmt.Sprint(x), true
		case time.Time:
			// YAML reads an unquoted 2024-01-02 as a timestamp.
			if x.Equal(x.Truncate(24 * time.Hour)) {
				return x.Format("2006-01-02"), true
			}
			return x.Format(time.RFC3339), true
		}
		return "", false
	}
	for _, e := range entries {
		switch v := e.Value.(type) {
		case []any:
			var cond partCond
			for _, x := range v {
				s, ok := scalar(x)
				if !ok {
					bad(e, "list items must be values")
				}
				cond.in = append(cond.in, s)
			}
			if len(cond.in) == 0 {
				bad(e, "an empty list matches nothing")
			}
			f[e.Key] = cond
		case map[string]any:
			var cond partCond
			for k, x := range v {
				s, ok := scalar(x)
				switch {
				case !ok:
					bad(e, "%s must be a value", k)
				case k == "from":
					cond.from = s
				case k == "to":
					cond.to = s
				default:
					bad(e, "unknown key %q: a range has from and to", k)
				}
			}
			f[e.Key] = cond
		default:
			s, ok := scalar(v)
			if !ok {
				bad(e, "expected a value, a list of values or {from, to}")
				continue
			}
			f[e.Key] = partCond{in: []string{s}}
		}
	}
	return f, errs
}

// Splits lists the objects, one split each, in key order. A listing that
// matches nothing is an error: it is almost always a wrong prefix.
func (s *Source) Splits(ctx context.Context) ([]pipeline.Split, error) {
	if err := s.resolveCreds(ctx); err != nil {
		return nil, err
	}
	var objs []*object
	var err error
	what := "s3://" + s.bucket + "/" + s.prefix
	switch {
	case len(s.keys) > 0:
		objs, err = s.listKeys(ctx)
		what = fmt.Sprintf("the %d configured keys", len(s.keys))
	case s.manifest != "":
		objs, err = s.listManifest(ctx)
		what = "manifest " + s.manifest
	case s.layout == layoutArchive:
		objs, err = s.listArchive(ctx)
		what += "segment-logs/ (source_ids, from/to)"
	default:
		objs, err = s.listPlain(ctx)
		if s.pattern != "" {
			what += " with pattern " + s.pattern
		}
		if s.filter != nil {
			what += " with the partition filters"
			if s.prunedDirs > 0 {
				s.log.Info("s3 source: partition filters skipped folders without listing them", "folders", s.prunedDirs)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	objs = sortDedup(objs)
	if len(objs) == 0 {
		return nil, fmt.Errorf("s3 source: no objects matched in %s [credentials: %s; region %s]", what, s.creds, s.region)
	}
	out := make([]pipeline.Split, len(objs))
	for i, o := range objs {
		out[i] = pipeline.Split{ID: o.url(), Rows: -1, Bytes: o.Size, Info: o}
		if o.ETag != "" {
			out[i].Version = "etag " + strings.Trim(o.ETag, `"`)
		}
	}
	s.estimate = s.countParquetRows(ctx, out)
	return out, nil
}

// EstimatedRows is the rows the Parquet footers read by Splits count or
// suggest (0 when the objects are not all Parquet).
func (s *Source) EstimatedRows() int64 { return s.estimate }

// Open reads one object from row ro.Offset.
func (s *Source) Open(ctx context.Context, split pipeline.Split, ro pipeline.ReadOptions) (pipeline.RecordReader, error) {
	obj, ok := split.Info.(*object)
	if !ok {
		return nil, fmt.Errorf("s3 source: split %s was not listed by this source", split.ID)
	}
	// Reads happen in later Next calls; they stop at Close, not when the
	// caller's open context ends.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ra := newRangeReader(rctx, s, obj)
	in := format.Input{
		Name:     obj.url(),
		Size:     obj.Size,
		Open:     func(ctx context.Context) (io.ReadCloser, error) { return s.openBody(rctx, obj) },
		ReaderAt: ra,
		// Reads of a column chunk larger than the read-ahead are fetched
		// as they are; smaller ones are read ahead into blocks that, with
		// many columns, the buffer cap evicts before they are used.
		ChunkBuffer: 1 << 20,
	}
	parts := s.partColumns(obj)
	inner := ro
	if len(parts) > 0 && !ro.Columns.All {
		// Partition columns are made here, not read from the file.
		inner.Columns = pipeline.Columns{}
		for _, n := range ro.Columns.Names {
			if !hasPart(parts, n) {
				inner.Columns.Names = append(inner.Columns.Names, n)
			}
		}
	}
	rr, err := format.Open(ctx, in, split.ID, s.opts, inner, s.mem)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &reader{rr: rr, cancel: cancel, ra: ra, mem: s.mem}
	for _, p := range parts {
		r.partNames = append(r.partNames, p.name)
		if ro.Columns.All || contains(ro.Columns.Names, p.name) {
			r.parts = append(r.parts, p)
		}
	}
	return r, nil
}

type partCol struct{ name, value string }

func (s *Source) partColumns(obj *object) []partCol {
	if s.layout != layoutHive || len(obj.Partitions) == 0 {
		return nil
	}
	keys := make([]string, 0, len(obj.Partitions))
	for k := range obj.Partitions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]partCol, len(keys))
	for i, k := range keys {
		out[i] = partCol{s.partPrefix + k, obj.Partitions[k]}
	}
	return out
}

func hasPart(parts []partCol, name string) bool {
	for _, p := range parts {
		if p.name == name {
			return true
		}
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// reader adds the partition columns to the format reader's batches and
// stops the object's reads on Close.
type reader struct {
	rr     pipeline.RecordReader
	cancel context.CancelFunc
	ra     *rangeReader
	parts  []partCol
	mem    memory.Allocator

	// The data's columns with every partition column added
	// (pipeline.DataColumns), made once for each input schema.
	partNames []string
	inSch     *arrow.Schema
	md        arrow.Metadata
}

func (r *reader) Next(ctx context.Context) (*pipeline.Batch, error) {
	b, err := r.rr.Next(ctx)
	if err != nil || len(r.partNames) == 0 || b.Record == nil {
		return b, err
	}
	if sch := b.Record.Schema(); sch != r.inSch {
		r.inSch, r.md = sch, sch.Metadata()
		if names := pipeline.DataColumns(sch); names != nil {
			r.md = pipeline.DataColumnsMetadata(r.md, append(names, r.partNames...))
		}
	}
	rec, err := addConstColumns(r.mem, b.Record, r.parts, r.md)
	if err != nil {
		b.Release()
		return nil, fmt.Errorf("s3 source: %s: %w", b.Split, err)
	}
	b.ReplaceRecord(rec)
	return b, nil
}

func (r *reader) Close() error {
	err := r.rr.Close()
	r.cancel()
	return err
}

// addConstColumns returns rec with one string column per partition, each
// holding the partition's value on every row, and md as its schema's
// metadata.
func addConstColumns(mem memory.Allocator, rec arrow.Record, parts []partCol, md arrow.Metadata) (arrow.Record, error) {
	n := int(rec.NumRows())
	fields := append([]arrow.Field(nil), rec.Schema().Fields()...)
	cols := append([]arrow.Array(nil), rec.Columns()...)
	var made []arrow.Array
	defer func() {
		for _, a := range made {
			a.Release()
		}
	}()
	for _, p := range parts {
		if len(rec.Schema().FieldIndices(p.name)) > 0 {
			return nil, fmt.Errorf("the file already has a column %q: set partition_prefix to name the partition columns apart", p.name)
		}
		bld := array.NewStringBuilder(mem)
		bld.ReserveData(n * len(p.value))
		bld.Reserve(n)
		for i := 0; i < n; i++ {
			bld.Append(p.value)
		}
		a := bld.NewArray()
		bld.Release()
		made = append(made, a)
		fields = append(fields, arrow.Field{Name: p.name, Type: arrow.BinaryTypes.String})
		cols = append(cols, a)
	}
	return array.NewRecord(arrow.NewSchema(fields, &md), cols, int64(n)), nil
}
