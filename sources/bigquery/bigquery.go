// Package bigquery is the `bigquery` source: it reads a table, or the
// result of a query, through the BigQuery Storage Read API as Arrow record
// batches, one split per read stream.
//
// State kept in the checkpoint (env.State), so a resumed run reads exactly
// what the interrupted one was reading:
//
//	snapshot_time   the table snapshot (default: when the run first started)
//	job_id, job_location   the query job whose result table is read
//	session, session_key, session_expire, streams   the read session
//	cursor          the cursor bound of the previous completed run
//	cursor_pending  the highest cursor value read in this run
//
// A read session expires about 6 hours after it is created. Rows are
// assigned to streams per session, so offsets into the streams of an
// expired session mean nothing in a new one: on_session_expired says what
// to do (restart: read the same snapshot again in a new session, re-sending
// rows already delivered, which Segment drops as duplicates when message
// ids are deterministic; fail: stop with an explanation).
package bigquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	bq "cloud.google.com/go/bigquery"
	storage "cloud.google.com/go/bigquery/storage/apiv1"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/civil"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// State keys.
const (
	keySnapshot      = "snapshot_time"
	keyJobID         = "job_id"
	keyJobLocation   = "job_location"
	keySession       = "session"
	keySessionKey    = "session_key"
	keySessionExpire = "session_expire"
	keyStreams       = "streams"
	keyCursor        = "cursor"
	keyCursorPending = "cursor_pending"
	// keyFinished holds the split IDs of a finished non-incremental run
	// and keyFinishedFor what it read, so a rerun finds them done instead
	// of reading the table again (its session may have expired).
	keyFinished    = "finished_splits"
	keyFinishedFor = "finished_for"
)

// sessionMargin is how long a stored session must still live to be
// reused: long enough to finish reading, or the reads fail halfway.
const sessionMargin = 30 * time.Minute

