package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// resolveCreds fetches credentials once so that errors can say where they
// came from, and so that "no credentials" fails before any listing.
func (s *Source) resolveCreds(ctx context.Context) error {
	if s.anonymous {
		return nil
	}
	creds, err := s.client.Options().Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("s3 source: no usable AWS credentials for s3://%s/%s (tried %s): %w; "+
			"set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, configure profile/role_arn, or anonymous: true for a public bucket",
			s.bucket, s.prefix, s.creds, err)
	}
	s.creds.Found(creds.Source)
	return nil
}

// apiErr explains an S3 error in words, with the code for searching.
func (s *Source) explain(err error) string {
	var ae smithy.APIError
	code, status := "", 0
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	region := ""
	if re != nil && re.Response != nil {
		region = re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	switch {
	case code == "NoSuchBucket":
		return "the bucket does not exist (NoSuchBucket)"
	case code == "NoSuchKey" || (status == http.StatusNotFound && code == "NotFound"):
		return "no such object (NoSuchKey)"
	case code == "InvalidAccessKeyId":
		return "the server does not know this access key id (InvalidAccessKeyId)"
	case code == "SignatureDoesNotMatch":
		return "the request signature does not match: wrong secret key? (SignatureDoesNotMatch)"
	case code == "ExpiredToken" || code == "TokenRefreshRequired":
		return "the credentials have expired (" + code + ")"
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return "the object changed while it was being read (its ETag no longer matches); rerun to read the new version from the start"
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException" || status == http.StatusMovedPermanently:
		if region != "" {
			return fmt.Sprintf("the bucket is in region %s, not %s: set region: %s (%s)", region, s.region, region, code)
		}
		return fmt.Sprintf("wrong region %s for this bucket: set region (%s)", s.region, code)
	case code == "AccessDenied" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		return "access denied (" + firstNonEmpty(code, "403 Forbidden") + "): the credentials lack s3:ListBucket/s3:GetObject here"
	}
	return err.Error()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// listErr wraps a listing error with the bucket, prefix and credential
// source; the cause stays reachable with errors.As.
func (s *Source) listErr(bucket, prefix string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &Error{Op: "list", URL: "s3://" + bucket + "/" + prefix, Creds: s.creds.String(), Region: s.region, Msg: s.explain(err), Err: err}
}

func (s *Source) objectErr(op string, obj *object, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &Error{Op: op, URL: obj.url(), Creds: s.creds.String(), Region: s.region, Msg: s.explain(err), Err: err}
}

// Error is an S3 failure, naming what was asked and with which
// credentials (never the secret itself).
type Error struct {
	Op     string // list, head, read
	URL    string // s3://bucket/prefix-or-key
	Creds  string // where the credentials came from
	Region string
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("s3 source: %s %s: %s [credentials: %s; region %s]", e.Op, e.URL, e.Msg, e.Creds, e.Region)
}

func (e *Error) Unwrap() error { return e.Err }
