package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/backfillhq/backfill/internal/s3client"
)

// S3Store is a checkpoint kept as one S3 object per shard, so the workers
// of a sharded run (or a CronJob whose pods come and go) share it. Writes
// are conditional on the ETag last seen, so two runs of the same shard
// cannot silently overwrite each other's progress.
type S3Store struct {
	client *s3.Client
	bucket string
	key    string
	creds  *s3client.Creds
	mu     sync.Mutex
	etag   string // of the object as last loaded or saved; "" = none yet
	loaded bool
	// inDoubt is the body of the last PUT that failed: it may have landed
	// all the same (a lost response), leaving etag stale.
	inDoubt []byte
}

// OpenS3 opens the store `state: s3://bucket/prefix?options` names. Client
// settings come from the URL's query: endpoint, path_style, region,
// profile, anonymous; credentials from the default chain.
func OpenS3(ctx context.Context, stateURL, name string, shard, shards int) (*S3Store, error) {
	bucket, prefix, cc, err := parseS3URL("state", stateURL)
	if err != nil {
		return nil, err
	}
	client, info, _, err := s3client.NewClient(ctx, cc)
	if err != nil {
		return nil, err
	}
	key := path.Join(prefix, name, CheckpointFile(shard, shards))
	return &S3Store{client: client, bucket: bucket, key: key, creds: info}, nil
}

// parseS3URL reads s3://bucket/prefix?options, as `state` and `ledger`
// take it (field names which in errors): client settings come from the
// query (endpoint, path_style, region, profile, anonymous), credentials
// from the default chain.
func parseS3URL(field, raw string) (bucket, prefix string, cc s3client.Config, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", "", cc, fmt.Errorf("%s %q: want s3://bucket/prefix", field, raw)
	}
	q := u.Query()
	cc = s3client.Config{Region: q.Get("region"), Profile: q.Get("profile"), Endpoint: q.Get("endpoint"), MaxAttempts: 5}
	for k, dst := range map[string]*bool{"path_style": &cc.PathStyle, "anonymous": &cc.Anonymous} {
		if v := q.Get(k); v != "" {
			if *dst, err = strconv.ParseBool(v); err != nil {
				return "", "", cc, fmt.Errorf("%s %q: %s=%q is not true or false", field, redactURL(u), k, v)
			}
		}
	}
	for k := range q {
		switch k {
		case "region", "profile", "endpoint", "path_style", "anonymous":
		default:
			return "", "", cc, fmt.Errorf("%s %q: unknown option %q (known: endpoint, path_style, region, profile, anonymous)", field, redactURL(u), k)
		}
	}
	return u.Host, strings.Trim(u.Path, "/"), cc, nil
}

func redactURL(u *url.URL) string { c := *u; c.User = nil; return c.String() }

// Location names the object.
func (s *S3Store) Location() string { return "s3://" + s.bucket + "/" + s.key }

// Load reads the checkpoint; nil when there is none yet.
func (s *S3Store) Load(ctx context.Context) (*Checkpoint, error) {
	data, etag, err := s.get(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			s.etag = ""
			return nil, nil
		}
		return nil, s.wrap("reading", err)
	}
	s.etag = etag
	return Decode(data, s.Location())
}

// Save writes the checkpoint if nobody else wrote it since this store
// last did.
func (s *S3Store) Save(ctx context.Context, c *Checkpoint) error {
	data, err := Encode(c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.put(ctx, data)
	if !preconditionFailed(err) {
		if err != nil {
			s.inDoubt = data
			return s.wrap("writing", err)
		}
		s.inDoubt = nil
		return nil
	}
	// Someone wrote since the ETag this store knows. It may have been this
	// store: a PUT whose response was lost (a reset, a timeout) can land,
	// and the SDK's retry or the next save then asks for the old ETag.
	cur, etag, gerr := s.get(ctx)
	if gerr != nil {
		return s.wrap("reading (after a conditional write failed)", gerr)
	}
	switch {
	case bytes.Equal(cur, data):
		s.etag, s.inDoubt = etag, nil
		return nil
	case s.inDoubt != nil && bytes.Equal(cur, s.inDoubt):
		s.etag, s.inDoubt = etag, nil
		if err = s.put(ctx, data); err == nil {
			return nil
		}
		if !preconditionFailed(err) {
			s.inDoubt = data
			return s.wrap("writing", err)
		}
	}
	return fmt.Errorf("%w: checkpoint %s was written by another run of the same pipeline and shard since this one "+
		"read it; stop the other run (or give each worker its own --shard)", ErrConflict, s.Location())
}

// put writes data on condition that the object is still the one this
// store last saw (or, when it saw none, that there is none).
func (s *S3Store) put(ctx context.Context, data []byte) error {
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: &s.key, Body: bytes.NewReader(data),
		ContentType: aws.String("application/json")}
	switch {
	case s.etag != "":
		in.IfMatch = aws.String(s.etag)
	case s.loaded:
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return err
	}
	s.etag = aws.ToString(out.ETag)
	return nil
}

