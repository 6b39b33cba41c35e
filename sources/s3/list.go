package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/backfillhq/backfill/sources/glob"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// errEnough ends a listing early: a peek (PeekColumns) needs one object.
var errEnough = errors.New("s3 source: listed enough")

// listObjects lists every object under prefix (all pages), or until fn
// says it has enough (errEnough).
func (s *Source) listObjects(ctx context.Context, bucket, prefix string, fn func(key string, size int64, etag string) (enough bool)) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(int32(s.pageSize)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.listErr(bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if fn(aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag)) {
				return errEnough
			}
		}
	}
	return nil
}

// listDirs lists the "folders" directly under prefix (delimiter "/").
func (s *Source) listDirs(ctx context.Context, bucket, prefix string) ([]string, error) {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/"),
		MaxKeys: aws.Int32(int32(s.pageSize)),
	})
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.listErr(bucket, prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, aws.ToString(cp.Prefix))
		}
	}
	return out, nil
}

// listPlain lists objects under prefix matching the pattern (relative to
// prefix); without a pattern it skips hidden and marker files (_SUCCESS,
// .crc, "dir/" markers), which hold no rows.
func (s *Source) listPlain(ctx context.Context) ([]*object, error) {
	listPrefix := s.prefix + glob.LiteralPrefix(s.pattern)
	var out []*object
	keep := func(key string, size int64, etag string) bool {
		if size == 0 || strings.HasSuffix(key, "/") {
			return false
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(key, s.prefix), "/")
		if s.pattern != "" {
			if !glob.Match(s.pattern, rel) {
				return false
			}
		} else if base := path.Base(key); strings.HasPrefix(base, "_") || strings.HasPrefix(base, ".") {
			return false
		}
		o := &object{Bucket: s.bucket, Key: key, Size: size, ETag: etag}
		if s.layout == layoutHive {
			o.Partitions = hiveParts(rel)
			if !s.filter.match(o.Partitions) {
				return false
			}
		}
		out = append(out, o)
		return s.peek
	}
	if s.layout == layoutHive && len(s.filter) > 0 && len(s.filter) <= 64 {
		// Keys already fixed by the prefix (or the pattern's literal start)
		// are decided before the walk starts.
		var seen uint64
		if dir := strings.LastIndexByte(listPrefix, '/'); dir >= 0 {
			for k := range hiveParts(listPrefix[:dir+1] + "x") {
				if i := slices.Index(s.filterKeys, k); i >= 0 {
					seen |= 1 << i
				}
			}
		}
		return out, enough(s.walkHive(ctx, listPrefix, seen, keep))
	}
	return out, enough(s.listObjects(ctx, s.bucket, listPrefix, keep))
}

// enough is err, or nil when a peek's listing stopped at its object.
func enough(err error) error {
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

// walkHive lists a hive layout under partition filters without listing
// the folders they rule out: while a filtered partition key has not
// appeared on the path yet, it lists one level at a time and skips each
// key=value folder whose value fails its condition; once every filtered key
// is decided (seen is a bitmask over s.filterKeys), it lists the rest flat.
// keep still applies every filter to every object: pruning only saves
// listings, it never decides what is read.
func (s *Source) walkHive(ctx context.Context, prefix string, seen uint64, keep func(string, int64, string) bool) error {
	if seen == 1<<len(s.filterKeys)-1 {
		return s.listObjects(ctx, s.bucket, prefix, keep)
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/"),
		MaxKeys: aws.Int32(int32(s.pageSize)),
	})
	var dirs []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.listErr(s.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if keep(aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag)) {
				return errEnough
			}
		}
		for _, cp := range page.CommonPrefixes {
			dirs = append(dirs, aws.ToString(cp.Prefix))
		}
	}
	for _, d := range dirs {
		next := seen
		// The folder's own name: the listing prefix may end mid-name.
		if k, v, ok := strings.Cut(path.Base(strings.TrimSuffix(d, "/")), "="); ok {
			if i := slices.Index(s.filterKeys, k); i >= 0 {
				if u, err := url.PathUnescape(v); err == nil {
					v = u
				}
				if !s.filter[k].match(v) {
					s.prunedDirs++
					continue
				}
				next |= 1 << i
			}
		}
		if err := s.walkHive(ctx, d, next, keep); err != nil {
			return err
		}
	}
	return nil
}

