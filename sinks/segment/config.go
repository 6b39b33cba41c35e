package segment

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
	"github.com/backfillhq/backfill/sinks/message"
)

// Segment's limits, strictest reading (shared/docs/segment-wire.md).
const (
	MaxBatchEvents  = 2500
	MaxBatchBytes   = 500_000
	MaxMessageBytes = 32_000

	DefaultEndpoint = "https://api.segment.io"
	EUEndpoint      = "https://events.eu1.segmentapis.com"
)

func between(lo, hi int, why string) func(any) error {
	return func(v any) error {
		n := v.(int)
		if n < lo || n > hi {
			if why != "" {
				return fmt.Errorf("%d is out of range: must be between %d and %d (%s)", n, lo, hi, why)
			}
			return fmt.Errorf("%d is out of range: must be between %d and %d", n, lo, hi)
		}
		return nil
	}
}

// BatchBlock is the shared `batch` block: how messages are grouped into
// requests. Other sinks may mount it too.
func BatchBlock() *config.Field {
	return config.Object("batch", "how messages are grouped into one request",
		config.Int("max_events", "messages per request; Segment drops the whole request past 2,500 (fewer while a collector's 429s continue)").
			Default(MaxBatchEvents).Check(between(1, MaxBatchEvents, "Segment drops the events of a larger batch")),
		config.Int("max_bytes", "uncompressed request body size, every sentAt included; Segment answers 400 past 500,000").
			Default(MaxBatchBytes).Check(between(1024, MaxBatchBytes, "Segment rejects a larger body")),
		config.Duration("flush_interval", "send a partly filled request after it has waited this long").
			Default(time.Second).Check(config.PositiveDuration),
	)
}

// RetryBlock is the shared `request.retry` block.
func RetryBlock() *config.Field {
	return config.Object("retry", "how failed requests are retried",
		config.Int("max_attempts", "attempts per request for 5xx, 408 and network errors (429s count only on a single message still refused)").
			Default(10).Check(between(1, 1000, "")),
		config.Duration("initial_backoff", "first backoff; it doubles per attempt, with full jitter").
			Default(200*time.Millisecond).Check(config.PositiveDuration),
		config.Duration("max_backoff", "cap on one backoff").Default(30*time.Second).Check(config.PositiveDuration),
		config.Duration("max_retry_after", "cap on a 429's Retry-After wait").Default(60*time.Second).Check(config.PositiveDuration),
		config.Duration("default_retry_after", "wait after a 429 without Retry-After or X-RateLimit-Reset; 0 retries at once").
			Default(time.Second).Check(config.NonNegativeDuration),
	)
}

// RequestBlock is the shared `request` block: concurrency, rate and retries.
func RequestBlock() *config.Field {
	return config.Object("request", "how requests are sent",
		config.Int("concurrency", "requests in flight at once").Default(4).Check(between(1, 256, "")),
		config.String("rate_limit", `events per second across the run, "0" for none; "1000", "1000/s" or "60000/m"; a sharded run divides it between its shards. `+
			`The most sent: while 429s continue the sink sends less, rising back to it as requests pass`).
			Default("0").Example("1000/s").Check(func(v any) error { _, err := ParseRate(v.(string)); return err }),
		config.String("requests_rate_limit", `requests per second, "0" for none; same forms as rate_limit`).
			Default("0").Check(func(v any) error { _, err := ParseRate(v.(string)); return err }),
		config.Duration("timeout", "one attempt's deadline, response included").Default(30*time.Second).Check(config.PositiveDuration),
		RetryBlock(),
	)
}