// spec declares the source's config: the one place its fields, defaults
// and rules are written.
func spec() *config.Spec {
	return config.NewSpec("read a BigQuery table or query result through the Storage Read API",
		config.String("table", "the table to read, as project.dataset.table").Optional().
			Example("acme-prod.segment_web.tracks"),
		config.String("query", "standard SQL whose result is read (instead of table); run once as a job, kept across resumes").Optional(),
		config.Map("params", "named query parameters (@name in the query): strings, numbers, booleans",
			config.Any("", "a parameter value")).Optional(),
		config.String("project", "the project billed for sessions and query jobs (default: the table's project, or the credentials' project)").Optional(),
		config.String("location", "where query jobs run (e.g. US, EU); default: BigQuery decides").Optional(),
		config.Strings("columns", "columns to read (sent to the server: only these are billed); default: what the pipeline uses").Optional(),
		config.String("where", "row filter pushed down to the server, in SQL (e.g. \"event = 'Order Completed'\")").Optional(),
		config.String("snapshot_time", "read the table as of this RFC 3339 time (default: when the run first started)").Optional().
			Check(func(v any) error { _, err := time.Parse(time.RFC3339Nano, v.(string)); return err }),
		config.Int("max_streams", "most read streams (splits) to ask for; 0 lets BigQuery decide").Default(0).
			Check(config.NonNegative),
		config.String("compression", "how the Storage Read API compresses Arrow buffers on the wire: "+
			"lz4 (fast to decode; what Google's own clients ask for), zstd (smaller, more CPU), or none").
			Default("lz4").Enum("lz4", "zstd", "none"),
		config.Object("cursor", "incremental runs: read only rows whose column is above the highest value a previous run delivered",
			config.String("column", "a monotonically growing column (TIMESTAMP, DATETIME, DATE, INT64, STRING)").Optional().
				Example("updated_at"),
		).Optional(),
		config.String("on_session_expired", "when resuming after the read session expired (~6 h): restart the snapshot in a new session, or fail").
			Default("restart").Enum("restart", "fail"),
		config.Int("max_retries", "retries of a transient stream error (unavailable, throttled) before the split fails").Default(8).
			Check(config.NonNegative),
		config.String("credentials_file", "a service account (or other) JSON key; default: Application Default Credentials").Optional(),
		config.String("endpoint", "REST endpoint (e.g. http://127.0.0.1:9050 for a local server); default: Google's").Optional(),
		config.String("storage_endpoint", "Storage Read API gRPC endpoint host:port; default: Google's").Optional(),
		config.Bool("insecure", "plain-text gRPC to storage_endpoint (local servers only); implies no_auth for gRPC").Default(false),
		config.Bool("no_auth", "send no credentials (local servers only)").Default(false),
	).Rules(
		config.ExactlyOne("table", "query").MessageIfNone("set table (project.dataset.table) or query"),
		config.Requires("params", "query").Message("params go with query"),
		config.Excludes("snapshot_time", "query").Message("snapshot_time applies to a table, not a query").
			Hint("in a query write FOR SYSTEM_TIME AS OF"),
		config.When("insecure", true).Requires("storage_endpoint").
			Message("insecure is for a local storage_endpoint; set storage_endpoint"),
	).WithDescription(`Tables and query results, read in Arrow through the Storage Read API.
There is one split per read stream, and the streams are read in parallel.

- columns and where are pushed down to the server, so only what is read is
  billed. Without columns, the source asks for the columns the pipeline
  uses.
- Arrow buffers come LZ4-compressed by default, as Google's own clients
  ask.
- A run reads one snapshot. A resumed run reuses the snapshot, the read
  session (while it has 30 minutes to live) and the query job. The job's id
  is saved before the source waits for the job, so a run stopped or killed
  while the query runs does not run (and bill) it again.
- cursor makes scheduled, incremental runs: each reads the rows above the
  highest value of the last completed run.
- Credentials: Application Default Credentials, or credentials_file.
- A BigQuery read cannot be sharded (--shard, --shards): each shard would
  open its own read session, with streams that overlap the others'. One
  machine reads a session's streams in parallel instead.

Costs, roles, session expiry, types and a CronJob example are in
sources/bigquery/README.md.`).WithExample("a table, projected and filtered on the server", `table: acme-prod.segment_web.tracks
columns: [id, user_id, anonymous_id, event_text, timestamp, context_ip]
where: "timestamp >= TIMESTAMP '2024-01-01'"
max_streams: 16`).
		WithExample("a query", `project: acme-billing
query: |
  SELECT user_id, event, ts FROM acme.web.events
  WHERE ts >= @since
params: { since: "2024-01-01" }`).
		WithExample("incremental", `table: acme-prod.crm.accounts
cursor: { column: updated_at }`)

}

// Plugins declares the bigquery source.
func Plugins() []config.Plugin { return []config.Plugin{config.SourcePlugin("bigquery", spec(), New)} }

func init() { config.Default.Register(Plugins()...) }

type tableRef struct{ project, dataset, table string }

func (t tableRef) String() string { return t.project + "." + t.dataset + "." + t.table }
func (t tableRef) path() string {
	return "projects/" + t.project + "/datasets/" + t.dataset + "/tables/" + t.table
}

// parseTable reads project.dataset.table (also project:dataset.table, with
// or without backquotes). The project is what is left of the last two
// dots, so domain-scoped projects (example.com:p) work.
func parseTable(s string) (tableRef, error) {
	s = strings.Trim(strings.TrimSpace(s), "`")
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return tableRef{}, fmt.Errorf("%q is not project.dataset.table", s)
	}
	rest, tbl := s[:i], s[i+1:]
	j := strings.LastIndexAny(rest, ".:")
	if j <= 0 || tbl == "" || j == len(rest)-1 {
		return tableRef{}, fmt.Errorf("%q is not project.dataset.table", s)
	}
	return tableRef{project: rest[:j], dataset: rest[j+1:], table: tbl}, nil
}

// Source is the bigquery source.
type Source struct {
	env        *pipeline.Env
	table      tableRef // zero in query mode
	query      string
	params     []bq.QueryParameter
	project    string
	location   string
	columns    []string
	where      string
	snapshot   time.Time // zero: from state, or now
	maxStreams int
	codec      storagepb.ArrowSerializationOptions_CompressionCodec
	cursorCol  string
	onExpired  string
	maxRetries int
	// connection
	credFile, endpoint, storageEndpoint string
	insecure, noAuth                    bool

	mu      sync.Mutex
	bq      *bq.Client
	rc      *storage.BigQueryReadClient
	conn    *grpc.ClientConn
	want    pipeline.Columns // the pipeline's projection, when told
	session *sessionInfo
	pending *cursorValue // highest cursor value read in this run
	backoff func(attempt int) time.Duration
}

