// Package pgtest runs a real PostgreSQL server for tests: a private
// cluster (initdb) in a temporary directory, on a free loopback port, with
// a generated superuser password, stopped when the test (or TestMain)
// ends.
//
// The server binaries are found in $PG_BIN, /usr/lib/postgresql/*/bin (the
// newest), `pg_config --bindir` or PATH. initdb and postgres refuse to run
// as root: run as root, the cluster is made and served by the `postgres`
// system user (its data directory owned by it); run as another user, as
// that user. Without the binaries tests are skipped, except under CI=true,
// where a missing server is a failure: CI must not pass by testing
// nothing. Skipped, they are not skipped silently: a package whose tests
// use Start or Shared wraps its tests in Main (from TestMain), which prints
// one line saying how many tests did not run and how to run them, and
// stops the shared server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backfillhq/backfill/internal/testkit/skips"
)

// Server is a running PostgreSQL cluster.
type Server struct {
	Host     string // 127.0.0.1
	Port     int
	User     string // the superuser, "postgres"
	Password string // its password (TCP connections need it: scram-sha-256)
	Dir      string // the cluster's data directory
	Version  string // the server binaries' major version ("15")

	bin    string
	root   string // what to remove when stopped
	cmd    *exec.Cmd
	done   chan struct{}
	logs   *lockedBuffer
	dbSeq  atomic.Int64
	stopMu sync.Mutex
}

// missing counts the tests skipped for want of server binaries.
var missing = &skips.Missing{Harness: "pgtest", What: "PostgreSQL server binaries not found", Tests: "PostgreSQL",
	HowToRun: "to run them: apt-get install postgresql-15 (or any PostgreSQL 12+ server), or set PG_BIN to the directory holding initdb and postgres"}

var (
	sharedMu  sync.Mutex
	shared    *Server
	sharedErr error
)

// BinDir returns the directory holding initdb and postgres, or "".
func BinDir() string {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("PG_BIN"); d != "" && ok(d) {
		return d
	}
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
		for _, d := range dirs {
			if ok(d) {
				return d
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); ok(d) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && ok(filepath.Dir(p)) {
		return filepath.Dir(p)
	}
	return ""
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start runs a fresh cluster for the test and stops it in t.Cleanup.
// Without the server binaries it skips the test (fails it under CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := BinDir()
	if bin == "" {
		missing.Skip(t)
	}
	s, err := start(bin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Shared returns the package's one cluster, started at the first call and
// stopped by Main, so tests share one initdb. Each test should work in its
// own database (NewDatabase). Without binaries it skips the test.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := BinDir()
	if bin == "" {
		missing.Skip(t)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		if !missing.Wrapping() {
			sharedErr = errors.New("pgtest.Shared needs pgtest.Main in TestMain, which stops the shared server")
		} else {
			shared, sharedErr = start(bin)
		}
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// Main wraps a package's tests (from TestMain): it stops the shared server
// when they are done and, when tests were skipped for want of binaries,
// prints one line saying how many and how to run them.
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
func Main(m interface{ Run() int }) interface{ Run() int } {
	return missing.Wrap(m, func() {
		sharedMu.Lock()
		defer sharedMu.Unlock()
		if shared != nil {
			shared.Stop()
			shared = nil
		}
	})
}

// runAs is the user the cluster runs as: nil for the current user, the
// postgres system user when running as root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and initdb refuses root: there is no postgres system user to run it as (%v)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func start(bin string) (*Server, error) {
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// Under /tmp rather than $TMPDIR: the server's socket path must stay
	// under 108 bytes, and as root the postgres user must reach the
	// directory (a $TMPDIR under /root would not do).
	base := ""
	if st, err := os.Stat("/tmp"); err == nil && st.IsDir() {
		base = "/tmp"
	}
	root, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", User: "postgres", Password: randHex(12), bin: bin, root: root,
		Dir: filepath.Join(root, "data"), Version: strconv.Itoa(versionOf(bin)), logs: &lockedBuffer{}}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(root)
		return nil, err
	}
	pwfile := filepath.Join(root, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	sock := filepath.Join(root, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fail(err)
	}
	if cred != nil {
		for _, p := range []string{root, pwfile, sock} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(err)
			}
		}
	}
	// Local (socket) connections trust; TCP ones need the password, as a
	// real server would.
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.Dir, "-U", s.User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if cred != nil {
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	// A port taken between freePort and the server's bind makes it exit:
	// try a few.
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.run(cred, sock); err == nil {
			return s, nil
		}
	}
	return fail(fmt.Errorf("starting postgres: %v\n%s", err, s.logs.String()))
}

// run starts the server and waits until it accepts connections.
func (s *Server) run(cred *syscall.Credential, sock string) error {
	s.Port = freePort()
	s.logs.Reset()
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.Dir, "-p", strconv.Itoa(s.Port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1",
		// A test server: durability off, quick to start and stop.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning",
		"-c", "TimeZone=UTC")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	// The server must not outlive the test process, even one killed: it
	// gets SIGQUIT (immediate shutdown) when the thread that started it
	// ends. That thread is locked to the goroutine waiting for the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(done)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return err
	}
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("postgres exited early")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			c.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		time.Sleep(30 * time.Millisecond)
	}
	s.Stop()
	return errors.New("postgres not ready after 30s")
}

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// removes its directory. It may be called more than once.
func (s *Server) Stop() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		s.cmd = nil
	}
	if s.root != "" {
		os.RemoveAll(s.root)
		s.root = ""
	}
}

// Logs is what the server wrote (its last megabyte).
func (s *Server) Logs() string { return s.logs.String() }

// URL is a postgres:// URL for database db, with the superuser's password.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.User, s.Password),
		Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates an empty database for the test (dropped when it
// ends) and returns its name.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", s.dbSeq.Add(1), randHex(3))
	s.Exec(t, "postgres", "CREATE DATABASE "+name+" STRATEGY = FILE_COPY")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, s.URL("postgres"))
		if err != nil {
			return // the server is gone
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return name
}

// Connect opens a connection to db, closed when the test ends.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", db, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// Exec runs SQL statements (simple protocol: several may be given in one
// string) in db.
func (s *Server) Exec(t testing.TB, db string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", db, err)
	}
	defer c.Close(ctx)
	for _, q := range sql {
		if err := c.PgConn().Exec(ctx, q).Close(); err != nil {
			t.Fatalf("pgtest: %s: %v", firstLine(q), err)
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) > 1<<20 {
		l.b = l.b[:0]
	}
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return string(l.b) }
func (l *lockedBuffer) Reset()         { l.mu.Lock(); defer l.mu.Unlock(); l.b = l.b[:0] }