// spec declares the segment sink's configuration: the one place its
// fields, defaults and rules are written.
func spec() *config.Spec {
	return config.NewSpec("sends messages to Segment's HTTP batch API (or a compatible collector)",
		config.String("endpoint", "the API's base URL; EU workspaces use "+EUEndpoint+" (a write key only works in its region)").
			Default(DefaultEndpoint).Example(EUEndpoint),
		config.String("path", "the batch path; /v1/import is a legacy alias").Default("/v1/batch").Enum("/v1/batch", "/v1/import"),
		config.String("write_key", "the Segment source's write key (Settings > API Keys), sent as Basic auth").Example("${SEGMENT_WRITE_KEY}").Secret(),
		config.Bool("gzip", "compress request bodies").Default(true),
		// Level 1 is the default: on a real ~500 KB body (bench/gzip_test.go)
		// it is ~5.3x smaller, level 2 is 1.7% smaller for ~25% more CPU,
		// klauspost's stateless mode ~12% less CPU for 6% more bytes, and
		// Huffman only costs as much CPU as level 1 for a 1.6x ratio.
		config.Int("gzip_level", "1 (fastest) to 9 (smallest); -2 is Huffman only").Default(1).
			Check(func(v any) error {
				if n := v.(int); n != gzip.HuffmanOnly && (n < 1 || n > 9) {
					return fmt.Errorf("%d is not a gzip level: 1 to 9, or -2 for Huffman only", n)
				}
				return nil
			}),
		config.Object("tls", "TLS to the endpoint, for a collector behind a private certificate authority",
			config.String("ca_file", "PEM file of certificate authorities to trust besides the system's").Optional(),
			config.Bool("insecure_skip_verify", "do not verify the endpoint's certificate (tests only: anyone on the path can read the write key)").Default(false),
		),
		config.Int("max_message_bytes", "largest message, its sentAt included; larger rows go to the dead letters").
			Default(MaxMessageBytes).Check(between(256, MaxMessageBytes, "Segment rejects larger messages")),
		message.LibraryField(),
		BatchBlock(),
		RequestBlock(),
	).WithDescription(`Rows are encoded into Segment messages, packed into requests within Segment's
limits, sent by a bounded set of senders under an optional rate limit, and
acknowledged only once Segment answered 2xx or the row is in the dead-letter
file.

- Write key: in the Segment app, add or open a source (HTTP API, or any
  server source): Settings > API Keys > Write Key. Pass it through the
  environment (write_key: ${SEGMENT_WRITE_KEY}). It never appears in logs,
  errors or reports.
- Region: EU workspaces use endpoint: https://events.eu1.segmentapis.com. A
  write key only works in its own region: a 401 or 403 stops the run with
  a message saying so, and a 404 (no batch API at that URL, or a disabled
  source) stops it too.
  A redirect (http:// for https://, a moved host) stops it, naming where it
  points: following it would resend the batch as a GET. Every error and
  dead letter from a response quotes its status and the start of its body
  (a disabled source's "source is disabled"), the write key removed.
- Other collectors: any Segment-compatible collector (rudder-server) works
  by URL. One behind a private certificate authority takes
  tls: {ca_file: ca.pem}; an untrusted certificate stops the run at once,
  naming the option. HTTPS_PROXY is honoured.
- Limits: a request never exceeds 500,000 bytes or 2,500 messages, and a
  message never exceeds 32,000 bytes. Every message is checked against
  Segment's rules before it is sent: type; userId or anonymousId; event for
  track; objects for properties and traits; a timestamp given as text must
  be RFC 3339 (it goes out in UTC with milliseconds, like any time).
  Segment would otherwise accept a bad message with a 200 and drop it (or
  file an event whose time it cannot read at "now"), so rows that break the
  rules go to the dead-letter file with the reason instead.
- Rate: request.rate_limit holds events/s exactly (Segment's default is
  about 1,000/s per workspace); a sharded run divides it between its
  shards. request.concurrency is the number of requests in flight. gzip is
  on by default, at level 1.
- Throttling: a 429 waits for Retry-After (capped by max_retry_after;
  default_retry_after without one) without spending the retry budget. If
  the same request is answered 429 again, the sink adapts (AIMD): it halves
  its events/s rate (from rate_limit, or, with none, from what it was
  sending) and sends that request in halves; while the rate is lowered a
  request carries at most one second's worth of it. Each request delivered
  raises the rate again additively (back to where it was cut from in about
  5 s of sending), never above rate_limit, and lets requests grow back. So
  a collector whose limit is below one request (rudder-server's token
  bucket, 429 without Retry-After) gets requests it can take, at the rate
  it takes them. A single message still refused spends the retry budget.
  The progress line, the summary and the metrics show the rate in force
  (rate_limit_events_per_s).
- Retries: 5xx, 408 and network errors back off exponentially with full
  jitter, up to max_attempts. Any other 4xx splits the request in half,
  down to the one bad message, which goes to the dead-letter file with the
  response's status and body. The first failure of each kind (a status, or
  a network error) is logged as a warning with the start of the response,
  then a count per kind at most every 10 s while failures go on.
- sentAt: every attempt stamps a fresh sentAt on each message and on the
  batch (rudder-server keeps only the messages'), with the same
  messageIds. A message whose data has a sentAt keeps it, as the data
  says, on every attempt: Segment takes it for the time the event was
  sent, so an archived one moves events to about now (strip it: the strip
  transform's segment-replay preset does). A dead letter's message holds
  no stamped sentAt, so a redrive sends a fresh one.
- Origin: library: keep (the default) leaves the data's context.library
  (an archive's analytics.js 4.1.0) and sets backfill's only on rows that
  have none; library: backfill sets backfill's on every message.
- Stopping: once the run stops (a signal, or a fatal error elsewhere),
  requests in flight and their retries go on for the run's grace period.
  What the sink then gives up on (retries spent, or the grace over) is left
  unacknowledged, to be sent on resume.

From Go: segment.DefaultOptions(), set WriteKey and what else differs,
then segment.New(opts, env) and Open(ctx).`).
		WithExample("EU workspace at 1,000 events/s", `endpoint: https://events.eu1.segmentapis.com
write_key: ${SEGMENT_WRITE_KEY}
request:
  rate_limit: 1000/s
`)

}