type sessionInfo struct {
	name    string
	table   tableRef
	streams []string
	schema  []byte
	fields  []string // selected fields; nil = all
	estRows int64    // the service's estimate of the session's rows
}

// New builds the source from its config; it does not connect (validate
// runs offline).
func New(conf *config.Conf, env *pipeline.Env) (pipeline.Source, error) {
	s := &Source{
		env:             env,
		query:           strings.TrimSpace(conf.String("query")),
		project:         conf.String("project"),
		location:        conf.String("location"),
		columns:         conf.Strings("columns"),
		where:           strings.TrimSpace(conf.String("where")),
		maxStreams:      conf.Int("max_streams"),
		codec:           codecs[conf.String("compression")],
		onExpired:       conf.String("on_session_expired"),
		maxRetries:      conf.Int("max_retries"),
		credFile:        conf.String("credentials_file"),
		endpoint:        conf.String("endpoint"),
		storageEndpoint: conf.String("storage_endpoint"),
		insecure:        conf.Bool("insecure"),
		noAuth:          conf.Bool("no_auth"),
		backoff:         defaultBackoff,
	}
	var errs []error
	if env.Shards > 1 {
		// Split IDs name the streams of a read session, and every shard
		// would create its own session, with other streams: the shards
		// would read overlapping rows and miss others.
		errs = append(errs, conf.Errorf("", "a BigQuery read cannot be sharded (--shard/--shards): each shard would "+
			"open its own read session, and the shards' streams would overlap. Run it on one machine: the "+
			"session's streams are read in parallel (max_streams, workers)"))
	}
	// The spec's rules saw to exactly one of table and query, params only
	// with query, snapshot_time only with table, insecure with
	// storage_endpoint.
	if t := conf.String("table"); strings.TrimSpace(t) != "" {
		ref, err := parseTable(t)
		if err != nil {
			errs = append(errs, conf.Errorf("table", "%v", err))
		}
		s.table = ref
		if s.project == "" {
			s.project = ref.project
		}
	}
	for _, e := range conf.Map("params") {
		switch v := e.Value.(type) {
		case string, int, float64, bool:
			s.params = append(s.params, bq.QueryParameter{Name: e.Key, Value: v})
		case time.Time: // YAML reads 2024-01-01 as a time: a DATE, or a TIMESTAMP with a clock
			if e.Node != nil && len(e.Node.Value) == len("2006-01-02") {
				s.params = append(s.params, bq.QueryParameter{Name: e.Key, Value: civil.DateOf(v)})
			} else {
				s.params = append(s.params, bq.QueryParameter{Name: e.Key, Value: v})
			}
		default:
			errs = append(errs, conf.NodeErrorf(e.Node, conf.Path()+"/params/"+e.Key,
				"parameter %q must be a string, a number or a boolean, got %T", e.Key, e.Value))
		}
	}
	if ts := conf.String("snapshot_time"); ts != "" {
		s.snapshot, _ = time.Parse(time.RFC3339Nano, ts)
	}
	if conf.IsSet("cursor") {
		s.cursorCol = conf.Object("cursor").String("column")
		if s.cursorCol == "" {
			errs = append(errs, conf.Errorf("cursor", "cursor needs a column"))
		}
	}
	if len(s.columns) > 0 && s.cursorCol != "" && !contains(s.columns, s.cursorCol) {
		s.columns = append(s.columns, s.cursorCol) // the reader needs it to advance the cursor
	}
	if s.endpoint != "" {
		if u, err := url.Parse(s.endpoint); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, conf.Errorf("endpoint", "%q is not a URL like http://127.0.0.1:9050", s.endpoint))
		}
	}
	if s.credFile != "" {
		if _, err := os.Stat(s.credFile); err != nil {
			errs = append(errs, conf.Errorf("credentials_file", "cannot read the credentials file: %v", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// SetColumns tells the source the pipeline's projection before Splits, so
// it is pushed into the read session (only those columns are billed). The
// config's `columns` wins when set.
func (s *Source) SetColumns(c pipeline.Columns) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = c
}

// Close releases the clients.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.rc != nil {
		errs = append(errs, s.rc.Close())
		s.rc = nil
	}
	if s.conn != nil {
		_ = s.conn.Close() // may already be closed by the client
		s.conn = nil
	}
	if s.bq != nil {
		errs = append(errs, s.bq.Close())
		s.bq = nil
	}
	return errors.Join(errs...)
}

func credentialsOption(file string) (option.ClientOption, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading credentials_file: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("credentials_file %s is not a JSON key: %v", file, err)
	}
	types := map[string]option.CredentialsType{
		"service_account":              option.ServiceAccount,
		"authorized_user":              option.AuthorizedUser,
		"external_account":             option.ExternalAccount,
		"impersonated_service_account": option.ImpersonatedServiceAccount,
	}
	t, ok := types[head.Type]
	if !ok {
		return nil, fmt.Errorf("credentials_file %s has type %q; expected service_account, authorized_user, external_account or impersonated_service_account", file, head.Type)
	}
	return option.WithAuthCredentialsFile(t, file), nil
}

