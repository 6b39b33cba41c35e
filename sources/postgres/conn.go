package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/backfillhq/backfill/pipeline/config"
)

// connSettings is how to reach the server, as configured. What is left
// out comes from libpq's environment variables and ~/.pgpass, which pgx
// reads as libpq does.
type connSettings struct {
	url                            string
	host, database, user, password string
	port                           int
	sslmode, sslrootcert           string
	connectTimeout                 time.Duration
	statementTimeout               time.Duration
	hasStatementTimeout            bool
}

func connFromConf(c *config.Conf) (connSettings, error) {
	cs := connSettings{
		url:              strings.TrimSpace(c.String("url")),
		host:             c.String("host"),
		port:             c.Int("port"),
		database:         c.String("database"),
		user:             c.String("user"),
		password:         c.String("password"),
		sslmode:          c.String("sslmode"),
		sslrootcert:      c.String("sslrootcert"),
		connectTimeout:   c.Duration("connect_timeout"),
		statementTimeout: c.Duration("statement_timeout"),
	}
	cs.hasStatementTimeout = c.IsSet("statement_timeout")
	if cs.url != "" {
		u, err := url.Parse(cs.url)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The URL may hold a password: say what is wrong, not what it is.
			return cs, c.Errorf("url", "url must be postgres://user@host:port/database (the value given does not parse as one)")
		}
	}
	return cs, nil
}

// connString is the libpq connection string: the URL, or key=value pairs
// of the fields set. The password is not in it (it is set on the parsed
// config), so a parse error cannot show it.
func (cs connSettings) connString() string {
	kv := map[string]string{}
	if cs.sslmode != "" {
		kv["sslmode"] = cs.sslmode
	}
	if cs.sslrootcert != "" {
		kv["sslrootcert"] = cs.sslrootcert
	}
	if cs.connectTimeout > 0 {
		kv["connect_timeout"] = strconv.Itoa(max(1, int(cs.connectTimeout.Round(time.Second)/time.Second)))
	}
	if cs.url != "" {
		u, err := url.Parse(cs.url)
		if err != nil {
			return cs.url
		}
		q := u.Query()
		for k, v := range kv {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	if cs.host != "" {
		kv["host"] = cs.host
	}
	if cs.port != 0 {
		kv["port"] = strconv.Itoa(cs.port)
	}
	if cs.database != "" {
		kv["dbname"] = cs.database
	}
	if cs.user != "" {
		kv["user"] = cs.user
	}
	var parts []string
	for _, k := range []string{"host", "port", "dbname", "user", "sslmode", "sslrootcert", "connect_timeout"} {
		if v, ok := kv[k]; ok {
			parts = append(parts, k+"='"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)+"'")
		}
	}
	return strings.Join(parts, " ")
}

// poolConfig parses the settings (with PG* variables and ~/.pgpass) into
// a pool of at most size connections.
func (s *Source) poolConfig(size int) (*pgxpool.Config, error) {
	cs := s.conn
	pc, err := pgxpool.ParseConfig(cs.connString())
	if err != nil {
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			err = errors.Unwrap(pe)
		}
		msg := "the connection settings do not parse"
		if err != nil {
			msg += ": " + s.redact(err.Error())
		}
		return nil, fmt.Errorf("postgres: %s", msg)
	}
	cc := pc.ConnConfig
	if cs.password != "" {
		cc.Password = cs.password // wins over PGPASSWORD and ~/.pgpass
	}
	if cs.connectTimeout > 0 {
		cc.ConnectTimeout = cs.connectTimeout
	}
	rp := cc.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "backfill"
	}
	if s.dialect == dialectPostgres {
		// Binary dates and text both read as the source expects them;
		// a split waiting on a slow sink between FETCHes is idle in a
		// transaction, which a server-wide timeout must not end.
		rp["client_encoding"] = "UTF8"
		rp["DateStyle"] = "ISO, MDY"
		rp["TimeZone"] = "UTC"
		rp["idle_in_transaction_session_timeout"] = "0"
	}
	if cs.hasStatementTimeout {
		rp["statement_timeout"] = strconv.FormatInt(cs.statementTimeout.Milliseconds(), 10)
	}
	pc.MaxConns = int32(max(size, 1))
	pc.MinConns = 0
	pc.MaxConnIdleTime = time.Minute
	pc.HealthCheckPeriod = time.Minute
	return pc, nil
}

// password is the password the connection uses, for redaction: the
// configured one, PGPASSWORD's, or the one ~/.pgpass gave pgx.
func (s *Source) passwords() []string {
	var out []string
	if s.conn.password != "" {
		out = append(out, s.conn.password)
	}
	s.mu.Lock()
	if s.pool != nil {
		if p := s.pool.Config().ConnConfig.Password; p != "" {
			out = append(out, p)
		}
	}
	s.mu.Unlock()
	if s.conn.url != "" {
		if u, err := url.Parse(s.conn.url); err == nil {
			if p, ok := u.User.Password(); ok && p != "" {
				out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
			}
		}
	}
	return out
}

// redact removes every password the source knows of from msg.
func (s *Source) redact(msg string) string {
	for _, p := range s.passwords() {
		if len(p) >= 1 {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// redactedError keeps the original error for errors.Is/As while its text
// carries no password.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// errorf makes an error whose text is redacted; %w keeps the cause.
func (s *Source) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &redactedError{msg: s.redact(err.Error()), err: errors.Unwrap(err)}
}

// describe says what an error from the server or the connection means.
func describe(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Severity + " " + pe.Code + ": " + pe.Message
		if pe.Detail != "" {
			msg += " (" + pe.Detail + ")"
		}
		if pe.Hint != "" {
			msg += "; hint: " + pe.Hint
		}
		switch pe.Code {
		case "28P01", "28000":
			msg += " [check user and password: url, password, PGPASSWORD or ~/.pgpass]"
		case "42501":
			msg += " [the user needs SELECT on the table]"
		}
		return msg
	}
	return err.Error()
}

// transient reports whether an error is a lost or refused connection (or
// a server shutting down, or a serialization failure) worth retrying from
// the last key handed on.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rn *retryNow
	if errors.As(err, &rn) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", // admin_shutdown: pg_terminate_backend, a restart
			pe.Code == "57P02", // crash_shutdown
			pe.Code == "57P03", // cannot_connect_now: starting up
			pe.Code == "53300", // too_many_connections
			pe.Code == "40001", // serialization_failure
			pe.Code == "40P01": // deadlock_detected
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "unexpected EOF")
}