// Plugins declares the segment sink.
func Plugins() []config.Plugin {
	return []config.Plugin{config.SinkPlugin("segment", spec(), func(c *config.Conf, env *pipeline.Env) (pipeline.Sink, error) {
		opts, err := OptionsFromConf(c)
		if err != nil {
			return nil, err
		}
		return New(opts, env)
	})}
}

func init() { config.Default.Register(Plugins()...) }

// Options configure a Sink built from Go: start from DefaultOptions (the
// config file's fields map to them one to one; OptionsFromConf reads them).
type Options struct {
	Endpoint  string // base URL
	Path      string // "/v1/batch" or "/v1/import"
	WriteKey  string
	Gzip      bool
	GzipLevel int

	MaxEvents     int
	MaxBytes      int
	FlushInterval time.Duration

	Concurrency int
	RateLimit   float64 // events/s, 0 = none
	RequestRate float64 // requests/s, 0 = none
	Timeout     time.Duration

	MaxAttempts       int
	InitialBackoff    time.Duration
	MaxBackoff        time.Duration
	MaxRetryAfter     time.Duration
	DefaultRetryAfter time.Duration // 0: retry a 429 without Retry-After at once

	MaxMessageBytes int
	IDColumns       []string // passed to the message encoder
	// Library is whose context.library messages carry: message.LibraryKeep
	// (the data's, else backfill's) or message.LibraryBackfill.
	Library string

	CAFile             string // PEM certificate authorities trusted besides the system's
	InsecureSkipVerify bool
}

// DefaultOptions are the options of `segment: {}`: the spec's defaults,
// with no endpoint key (WriteKey must be set).
func DefaultOptions() Options { return readOptions(spec().Defaults()) }

// OptionsFromConf reads a parsed `segment` config and checks what its
// fields' own checks cannot.
func OptionsFromConf(c *config.Conf) (Options, error) {
	o := readOptions(c)
	var errs []error
	switch {
	case o.WriteKey == "" && c.Unset("write_key"):
		// Its variable is unset, loaded for validate, preview or status,
		// which send nothing (the loader warned; run refuses the file). A
		// stand-in lets the sink be built and closed unopened.
		o.WriteKey = "unset"
	case o.WriteKey == "":
		errs = append(errs, c.Errorf("write_key", "write_key is empty (hint: write_key: ${SEGMENT_WRITE_KEY})"))
	}
	if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, c.Errorf("endpoint", "%q is not an http(s) URL, e.g. %s", o.Endpoint, DefaultEndpoint))
	}
	if o.MaxBackoff < o.InitialBackoff {
		rt := c.Object("request").Object("retry")
		errs = append(errs, rt.Errorf("max_backoff", "max_backoff (%s) is below initial_backoff (%s)", o.MaxBackoff, o.InitialBackoff))
	}
	return o, errors.Join(errs...)
}

