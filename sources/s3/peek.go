package s3

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sources/format"
)

var _ pipeline.SchemaPeeker = (*Source)(nil)

// PeekRemote is true: a peek sends requests to S3.
func (s *Source) PeekRemote() bool { return true }

// PeekColumns names the columns of the first object listed: its Parquet
// footer through ranged GETs, or its first bytes (format.PeekBytes at
// most, one ranged GET) for CSV and NDJSON; with the hive layout, the
// partition columns of its key too. Listing stops at that object.
func (s *Source) PeekColumns(ctx context.Context) ([]string, string, error) {
	if err := s.resolveCreds(ctx); err != nil {
		return nil, "", err
	}
	p := *s
	p.peek = true
	var objs []*object
	var err error
	switch {
	case len(s.keys) > 0:
		objs, err = p.listKeys(ctx)
	case s.manifest != "":
		objs, err = p.listManifest(ctx)
	case s.layout == layoutArchive:
		objs, err = p.listArchive(ctx)
	default:
		objs, err = p.listPlain(ctx)
	}
	if err != nil {
		return nil, "", err
	}
	if len(objs) == 0 {
		return nil, "", fmt.Errorf("s3 source: no objects matched in s3://%s/%s [credentials: %s; region %s]", s.bucket, s.prefix, s.creds, s.region)
	}
	obj := objs[0]
	in := format.Input{
		Name:     obj.url(),
		Size:     obj.Size,
		ReaderAt: newRangeReader(ctx, s, obj),
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			n := min(obj.Size, format.PeekBytes)
			if n <= 0 {
				return io.NopCloser(eofReader{}), nil
			}
			out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
				Bucket: aws.String(obj.Bucket), Key: aws.String(obj.Key),
				Range:   aws.String(fmt.Sprintf("bytes=0-%d", n-1)),
				IfMatch: ifMatch(obj.ETag),
			})
			if err != nil {
				return nil, s.objectErr("read", obj, err)
			}
			return out.Body, nil
		},
	}
	names, where, err := format.PeekColumns(ctx, in, s.opts)
	if err != nil {
		return nil, "", err
	}
	for _, pc := range s.partColumns(obj) {
		names = append(names, pc.name)
	}
	return names, where, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