// get reads the object as it is now.
func (s *S3Store) get(ctx context.Context) ([]byte, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &s.key})
	if err != nil {
		return nil, "", err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	return data, aws.ToString(out.ETag), err
}

func preconditionFailed(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict")
}

func (s *S3Store) wrap(op string, err error) error {
	return fmt.Errorf("%s checkpoint %s: %w [credentials: %s]", op, s.Location(), err, s.creds)
}

var _ DeadLetterStore = (*S3Store)(nil)

// Dead letters are kept beside the checkpoint, one object per part:
// CHECKPOINT.dead-letters/RUN/part-000001.ndjson.
func (s *S3Store) deadLetterPrefix(run string) string {
	return strings.TrimSuffix(s.key, ".json") + ".dead-letters/" + run + "/"
}

// DeadLetterLocation names the folder of a run's dead-letter parts.
func (s *S3Store) DeadLetterLocation(run string) string {
	return "s3://" + s.bucket + "/" + s.deadLetterPrefix(run)
}

func (s *S3Store) partKey(run string, part int) string {
	return fmt.Sprintf("%spart-%06d.ndjson", s.deadLetterPrefix(run), part)
}

// PutDeadLetters writes one part (again, whole, when a save is retried).
func (s *S3Store) PutDeadLetters(ctx context.Context, run string, part int, r io.ReadSeeker, size int64) error {
	key := s.partKey(run, part)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: r,
		ContentLength: aws.Int64(size), ContentType: aws.String("application/x-ndjson")})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w [credentials: %s]", s.bucket, key, err, s.creds)
	}
	return nil
}

// ReadDeadLetters streams parts 1..parts of a run to fn.
func (s *S3Store) ReadDeadLetters(ctx context.Context, run string, parts int, fn func(io.Reader) error) error {
	for part := 1; part <= parts; part++ {
		key := s.partKey(run, part)
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
		if err != nil {
			return fmt.Errorf("reading s3://%s/%s: %w [credentials: %s]", s.bucket, key, err, s.creds)
		}
		err = fn(out.Body)
		out.Body.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

var _ SnapshotStore = (*S3Store)(nil)

// The sync snapshot's copy is kept beside the checkpoint:
// CHECKPOINT.snapshot/NAME.
func (s *S3Store) snapshotKey(name string) string {
	return strings.TrimSuffix(s.key, ".json") + ".snapshot/" + name
}

// SnapshotLocation names the folder of the sync snapshot's copy.
func (s *S3Store) SnapshotLocation() string {
	return "s3://" + s.bucket + "/" + s.snapshotKey("")
}

// PutSnapshotFile writes one file of the snapshot's copy.
func (s *S3Store) PutSnapshotFile(ctx context.Context, name, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	key := s.snapshotKey(name)
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: f, ContentLength: aws.Int64(st.Size())})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w [credentials: %s]", s.bucket, key, err, s.creds)
	}
	return nil
}

// PruneSnapshotFiles deletes the files of the snapshot's copy that keep
// refuses: those of copies no checkpoint lists any more (table files
// compacted away, older generations' manifests).
func (s *S3Store) PruneSnapshotFiles(ctx context.Context, keep func(name string) bool) error {
	drop := func(name string) bool { return !keep(name) }
	if err := deleteObjects(ctx, s.client, s.bucket, s.snapshotKey(""), drop); err != nil {
		return fmt.Errorf("%w [credentials: %s]", err, s.creds)
	}
	return nil
}

// deleteObjects deletes the objects under prefix whose names (the rest of
// their keys) drop picks.
func deleteObjects(ctx context.Context, client *s3.Client, bucket, prefix string, drop func(name string) bool) error {
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !drop(strings.TrimPrefix(key, prefix)) {
				continue
			}
			if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key}); err != nil {
				return fmt.Errorf("deleting s3://%s/%s: %w", bucket, key, err)
			}
		}
	}
	return nil
}

// GetSnapshotFile reads one file of the snapshot's copy into file.
func (s *S3Store) GetSnapshotFile(ctx context.Context, name, file string) error {
	key := s.snapshotKey(name)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w [credentials: %s]", s.bucket, key, err, s.creds)
	}
	defer out.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, out.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