// connect makes the REST and gRPC clients once.
func (s *Source) connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bq != nil {
		return nil
	}
	var common []option.ClientOption
	if s.noAuth {
		common = append(common, option.WithoutAuthentication())
	} else if s.credFile != "" {
		o, err := credentialsOption(s.credFile)
		if err != nil {
			return err
		}
		common = append(common, o)
	}
	rest := append([]option.ClientOption(nil), common...)
	if s.endpoint != "" {
		rest = append(rest, option.WithEndpoint(restBase(s.endpoint)))
	}
	project := s.project
	if project == "" {
		project = bq.DetectProjectID
	}
	c, err := bq.NewClient(ctx, project, rest...)
	if err != nil {
		return fmt.Errorf("bigquery: connecting: %w", err)
	}
	if s.location != "" {
		c.Location = s.location
	}
	s.project = c.Project()
	grpcOpts := append([]option.ClientOption(nil), common...)
	if s.storageEndpoint != "" {
		grpcOpts = append(grpcOpts, option.WithEndpoint(s.storageEndpoint))
	}
	if s.insecure {
		// Per-RPC credentials need TLS, so plain text goes without them.
		conn, err := grpc.NewClient(s.storageEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			c.Close()
			return fmt.Errorf("bigquery: dialing storage_endpoint %s: %w", s.storageEndpoint, err)
		}
		s.conn = conn
		grpcOpts = append(grpcOpts, option.WithoutAuthentication(), option.WithGRPCConn(conn))
	}
	rc, err := storage.NewBigQueryReadClient(ctx, grpcOpts...)
	if err != nil {
		c.Close()
		if s.conn != nil {
			s.conn.Close()
		}
		return fmt.Errorf("bigquery: connecting to the Storage Read API: %w", err)
	}
	s.bq, s.rc = c, rc
	return nil
}

// restBase turns http://host:port into the client's base path; a URL that
// already has a path is taken as the base path.
func restBase(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Path == "" || u.Path == "/" {
		return strings.TrimRight(endpoint, "/") + "/bigquery/v2/"
	}
	if !strings.HasSuffix(endpoint, "/") {
		return endpoint + "/"
	}
	return endpoint
}

func (s *Source) get(key string) string {
	v, _ := s.env.State.Get(key)
	return v
}

func (s *Source) warn(msg string, args ...any) {
	if s.env.Logger != nil {
		s.env.Logger.Warn(msg, args...)
	}
}

func (s *Source) info(msg string, args ...any) {
	if s.env.Logger != nil {
		s.env.Logger.Info(msg, args...)
	}
}

// snapshotTime is the configured snapshot, or the one stored when the run
// first started, or now (stored so a resume reads the same snapshot).
func (s *Source) snapshotTime() (time.Time, error) {
	if !s.snapshot.IsZero() {
		return s.snapshot, nil
	}
	if v := s.get(keySnapshot); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("bigquery: stored snapshot_time %q is unreadable: %v", v, err)
		}
		return t, nil
	}
	// Truncated to microseconds: BigQuery's precision, and stable in JSON.
	t := time.Now().UTC().Truncate(time.Microsecond)
	s.env.State.Set(keySnapshot, t.Format(time.RFC3339Nano))
	return t, nil
}