func readOptions(c *config.Conf) Options {
	b, r, tl := c.Object("batch"), c.Object("request"), c.Object("tls")
	rt := r.Object("retry")
	o := Options{
		Endpoint:           strings.TrimRight(c.String("endpoint"), "/"),
		CAFile:             tl.String("ca_file"),
		InsecureSkipVerify: tl.Bool("insecure_skip_verify"),
		Path:               c.String("path"),
		WriteKey:           c.String("write_key"),
		Gzip:               c.Bool("gzip"),
		GzipLevel:          c.Int("gzip_level"),
		MaxEvents:          b.Int("max_events"),
		MaxBytes:           b.Int("max_bytes"),
		FlushInterval:      b.Duration("flush_interval"),
		Concurrency:        r.Int("concurrency"),
		Timeout:            r.Duration("timeout"),
		MaxAttempts:        rt.Int("max_attempts"),
		InitialBackoff:     rt.Duration("initial_backoff"),
		MaxBackoff:         rt.Duration("max_backoff"),
		MaxRetryAfter:      rt.Duration("max_retry_after"),
		DefaultRetryAfter:  rt.Duration("default_retry_after"),
		MaxMessageBytes:    c.Int("max_message_bytes"),
		Library:            c.String("library"),
	}
	o.RateLimit, _ = ParseRate(r.String("rate_limit"))
	o.RequestRate, _ = ParseRate(r.String("requests_rate_limit"))
	return o
}

// ParseRate reads "1000", "1000/s", "60000/m" or "3600000/h" as a rate per
// second. "0" means no limit.
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num, unit, _ := strings.Cut(s, "/")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a rate: write e.g. \"1000/s\", \"60000/m\" or \"0\" for none", s)
	}
	switch strings.TrimSpace(unit) {
	case "", "s":
		return f, nil
	case "m":
		return f / 60, nil
	case "h":
		return f / 3600, nil
	}
	return 0, fmt.Errorf("%q: the unit after '/' is s, m or h", s)
}

// validate checks options built from Go, whose fields no spec checked:
// a sink must not break Segment's limits, or spin on a zero.
func (o *Options) validate() error {
	switch {
	case o.WriteKey == "":
		return errors.New("segment: the write key is empty")
	case o.MaxEvents < 1 || o.MaxEvents > MaxBatchEvents:
		return fmt.Errorf("segment: max_events %d is not between 1 and Segment's %d", o.MaxEvents, MaxBatchEvents)
	case o.MaxBytes < 1024 || o.MaxBytes > MaxBatchBytes:
		return fmt.Errorf("segment: max_bytes %d is not between 1024 and Segment's %d", o.MaxBytes, MaxBatchBytes)
	case o.MaxMessageBytes < 1 || o.MaxMessageBytes > MaxMessageBytes:
		return fmt.Errorf("segment: max_message_bytes %d is not between 1 and Segment's %d", o.MaxMessageBytes, MaxMessageBytes)
	case o.Concurrency < 1 || o.MaxAttempts < 1:
		return fmt.Errorf("segment: concurrency (%d) and max_attempts (%d) must be at least 1 (start from DefaultOptions)", o.Concurrency, o.MaxAttempts)
	case o.Library != "" && o.Library != message.LibraryKeep && o.Library != message.LibraryBackfill:
		return fmt.Errorf("segment: library %q is not %s or %s", o.Library, message.LibraryKeep, message.LibraryBackfill)
	case o.FlushInterval <= 0 || o.Timeout <= 0 || o.InitialBackoff <= 0 || o.MaxBackoff <= 0 || o.MaxRetryAfter <= 0 || o.DefaultRetryAfter < 0:
		return errors.New("segment: flush_interval, timeout and the backoffs must be positive (start from DefaultOptions)")
	}
	if u, err := url.Parse(o.Endpoint + o.Path); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("segment: endpoint %q is not an http(s) URL", o.Endpoint)
	}
	return nil
}
