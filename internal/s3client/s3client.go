// Package s3client builds the S3 clients the s3 source and the S3 state store
// share: credentials from the default chain, a profile, a role or static
// keys; any endpoint (MinIO, R2); and a description of where credentials
// came from for error messages, never the secret.
package s3client

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Config is what the client is built from.
type Config struct {
	Region, Profile, RoleARN, ExternalID string
	Endpoint                             string
	PathStyle, Anonymous                 bool
	AccessKeyID, SecretAccessKey, Token  string
	MaxAttempts                          int
}

// Creds describes where credentials come from, for error messages;
// it never holds a secret.
type Creds struct {
	mu     sync.Mutex
	static string // known without asking the provider
	found  string // from the retrieved credentials' Source
}

func (c *Creds) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found != "" {
		return c.found
	}
	return c.static
}

// Found records where the SDK says credentials came from (a provider's
// Source name), unless they were given explicitly (static keys, a role).
func (c *Creds) Found(providerSource string) {
	name := SourceName(providerSource)
	c.mu.Lock()
	defer c.mu.Unlock()
	if name != "" && !strings.HasPrefix(c.static, "static") && !strings.HasPrefix(c.static, "role") {
		c.found = name
	}
}

// NewClient builds the S3 client. Loading the config reads files and the
// environment only; credentials are fetched on first use.
func NewClient(ctx context.Context, cc Config) (*s3.Client, *Creds, string, error) {
	info := &Creds{}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			// Standard retries cover throttling, 5xx and connection resets.
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = cc.MaxAttempts })
		}),
	}
	if cc.Region != "" {
		opts = append(opts, config.WithRegion(cc.Region))
	}
	if cc.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cc.Profile))
	}
	switch {
	case cc.Anonymous:
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
		info.static = "anonymous (unsigned requests)"
	case cc.AccessKeyID != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cc.AccessKeyID, cc.SecretAccessKey, cc.Token)))
		info.static = "static keys from the pipeline config"
	case cc.Profile != "":
		info.static = "shared profile " + cc.Profile
	default:
		info.static = "default chain (environment, shared profile " + DefaultProfile() + ", SSO, web identity, instance role)"
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
	if cc.RoleARN != "" {
		base := info.static
		stsClient := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, cc.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = "backfill"
				if cc.ExternalID != "" {
					o.ExternalID = aws.String(cc.ExternalID)
				}
			}))
		info.static = "role " + cc.RoleARN + " assumed with " + base
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if cc.Endpoint != "" {
			o.BaseEndpoint = aws.String(cc.Endpoint)
		}
		o.UsePathStyle = cc.PathStyle
		// S3-compatible servers often send no checksum; that is not news
		// worth a log line per GET.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return client, info, cfg.Region, nil
}

func DefaultProfile() string {
	if p := os.Getenv("AWS_PROFILE"); p != "" {
		return p
	}
	return "default"
}

// SourceName turns the SDK's provider names into words.
func SourceName(src string) string {
	switch {
	case src == "":
		return ""
	case strings.HasPrefix(src, "EnvConfigCredentials"):
		return "environment (AWS_ACCESS_KEY_ID)"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		return "shared profile " + DefaultProfile()
	case strings.HasPrefix(src, "SSOProvider"):
		return "SSO (profile " + DefaultProfile() + ")"
	case strings.HasPrefix(src, "WebIdentityCredentials"):
		return "web identity (IRSA)"
	case strings.HasPrefix(src, "EC2RoleProvider"):
		return "instance role (IMDS)"
	case strings.HasPrefix(src, "EndpointCredentialsProvider"), strings.HasPrefix(src, "CredentialsEndpointProvider"):
		return "container credentials endpoint"
	case strings.HasPrefix(src, "AssumeRoleProvider"):
		return "assumed role (profile " + DefaultProfile() + ")"
	case strings.HasPrefix(src, "ProcessProvider"):
		return "credential_process (profile " + DefaultProfile() + ")"
	}
	return src
}
