// Package postgres is the `postgres` source: a Postgres (or Redshift)
// table or query read straight into Arrow, in parallel key ranges, from
// one consistent snapshot, resumable inside a split, and incremental.
//
// State kept in the checkpoint (env.State):
//
//	plan        what this run reads: the key, its ranges (one split each),
//	            the cursor window; fixed by the first run, reused by resumes
//	positions   per split, the key of the last rows of the batches handed
//	            out recently, so a resumed reader starts after the last
//	            acknowledged key instead of reading the rows before it
//	cursor      the cursor bound of the previous completed run
//	unload      Redshift UNLOAD: the S3 prefix and whether it was written
//
// See README.md for the design: snapshots, resume, Redshift.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/pipeline/config"
)

// Dialects.
const (
	dialectPostgres = "postgres"
	dialectRedshift = "redshift"
)

// Ways to stream a split.
const (
	streamCopy   = "copy"
	streamCursor = "cursor"
)

func spec() *config.Spec {
	return config.NewSpec("read a Postgres or Redshift table or query, in parallel key ranges from one snapshot",
		config.String("dialect", "postgres, or redshift (Postgres 8.0 protocol: cursors only, no exported snapshots; unload for large tables)").
			Default(dialectPostgres).Enum(dialectPostgres, dialectRedshift),
		config.String("url", "a connection URL (postgres://user@host:5432/db?sslmode=require); a password in it is never logged. "+
			"Without url (or for what it leaves out) libpq's PG* variables and ~/.pgpass apply, as for psql").Optional().
			Example("postgres://backfill@db.internal:5432/app?sslmode=verify-full"),
		config.String("host", "server host (or a Unix socket directory); default: PGHOST, else localhost").Optional(),
		config.Int("port", "server port; default: PGPORT, else 5432").Optional().Check(config.Positive),
		config.String("database", "database name; default: PGDATABASE, else the user name").Optional(),
		config.String("user", "user name; default: PGUSER, else the OS user").Optional(),
		config.String("password", "password; default: PGPASSWORD, else ~/.pgpass (PGPASSFILE)").Optional().Secret(),
		config.String("sslmode", "TLS: disable, allow, prefer, require, verify-ca, verify-full; default: PGSSLMODE, else prefer").
			Optional().Enum("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
		config.String("sslrootcert", "CA certificate file to verify the server with (verify-ca, verify-full); default: PGSSLROOTCERT").Optional(),
		config.Duration("connect_timeout", "how long to wait for a connection").Default(15*time.Second).Check(config.PositiveDuration),
		config.Duration("statement_timeout", "the server's statement_timeout for the source's statements (a split's COPY is one statement; 0: none); default: the server's").
			Optional().Check(config.NonNegativeDuration),

		config.String("table", "the table (or view) to read, as schema.table; unquoted names fold to lower case, as in psql").Optional().
			Example("public.events"),
		config.String("query", "a SELECT whose rows are read instead of a table; $1, $2... are params").Optional(),
		config.List("params", "values of the query's $1, $2...: strings, numbers, booleans, dates",
			config.Any("", "a parameter value")).Optional(),
		config.Strings("columns", "columns to read; default: what the pipeline uses").Optional(),
		config.String("where", "a filter in SQL, run on the server (e.g. \"created_at >= '2024-01-01'\")").Optional(),

		config.String("split_by", "an integer, date or timestamp column whose range is cut into splits; default: the table's primary key when it is one such column").
			Optional().Example("id"),
		config.Int("max_splits", "most splits (key ranges) a table is read in, each over its own connection").Default(8).Check(config.Positive),
		config.Int("rows_per_split", "aim for about this many rows per split (from the table's statistics), within max_splits").
			Default(1_000_000).Check(config.Positive),
		config.String("stream", "how a split's rows come: copy (COPY ... TO STDOUT in binary: the fastest) or a server-side cursor (FETCH); Redshift, which has no COPY TO STDOUT, always reads with cursors").
			Default(streamCopy).Enum(streamCopy, streamCursor),
		config.Int("fetch_rows", "rows per FETCH (cursor); default: the pipeline's batch_rows").Optional().Check(config.Positive),
		config.String("numeric", "numeric columns arrive as float64 (the nearest double: 15-17 significant digits), "+
			"decimal (exact decimal128 of the column's precision and scale; unconstrained numeric as decimal(38, 18)), or string (exact text)").
			Default(numFloat).Enum(numFloat, numDecimal, numString),
		config.String("timezone", "the zone of timestamp columns without time zone (IANA name)").Default("UTC").Example("America/New_York"),

		config.Object("cursor", "incremental runs: read only rows whose column is above the highest value the last completed run read",
			config.String("column", "a column that grows as rows are added or changed: integer, numeric, date, timestamp, timestamptz or text").
				Optional().Example("updated_at"),
		).Optional(),
		config.Int("max_retries", "times a split whose connection is lost is reopened (from the last key it handed on) before it fails").
			Default(5).Check(config.NonNegative),

		config.Object("unload", "Redshift: UNLOAD the rows to Parquet files on S3 and read them from there (the fast way out of Redshift for large tables)",
			config.String("s3", "the S3 prefix UNLOAD writes under; each run writes below it, in a folder named after the pipeline and the run").
				Optional().Example("s3://acme-unload/backfill/"),
			config.String("iam_role", "the IAM role Redshift assumes to write to S3").Optional().
				Example("arn:aws:iam::123456789012:role/redshift-unload"),
			config.String("region", "the bucket's region, when it is not the cluster's (UNLOAD ... REGION), and for reading").Optional(),
			config.String("max_file_size", "UNLOAD's MAXFILESIZE: smaller files read in parallel sooner").Default("256 MB"),
			config.String("profile", "reading the files: shared config profile (~/.aws/config)").Optional(),
			config.String("role_arn", "reading the files: IAM role to assume").Optional(),
			config.String("endpoint", "reading the files: an S3-compatible endpoint (tests)").Optional(),
			config.Bool("path_style", "reading the files: path-style addressing").Default(false),
			config.String("access_key_id", "reading the files: static access key id (tests); prefer the default chain").Optional(),
			config.String("secret_access_key", "reading the files: static secret key").Optional().Secret(),
		).Optional().Rules(
			config.Together("access_key_id", "secret_access_key").Message("access_key_id and secret_access_key go together"),
		),
	).Rules(
		config.ExactlyOne("table", "query").MessageIfNone("set table (schema.table) or query"),
		config.Requires("params", "query").Message("params go with query ($1, $2...)"),
		config.Excludes("split_by", "query").Message("split_by cuts a table into key ranges; a query is read as one split").
			Hint("read the query's rows from a view, or a table, to split them"),
		config.Excludes("url", "host", "port", "database", "user").Message("set url or host/port/database/user, not both").
			Hint("password may go with url"),
		config.When("dialect", dialectPostgres).Excludes("unload").Message("unload is Redshift's (dialect: redshift)"),
		config.When("dialect", dialectRedshift).Excludes("stream").Message("Redshift has no COPY TO STDOUT: its splits are read with cursors").
			Hint("drop stream"),
	).WithDescription(`Postgres and Redshift tables and queries, decoded from the binary protocol
straight into Arrow, typed per column.

- A large table is read in parallel key ranges (max_splits connections):
  an integer, date or timestamp key, its primary key or split_by. On
  Postgres every split reads one snapshot, exported with
  pg_export_snapshot() from a transaction held open for the run, as
  pg_dump -j does: rows written during the run do not appear.
- Rows stream with COPY ... TO STDOUT (FORMAT binary), or a server-side
  cursor, in bounded memory.
- A split is read in key order; a resumed run starts after the last
  acknowledged key, without reading the rows before it again. A resumed
  run reads a new snapshot: the old one died with its transaction.
- A lost connection is reopened from the last key handed on (max_retries).
- A value that does not fit its Arrow type (infinity dates, a numeric
  beyond float64) rejects its row, with the column and the reason.
- cursor makes scheduled, incremental runs; the new bound is committed
  only when a run completes.
- Credentials: url, or host/port/database/user/password, with libpq's PG*
  variables and ~/.pgpass as psql reads them. The password is never logged.
- Redshift (dialect: redshift): cursors, a transaction per split, and
  unload for large tables (UNLOAD to Parquet on S3, read like the s3
  source reads a manifest).

Types, consistency, resume and Redshift are detailed in
sources/postgres/README.md.`).
		WithExample("a table in parallel key ranges", `url: postgres://backfill@db.internal:5432/app?sslmode=verify-full
table: public.events
where: "created_at >= '2024-01-01'"
max_splits: 8`).
		WithExample("a query with parameters", `host: db.internal
database: app
user: backfill
password: ${PGPASSWORD}
query: |
  SELECT e.id, e.user_id, e.name, e.created_at, u.email
  FROM events e JOIN users u ON u.id = e.user_id
  WHERE e.created_at >= $1
params: ["2024-01-01"]`).
		WithExample("incremental", `url: ${DATABASE_URL}
table: public.accounts
cursor: { column: updated_at }`).
		WithExample("Redshift UNLOAD", `dialect: redshift
url: postgres://backfill@acme.abc123.us-east-1.redshift.amazonaws.com:5439/dev?sslmode=require
table: analytics.events
unload:
  s3: s3://acme-unload/backfill/
  iam_role: arn:aws:iam::123456789012:role/redshift-unload`)
}

// Plugins declares the postgres source.
func Plugins() []config.Plugin { return []config.Plugin{config.SourcePlugin("postgres", spec(), New)} }

func init() { config.Default.Register(Plugins()...) }

// Source is the postgres source.
type Source struct {
	env      *pipeline.Env
	conf     *config.Conf // for the unload reader's own config
	dialect  string
	conn     connSettings
	table    relName // zero in query mode
	query    string
	params   []string // as text; nil entries are NULL
	nullPar  []bool
	columns  []string
	where    string
	splitBy  string
	maxSplit int
	perSplit int
	stream   string
	fetch    int
	numMod   string
	loc      *time.Location
	curCol   string
	retries  int
	unload   *unloadSettings
	textWire bool // decode text instead of binary (Redshift; tests)

	mu        sync.Mutex
	pool      *pgxpool.Pool
	holder    *pgxpool.Conn // the transaction whose snapshot the run reads
	snapshot  string        // its exported id; "" on Redshift
	backslash bool          // standard_conforming_strings is off
	want      pipeline.Columns
	plan      *plan
	cols      []column // every column of the relation, described
	notes     map[string]bool
	positions map[string][]boundary
	unloader  unloadRunner
	unloadSrc pipeline.Source
	backoff   func(attempt int) time.Duration
	trace     func(split, sql string) // tests: each statement a split opens
}

// New builds the source from its config; it does not connect (validate
// runs offline).
func New(conf *config.Conf, env *pipeline.Env) (pipeline.Source, error) {
	s := &Source{
		env:      env,
		conf:     conf,
		dialect:  conf.String("dialect"),
		query:    strings.TrimRight(strings.TrimSpace(conf.String("query")), "; \t\r\n"),
		columns:  conf.Strings("columns"),
		where:    strings.TrimSpace(conf.String("where")),
		splitBy:  strings.TrimSpace(conf.String("split_by")),
		maxSplit: conf.Int("max_splits"),
		perSplit: conf.Int("rows_per_split"),
		stream:   conf.String("stream"),
		fetch:    conf.Int("fetch_rows"),
		numMod:   conf.String("numeric"),
		retries:  conf.Int("max_retries"),
		notes:    map[string]bool{},
		backoff:  defaultBackoff,
	}
	var errs []error
	if env.Shards > 1 {
		errs = append(errs, conf.Errorf("", "a postgres read cannot be sharded (--shard/--shards): each shard would plan its own key "+
			"ranges and snapshot, and the shards would overlap. Run it on one machine: its splits are read in parallel (max_splits, workers)"))
	}
	if s.dialect == dialectRedshift {
		s.textWire = true
		s.stream = streamCursor // no COPY TO STDOUT
	}
	cs, err := connFromConf(conf)
	if err != nil {
		errs = append(errs, err)
	}
	s.conn = cs
	if t := conf.String("table"); strings.TrimSpace(t) != "" {
		rel, err := parseRelName(t)
		if err != nil {
			errs = append(errs, conf.Errorf("table", "%v", err))
		}
		s.table = rel
	}
	for i, v := range conf.List("params") {
		text, null, err := paramText(v)
		if err != nil {
			errs = append(errs, conf.Errorf("params", "$%d: %v", i+1, err))
		}
		s.params = append(s.params, text)
		s.nullPar = append(s.nullPar, null)
	}
	loc, err := time.LoadLocation(conf.String("timezone"))
	if err != nil {
		errs = append(errs, conf.Errorf("timezone", "unknown time zone %q: %v", conf.String("timezone"), err))
	}
	s.loc = loc
	if conf.IsSet("cursor") {
		s.curCol = strings.TrimSpace(conf.Object("cursor").String("column"))
		if s.curCol == "" {
			errs = append(errs, conf.Errorf("cursor", "cursor needs a column"))
		}
	}
	if strings.ContainsRune(s.where+s.query, 0) {
		errs = append(errs, conf.Errorf("where", "SQL must not hold a NUL byte"))
	}
	if conf.IsSet("unload") {
		u, uerrs := unloadFromConf(conf.Object("unload"))
		errs = append(errs, uerrs...)
		s.unload = u
		s.unloader = s.runUnload
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// paramText is a query parameter as the text Postgres reads it.
func paramText(v any) (string, bool, error) {
	switch x := v.(type) {
	case nil:
		return "", true, nil
	case string:
		if strings.ContainsRune(x, 0) {
			return "", false, errors.New("a NUL byte cannot be sent to Postgres")
		}
		return x, false, nil
	case bool:
		if x {
			return "true", false, nil
		}
		return "false", false, nil
	case int:
		return fmt.Sprint(x), false, nil
	case float64:
		return fmt.Sprint(x), false, nil
	case time.Time: // YAML reads 2024-01-01 as a time
		if x.Equal(x.Truncate(24*time.Hour)) && x.Location() == time.UTC {
			return x.Format("2006-01-02"), false, nil
		}
		return x.Format(time.RFC3339Nano), false, nil
	}
	return "", false, fmt.Errorf("must be a string, a number, a boolean or a date, got %T", v)
}

// SetColumns tells the source the pipeline's projection; `columns` wins
// when set.
func (s *Source) SetColumns(c pipeline.Columns) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = c
}

func (s *Source) info(msg string, args ...any) {
	if s.env.Logger != nil {
		s.env.Logger.Info(msg, args...)
	}
}

func (s *Source) warn(msg string, args ...any) {
	if s.env.Logger != nil {
		s.env.Logger.Warn(msg, args...)
	}
}

// note logs msg once per key.
func (s *Source) note(key, msg string, args ...any) {
	s.mu.Lock()
	seen := s.notes[key]
	s.notes[key] = true
	s.mu.Unlock()
	if !seen {
		s.info(msg, args...)
	}
}

func (s *Source) get(key string) string {
	v, _ := s.env.State.Get(key)
	return v
}

func defaultBackoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	return min(d, 5*time.Second)
}

// Close ends the snapshot's transaction and closes the connections.
func (s *Source) Close() error {
	s.mu.Lock()
	holder, pool, us := s.holder, s.pool, s.unloadSrc
	s.holder, s.pool, s.unloadSrc = nil, nil, nil
	s.mu.Unlock()
	if holder != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		closeConn(ctx, holder)
		cancel()
	}
	if pool != nil {
		pool.Close()
	}
	if c, ok := us.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// closeConn ends a connection that may be in the middle of something (a
// transaction, a COPY): it is closed, not returned to the pool.
func closeConn(ctx context.Context, c *pgxpool.Conn) {
	pc := c.Hijack()
	_ = pc.Close(ctx)
}