// listArchive lists a Segment S3 destination:
// [prefix/]segment-logs/SOURCE_ID/RECEIVED_DAY/*.gz. Day folders are
// listed first (one delimiter listing per source) and only those inside
// from/to are listed further.
func (s *Source) listArchive(ctx context.Context) ([]*object, error) {
	base := s.prefix
	if base != "" && !strings.HasSuffix(base, "/") {
		base += "/"
	}
	base += "segment-logs/"
	var sources []string
	if len(s.sourceIDs) > 0 {
		for _, id := range s.sourceIDs {
			sources = append(sources, base+id+"/")
		}
	} else {
		var err error
		if sources, err = s.listDirs(ctx, s.bucket, base); err != nil {
			return nil, err
		}
	}
	var out []*object
	for _, src := range sources {
		days, err := s.listDirs(ctx, s.bucket, src)
		if err != nil {
			return nil, err
		}
		for _, d := range days {
			name := strings.TrimSuffix(strings.TrimPrefix(d, src), "/")
			day, ok := parseReceivedDay(name)
			if !ok {
				s.log.Warn("s3 source: skipping a folder that is not a received day", "folder", "s3://"+s.bucket+"/"+d)
				continue
			}
			if (!s.from.IsZero() && day.Before(s.from)) || (!s.to.IsZero() && day.After(s.to)) {
				continue
			}
			err := s.listObjects(ctx, s.bucket, d, func(key string, size int64, etag string) bool {
				if size == 0 || strings.HasSuffix(key, "/") {
					return false
				}
				if s.pattern != "" && !glob.Match(s.pattern, strings.TrimPrefix(key, d)) {
					return false
				}
				out = append(out, &object{Bucket: s.bucket, Key: key, Size: size, ETag: etag})
				return s.peek
			})
			if err != nil {
				return out, enough(err)
			}
		}
	}
	return out, nil
}

// parseReceivedDay reads a Segment received-day folder: a unix timestamp
// of the UTC day. Segment writes milliseconds (1700006400000); seconds are
// accepted too: a value below 1e11 would be before 1973 in milliseconds,
// so it must be seconds.
func parseReceivedDay(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	var t time.Time
	if n >= 1e11 {
		t = time.UnixMilli(n).UTC()
	} else {
		t = time.Unix(n, 0).UTC()
	}
	return t.Truncate(24 * time.Hour), true
}

// manifest is a Redshift UNLOAD manifest.
type manifest struct {
	Entries []struct {
		URL       string `json:"url"`
		Mandatory bool   `json:"mandatory"`
		Meta      struct {
			ContentLength *int64 `json:"content_length"`
		} `json:"meta"`
	} `json:"entries"`
}