// Splits finds (or runs) what to read, then reuses the stored read session
// or creates one; each stream is a split.
func (s *Source) Splits(ctx context.Context) ([]pipeline.Split, error) {
	if ids := s.get(keyFinished); ids != "" {
		if s.get(keyFinishedFor) != s.readKey() {
			return nil, fmt.Errorf("bigquery: the table, query, columns or where changed since this pipeline finished; " +
				"rerun with --fresh to read again")
		}
		var splits []pipeline.Split
		for _, id := range strings.Split(ids, ",") {
			splits = append(splits, pipeline.Split{ID: id, Rows: -1, Bytes: -1})
		}
		return splits, nil
	}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	var ref tableRef
	var snap time.Time
	if s.query != "" {
		r, err := s.queryResult(ctx)
		if err != nil {
			return nil, err
		}
		ref = r
	} else {
		ref = s.table
		if err := s.checkTable(ctx, ref); err != nil {
			return nil, err
		}
		t, err := s.snapshotTime()
		if err != nil {
			return nil, err
		}
		snap = t
	}
	restriction, err := s.restriction()
	if err != nil {
		return nil, err
	}
	fields := s.selectedFields()
	key := sessionKey(ref, fields, restriction, snap)

	sess, err := s.storedSession(key)
	if err != nil {
		return nil, err
	}
	if sess == nil {
		sess, err = s.createSession(ctx, ref, fields, restriction, snap, key)
		if err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.session = sess
	s.mu.Unlock()
	tag := shortHash(sess.name)
	splits := make([]pipeline.Split, len(sess.streams))
	for i, st := range sess.streams {
		splits[i] = pipeline.Split{ID: fmt.Sprintf("bq-%s-%d", tag, i), Rows: -1, Bytes: -1, Info: st}
	}
	return splits, nil
}

// EstimatedRows is the read session's row estimate (0 before Splits, or
// when the service gave none): the progress total, since streams cannot
// say how many rows each holds.
func (s *Source) EstimatedRows() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == nil {
		return 0
	}
	return s.session.estRows
}

