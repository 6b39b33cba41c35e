package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// clientConf is what the client is built from.
type clientConf struct {
	region, profile, roleARN, externalID string
	endpoint                             string
	pathStyle, anonymous                 bool
	accessKeyID, secretAccessKey, token  string
	maxAttempts                          int
}

// credsInfo describes where credentials come from, for error messages;
// it never holds a secret.
type credsInfo struct {
	mu     sync.Mutex
	static string // known without asking the provider
	found  string // from the retrieved credentials' Source
}

func (c *credsInfo) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found != "" {
		return c.found
	}
	return c.static
}

// newClient builds the S3 client. Loading the config reads files and the
// environment only; credentials are fetched on first use.
func newClient(ctx context.Context, cc clientConf) (*s3.Client, *credsInfo, string, error) {
	info := &credsInfo{}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			// Standard retries cover throttling, 5xx and connection resets.
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = cc.maxAttempts })
		}),
	}
	if cc.region != "" {
		opts = append(opts, config.WithRegion(cc.region))
	}
	if cc.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cc.profile))
	}
	switch {
	case cc.anonymous:
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
		info.static = "anonymous (unsigned requests)"
	case cc.accessKeyID != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cc.accessKeyID, cc.secretAccessKey, cc.token)))
		info.static = "static keys from the pipeline config"
	case cc.profile != "":
		info.static = "shared profile " + cc.profile
	default:
		info.static = "default chain (environment, shared profile " + defaultProfile() + ", SSO, web identity, instance role)"
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, "", fmt.Errorf("loading AWS config (%s): %w", info.static, err)
	}
	if cfg.Region == "" {
		// S3 answers any region's bucket name with a redirect naming the
		// right one, which objectErr reports; us-east-1 is the neutral start.
		cfg.Region = "us-east-1"
	}
	if cc.roleARN != "" {
		base := info.static
		stsClient := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, cc.roleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = "backfill"
				if cc.externalID != "" {
					o.ExternalID = aws.String(cc.externalID)
				}
			}))
		info.static = "role " + cc.roleARN + " assumed with " + base
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if cc.endpoint != "" {
			o.BaseEndpoint = aws.String(cc.endpoint)
		}
		o.UsePathStyle = cc.pathStyle
		// S3-compatible servers often send no checksum; that is not news
		// worth a log line per GET.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return client, info, cfg.Region, nil
}

func defaultProfile() string {
	if p := os.Getenv("AWS_PROFILE"); p != "" {
		return p
	}
	return "default"
}

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
	if name := sourceName(creds.Source); name != "" && !strings.HasPrefix(s.creds.static, "static") && !strings.HasPrefix(s.creds.static, "role") {
		s.creds.mu.Lock()
		s.creds.found = name
		s.creds.mu.Unlock()
	}
	return nil
}

// sourceName turns the SDK's provider names into words.
func sourceName(src string) string {
	switch {
	case src == "":
		return ""
	case strings.HasPrefix(src, "EnvConfigCredentials"):
		return "environment (AWS_ACCESS_KEY_ID)"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		return "shared profile " + defaultProfile()
	case strings.HasPrefix(src, "SSOProvider"):
		return "SSO (profile " + defaultProfile() + ")"
	case strings.HasPrefix(src, "WebIdentityCredentials"):
		return "web identity (IRSA)"
	case strings.HasPrefix(src, "EC2RoleProvider"):
		return "instance role (IMDS)"
	case strings.HasPrefix(src, "EndpointCredentialsProvider"), strings.HasPrefix(src, "CredentialsEndpointProvider"):
		return "container credentials endpoint"
	case strings.HasPrefix(src, "AssumeRoleProvider"):
		return "assumed role (profile " + defaultProfile() + ")"
	case strings.HasPrefix(src, "ProcessProvider"):
		return "credential_process (profile " + defaultProfile() + ")"
	}
	return src
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