// listManifest reads the manifest object and heads each entry (for its
// size and ETag). A missing mandatory entry is an error; a missing optional
// one is skipped with a warning.
func (s *Source) listManifest(ctx context.Context) ([]*object, error) {
	mb, mk := s.bucket, s.manifest
	if strings.HasPrefix(mk, "s3://") {
		var err error
		if mb, mk, err = splitURL(mk); err != nil {
			return nil, err
		}
	}
	mobj := &object{Bucket: mb, Key: mk}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(mb), Key: aws.String(mk)})
	if err != nil {
		return nil, s.objectErr("read manifest", mobj, err)
	}
	defer out.Body.Close()
	var m manifest
	// A manifest lists one line per file: 64 MiB is far beyond any real one.
	data, err := io.ReadAll(io.LimitReader(out.Body, 64<<20))
	if err != nil {
		return nil, s.objectErr("read manifest", mobj, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("s3 source: manifest %s is not a Redshift manifest ({\"entries\":[{\"url\":\"s3://...\"}]}): %w", mobj.url(), err)
	}
	var objs []*object
	for i, e := range m.Entries {
		b, k, err := splitURL(e.URL)
		if err != nil {
			return nil, fmt.Errorf("s3 source: manifest %s entry %d: %w", mobj.url(), i, err)
		}
		o, err := s.head(ctx, b, k)
		if err != nil {
			if !e.Mandatory && isNotFound(err) {
				s.log.Warn("s3 source: optional manifest entry is missing", "url", e.URL)
				continue
			}
			return nil, fmt.Errorf("manifest %s entry %d: %w", mobj.url(), i, err)
		}
		objs = append(objs, o)
		if s.peek {
			break
		}
	}
	return objs, nil
}

// listKeys heads each configured key.
func (s *Source) listKeys(ctx context.Context) ([]*object, error) {
	var objs []*object
	for _, k := range s.keys {
		b := s.bucket
		if strings.HasPrefix(k, "s3://") {
			var err error
			if b, k, err = splitURL(k); err != nil {
				return nil, err
			}
		}
		o, err := s.head(ctx, b, k)
		if err != nil {
			return nil, err
		}
		objs = append(objs, o)
		if s.peek {
			break
		}
	}
	return objs, nil
}

func (s *Source) head(ctx context.Context, bucket, key string) (*object, error) {
	o := &object{Bucket: bucket, Key: key}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.objectErr("head", o, err)
	}
	o.Size, o.ETag = aws.ToInt64(out.ContentLength), aws.ToString(out.ETag)
	return o, nil
}

func splitURL(u string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	bucket, key, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || bucket == "" || key == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/key URL", u)
	}
	return bucket, key, nil
}

// sortDedup orders objects by bucket and key (a stable split order across
// runs) and drops repeats.
func sortDedup(objs []*object) []*object {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].Bucket != objs[j].Bucket {
			return objs[i].Bucket < objs[j].Bucket
		}
		return objs[i].Key < objs[j].Key
	})
	out := objs[:0]
	for i, o := range objs {
		if i > 0 && o.Bucket == objs[i-1].Bucket && o.Key == objs[i-1].Key {
			continue
		}
		out = append(out, o)
	}
	return out
}

// hiveParts reads key=value segments of a relative key's folders
// (segment_type=track/day=2024-01-02/hr=05/part-0.parquet). Values are
// URL-unescaped as Hive escapes them.
func hiveParts(rel string) map[string]string {
	segs := strings.Split(rel, "/")
	var m map[string]string
	for _, seg := range segs[:len(segs)-1] {
		k, v, ok := strings.Cut(seg, "=")
		if !ok || k == "" {
			continue
		}
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
		if m == nil {
			m = map[string]string{}
		}
		m[k] = v
	}
	return m
}

// partFilter keeps the objects whose partitions pass every condition.
type partFilter map[string]partCond

type partCond struct {
	in       []string // equality: any of these
	from, to string   // inclusive range; "" is open
}

func (f partFilter) match(parts map[string]string) bool {
	for k, c := range f {
		v, ok := parts[k]
		if !ok || !c.match(v) {
			return false
		}
	}
	return true
}

func (c partCond) match(v string) bool {
	if len(c.in) > 0 {
		for _, x := range c.in {
			if v == x {
				return true
			}
		}
		return false
	}
	return (c.from == "" || compare(v, c.from) >= 0) && (c.to == "" || compare(v, c.to) <= 0)
}

// compare orders numbers numerically (hr=5 before hr=10) and everything
// else as text (ISO dates sort as text).
func compare(a, b string) int {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

func isNotFound(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}