// readKey fingerprints what the config asks to read.
func (s *Source) readKey() string {
	b, _ := json.Marshal([]any{s.table.String(), s.query, s.params, s.columns, s.where})
	return shortHash(string(b))
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// sessionKey identifies what a session reads; a stored session is reused
// only for the same key.
func sessionKey(ref tableRef, fields []string, restriction string, snap time.Time) string {
	b, _ := json.Marshal([]any{ref.String(), fields, restriction, snap.UnixMicro()})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

func (s *Source) selectedFields() []string {
	if len(s.columns) > 0 {
		return s.columns
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.want.All || len(s.want.Names) == 0 {
		return nil
	}
	out := append([]string(nil), s.want.Names...)
	if s.cursorCol != "" && !contains(out, s.cursorCol) {
		out = append(out, s.cursorCol)
	}
	return out
}

// restriction is `where` and, in an incremental run, the cursor bound.
func (s *Source) restriction() (string, error) {
	var parts []string
	if s.where != "" {
		parts = append(parts, "("+s.where+")")
	}
	if s.cursorCol != "" {
		if v := s.get(keyCursor); v != "" {
			var c cursorValue
			if err := json.Unmarshal([]byte(v), &c); err != nil {
				return "", fmt.Errorf("bigquery: stored cursor %q is unreadable: %v", v, err)
			}
			parts = append(parts, "("+quoteIdent(s.cursorCol)+" > "+c.literal()+")")
		}
	}
	return strings.Join(parts, " AND "), nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "") + "`" }

// storedSession returns the session kept in the state when it still
// serves, nil when a new one is needed, or an error by policy.
func (s *Source) storedSession(key string) (*sessionInfo, error) {
	name := s.get(keySession)
	if name == "" {
		return nil, nil
	}
	var stored struct {
		Table   string   `json:"table"`
		Streams []string `json:"streams"`
		Schema  []byte   `json:"schema"`
		Fields  []string `json:"fields"`
		EstRows int64    `json:"estimated_rows"`
	}
	if err := json.Unmarshal([]byte(s.get(keyStreams)), &stored); err != nil {
		return nil, fmt.Errorf("bigquery: stored read session streams are unreadable (%v); rerun with --fresh", err)
	}
	if s.get(keySessionKey) != key {
		return nil, fmt.Errorf("bigquery: the table, query, columns, where or cursor changed since this run started (session %s read %s); "+
			"finish with the old config, or rerun with --fresh to start over", name, stored.Table)
	}
	exp, err := time.Parse(time.RFC3339Nano, s.get(keySessionExpire))
	if err == nil && time.Until(exp) > sessionMargin {
		ref, _ := parseTable(stored.Table)
		s.info("resuming BigQuery read session", "session", name, "streams", len(stored.Streams), "expires", exp)
		return &sessionInfo{name: name, table: ref, streams: stored.Streams, schema: stored.Schema, fields: stored.Fields,
			estRows: stored.EstRows}, nil
	}
	msg := fmt.Sprintf("BigQuery read session %s expired at %s (sessions live about 6 hours); rows are assigned to streams per session, "+
		"so the progress made in its streams cannot carry over", name, exp.Format(time.RFC3339))
	if s.onExpired == "fail" {
		return nil, fmt.Errorf("bigquery: %s; rerun with --fresh to read the snapshot again from the start, "+
			"or set on_session_expired: restart", msg)
	}
	s.warn(msg+"; reading the same snapshot again in a new session: rows already delivered are sent again "+
		"(Segment drops them as duplicates when message ids are deterministic)", "session", name)
	return nil, nil
}

// codecs are the compression settings' wire values; the IPC reader
// decompresses whatever each batch says it holds.
var codecs = map[string]storagepb.ArrowSerializationOptions_CompressionCodec{
	"lz4":  storagepb.ArrowSerializationOptions_LZ4_FRAME,
	"zstd": storagepb.ArrowSerializationOptions_ZSTD,
	"none": storagepb.ArrowSerializationOptions_COMPRESSION_UNSPECIFIED,
}

func (s *Source) createSession(ctx context.Context, ref tableRef, fields []string, restriction string, snap time.Time, key string) (*sessionInfo, error) {
	rs := &storagepb.ReadSession{
		Table:      ref.path(),
		DataFormat: storagepb.DataFormat_ARROW,
		ReadOptions: &storagepb.ReadSession_TableReadOptions{
			SelectedFields: fields,
			RowRestriction: restriction,
		},
	}
	if s.codec != storagepb.ArrowSerializationOptions_COMPRESSION_UNSPECIFIED {
		rs.ReadOptions.OutputFormatSerializationOptions = &storagepb.ReadSession_TableReadOptions_ArrowSerializationOptions{
			ArrowSerializationOptions: &storagepb.ArrowSerializationOptions{BufferCompression: s.codec},
		}
	}
	if !snap.IsZero() {
		rs.TableModifiers = &storagepb.ReadSession_TableModifiers{SnapshotTime: timestamppb.New(snap)}
	}
	req := &storagepb.CreateReadSessionRequest{
		Parent:         "projects/" + s.project,
		ReadSession:    rs,
		MaxStreamCount: int32(s.maxStreams),
	}
	var resp *storagepb.ReadSession
	err := s.retry(ctx, "creating a read session on "+ref.String(), func() error {
		var err error
		resp, err = s.rc.CreateReadSession(ctx, req)
		return err
	})
	if err != nil {
		what := "table " + ref.String()
		if s.query != "" {
			what = "the query's result table " + ref.String()
		}
		if restriction != "" {
			what += " (row restriction: " + restriction + ")"
		}
		return nil, fmt.Errorf("bigquery: reading %s: %s", what, describeErr(err))
	}
	sc := resp.GetArrowSchema().GetSerializedSchema()
	if len(sc) == 0 && len(resp.GetStreams()) > 0 {
		return nil, fmt.Errorf("bigquery: read session %s came without an Arrow schema", resp.GetName())
	}
	info := &sessionInfo{name: resp.GetName(), table: ref, schema: sc, fields: fields, estRows: resp.GetEstimatedRowCount()}
	for _, st := range resp.GetStreams() {
		info.streams = append(info.streams, st.GetName())
	}
	stored, _ := json.Marshal(map[string]any{"table": ref.String(), "streams": info.streams, "schema": sc, "fields": fields,
		"estimated_rows": info.estRows})
	s.env.State.Set(keySession, info.name)
	s.env.State.Set(keySessionKey, key)
	s.env.State.Set(keySessionExpire, resp.GetExpireTime().AsTime().UTC().Format(time.RFC3339Nano))
	s.env.State.Set(keyStreams, string(stored))
	s.info("created BigQuery read session", "table", ref.String(), "session", info.name,
		"streams", len(info.streams), "estimated_rows", resp.GetEstimatedRowCount(),
		"estimated_bytes_scanned", resp.GetEstimatedTotalBytesScanned())
	return info, nil
}

// checkTable fetches the table's metadata, for a clear error before any
// session: not found, permission denied, a view (the Storage Read API
// reads tables only).
func (s *Source) checkTable(ctx context.Context, ref tableRef) error {
	md, err := s.bq.DatasetInProject(ref.project, ref.dataset).Table(ref.table).Metadata(ctx)
	if err != nil {
		return &apiError{msg: fmt.Sprintf("bigquery: table %s: %s", ref, describeErr(err)), err: err}
	}
	if md.Type == bq.ViewTable {
		return fmt.Errorf("bigquery: %s is a view; the Storage Read API reads tables: use query: SELECT * FROM `%s` instead", ref, ref)
	}
	return nil
}

// apiError is a described API error that still unwraps to the original.
type apiError struct {
	msg string
	err error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.err }

// describeErr says what an API error means, without wrapping noise.
func describeErr(err error) string {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch ge.Code {
		case 404:
			return "not found: " + ge.Message
		case 403:
			return "permission denied: " + ge.Message + " (the credentials need bigquery.tables.get and bigquery.readsessions.create, e.g. roles/bigquery.dataViewer + roles/bigquery.readSessionUser)"
		case 401:
			return "not authenticated: " + ge.Message + " (check credentials_file or Application Default Credentials)"
		}
		return ge.Message
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		switch st.Code() {
		case codes.NotFound:
			return "not found: " + st.Message()
		case codes.PermissionDenied:
			return "permission denied: " + st.Message() + " (the credentials need bigquery.readsessions.create and bigquery.tables.getData)"
		case codes.Unauthenticated:
			return "not authenticated: " + st.Message()
		case codes.InvalidArgument:
			return "invalid request: " + st.Message()
		}
		return st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}

// transient reports whether a gRPC error is worth retrying.
func transient(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

func defaultBackoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 7)
	return min(d, 20*time.Second)
}

// retry runs fn, retrying transient errors with backoff.
func (s *Source) retry(ctx context.Context, what string, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !transient(err) || attempt >= s.maxRetries {
			return err
		}
		s.warn("transient BigQuery error; retrying", "what", what, "attempt", attempt+1, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.backoff(attempt)):
		}
	}
}

// Finish is called once every split of the run is done and acknowledged:
// the cursor advances to the highest value delivered, and the session,
// job and snapshot are dropped so the next run starts a new read.
func (s *Source) Finish(ctx context.Context) error {
	if s.cursorCol != "" {
		if v := s.get(keyCursorPending); v != "" {
			s.env.State.Set(keyCursor, v)
		}
	} else if s.session != nil {
		// Not incremental: the next run has nothing left to read.
		tag := shortHash(s.session.name)
		ids := make([]string, len(s.session.streams))
		for i := range ids {
			ids[i] = fmt.Sprintf("bq-%s-%d", tag, i)
		}
		s.env.State.Set(keyFinished, strings.Join(ids, ","))
		s.env.State.Set(keyFinishedFor, s.readKey())
	}
	for _, k := range []string{keySnapshot, keyJobID, keyJobLocation, keySession, keySessionKey, keySessionExpire, keyStreams, keyCursorPending} {
		s.env.State.Set(k, "")
	}
	return nil
}

// SnapshotTime is the snapshot this run reads (zero for a query).
func (s *Source) SnapshotTime() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s.get(keySnapshot))
	return t
}
