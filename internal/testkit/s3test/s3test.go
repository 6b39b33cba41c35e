// Package s3test runs a real S3-compatible server (MinIO) for tests: a
// fresh server per Start, with its own data directory and generated root
// credentials, stopped when the test ends.
//
// The minio binary is found in $MINIO_BIN, $(go env GOPATH)/bin/minio or
// PATH; scripts/install-minio.sh builds it. Without it tests are skipped,
// except under CI=true, where a missing server is a failure: CI must not
// pass by testing nothing.
//
// Skipped, they are not skipped silently: a package whose tests use Start
// wraps its tests in Report (from TestMain), which prints one line saying
// how many S3 tests did not run and how to run them.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backfillhq/backfill/internal/testkit/skips"
)

// Region is the region the server answers for.
const Region = "us-east-1"

// Server is a running MinIO.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string // root user
	SecretKey string // root password
	Client    *s3.Client

	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
}

// Binary returns the minio binary's path, or "" when there is none.
func Binary() string {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	return ""
}

// missing counts the tests Start skipped for want of a binary.
var missing = &skips.Missing{Harness: "s3test", What: "minio not installed", Tests: "S3",
	HowToRun: "to run them: bash scripts/install-minio.sh (or ./scripts/test.sh, which installs it), or set MINIO_BIN"}

// Start runs a fresh MinIO for the test and stops it in t.Cleanup. Without
// a minio binary it skips the test (fails it under CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		missing.Skip(t)
	}
	s := &Server{AccessKey: "root" + randHex(4), SecretKey: randHex(16), logs: &lockedBuffer{}}
	dir := t.TempDir()
	// A port taken between freePort and minio's bind makes minio exit; retry
	// a few times rather than flake.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(bin, dir); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting minio: %v\n%s", err, s.logs.String())
	}
	t.Cleanup(s.stop)
	s.Client = s.NewClient(s.AccessKey, s.SecretKey)
	return s
}

// Report wraps a package's tests so that, when Start skipped some for want
// of a minio binary, one line says how many and how to run them once they
// are done. Use it in TestMain, around m or with goleak:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(s3test.Report(m)) }
//	func TestMain(m *testing.M) { os.Exit(s3test.Report(m).Run()) }
func Report(m interface{ Run() int }) interface{ Run() int } { return missing.Wrap(m, nil) }

func (s *Server) start(bin, dir string) error {
	port, cport := freePort(), freePort()
	s.Endpoint = "http://127.0.0.1:" + port
	cmd := exec.Command(bin, "server", dir, "--quiet",
		"--address", "127.0.0.1:"+port, "--console-address", "127.0.0.1:"+cport)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_REGION="+Region,
		"MINIO_CI_CD=1", // no interactive niceties, allows a plain temp dir
	)
	s.logs.Reset()
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	client := s.NewClient(s.AccessKey, s.SecretKey)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("minio exited early")
		default:
		}
		if last = s.ready(client); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("minio not ready after 30s: %v", last)
}

// ready is nil once minio answers S3 calls. Its health endpoint says
// ready before its object layer is: on a busy machine a first
// CreateBucket then met 503 XMinioServerNotInitialized.
func (s *Server) ready(client *s3.Client) error {
	resp, err := http.Get(s.Endpoint + "/minio/health/ready")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = client.ListBuckets(ctx, &s3.ListBucketsInput{}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	return err
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// NewClient returns an S3 client for this server with the given keys
// (wrong keys make the denied cases).
func (s *Server) NewClient(accessKey, secretKey string) *s3.Client {
	return s.clientFor(s.Endpoint, aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")))
}

func (s *Server) clientFor(endpoint string, creds aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  creds,
		// MinIO sends no checksums; no log line per GET about it.
		DisableLogOutputChecksumValidationSkipped: true,
	})
}

// SetCredentialsEnv points the AWS SDK's default credential chain (what
// the CLI uses) at this server's keys, for the rest of the test.
func (s *Server) SetCredentialsEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
}

// CreateBucket makes a bucket.
func (s *Server) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
}

// Put stores a small object.
func (s *Server) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	_, err := s.Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// PutFile stores a local file (seekable, so large files stream from disk).
func (s *Server) PutFile(t testing.TB, bucket, key, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = s.Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: f,
	})
	if err != nil {
		t.Fatalf("put s3://%s/%s from %s: %v", bucket, key, path, err)
	}
}

// PutParallel stores many small objects with a few concurrent uploads.
func (s *Server) PutParallel(t testing.TB, bucket string, objects map[string][]byte) {
	t.Helper()
	type kv struct {
		k string
		v []byte
	}
	ch := make(chan kv)
	var wg sync.WaitGroup
	var first atomic.Value
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range ch {
				_, err := s.Client.PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: aws.String(bucket), Key: aws.String(o.k), Body: bytes.NewReader(o.v),
				})
				if err != nil {
					first.CompareAndSwap(nil, fmt.Errorf("put s3://%s/%s: %w", bucket, o.k, err))
				}
			}
		}()
	}
	for k, v := range objects {
		ch <- kv{k, v}
	}
	close(ch)
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		t.Fatal(err)
	}
}

// SetPolicy sets a bucket policy (JSON), e.g. to allow anonymous reads of
// one prefix.
func (s *Server) SetPolicy(t testing.TB, bucket, policy string) {
	t.Helper()
	_, err := s.Client.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket), Policy: aws.String(policy),
	})
	if err != nil {
		t.Fatalf("put bucket policy on %s: %v", bucket, err)
	}
}

// Counter is a reverse proxy in front of the server that counts what goes
// through it, so tests can check how many GETs and bytes a read costs.
type Counter struct {
	URL string // endpoint to give the client instead of Server.Endpoint

	mu       sync.Mutex
	cuts     int   // object GETs still to cut short
	cutAfter int64 // bytes a cut GET delivers before the connection drops
	failPuts int   // PUT responses still to replace with a 500
	gets     int64
	getBytes int64
	lists    int64
	prefixes []string
	ranges   []string
}

// Stats are a Counter's totals.
type Stats struct {
	Gets     int64    // object GETs (ListObjects excluded)
	GetBytes int64    // response body bytes of those GETs
	Lists    int64    // ListObjectsV2 calls
	Prefixes []string // their prefix parameters, in order
	Ranges   []string // Range headers of the GETs, in order ("" for none)
}

// Counting starts a counting proxy for the test.
func (s *Server) Counting(t testing.TB) *Counter {
	t.Helper()
	target, _ := url.Parse(s.Endpoint)
	c := &Counter{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		// The client signs the Host it talks to (the proxy); forwarding
		// that Host unchanged keeps the SigV4 signature valid at MinIO.
		r.Out.Host = r.In.Host
	}}
	rp.ErrorLog = log.New(io.Discard, "", 0) // cut connections are intended
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if r.Method == http.MethodPut {
			c.mu.Lock()
			fail := c.failPuts > 0
			if fail {
				c.failPuts--
			}
			c.mu.Unlock()
			if fail {
				// The server has handled the PUT (it may have stored the
				// object); the client sees an error, as when a response is
				// lost.
				resp.Body.Close()
				body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>` +
					`<Message>s3test: response replaced</Message></Error>`
				resp.StatusCode, resp.Status = http.StatusInternalServerError, "500 Internal Server Error"
				resp.Body = io.NopCloser(strings.NewReader(body))
				resp.ContentLength = int64(len(body))
				resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
				resp.Header.Set("Content-Type", "application/xml")
				resp.Header.Del("ETag")
			}
			return nil
		}
		if r.Method != http.MethodGet {
			return nil
		}
		if r.URL.Query().Has("list-type") {
			c.mu.Lock()
			c.lists++
			c.prefixes = append(c.prefixes, r.URL.Query().Get("prefix"))
			c.mu.Unlock()
			return nil
		}
		// Only object paths (/bucket/key) count as GETs.
		if strings.Count(strings.Trim(r.URL.Path, "/"), "/") < 1 {
			return nil
		}
		c.mu.Lock()
		c.gets++
		c.ranges = append(c.ranges, r.Header.Get("Range"))
		limit := int64(-1)
		if c.cuts > 0 {
			c.cuts--
			limit = c.cutAfter
		}
		c.mu.Unlock()
		resp.Body = &countingBody{ReadCloser: resp.Body, c: c, limit: limit}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c.URL = "http://" + ln.Addr().String()
	return c
}

// CutNextGets makes the next n object GETs drop their connection after
// `after` body bytes, as a reset mid-download would.
func (c *Counter) CutNextGets(n int, after int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cuts, c.cutAfter = n, after
}

// FailNextPuts makes the next n PUT responses 500s after the server has
// handled the PUTs: a write that landed while its client saw it fail.
func (c *Counter) FailNextPuts(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failPuts = n
}

// Stats returns the totals so far.
func (c *Counter) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Gets: c.gets, GetBytes: c.getBytes, Lists: c.lists, Prefixes: append([]string(nil), c.prefixes...),
		Ranges: append([]string(nil), c.ranges...)}
}

// Reset zeroes the totals.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets, c.getBytes, c.lists, c.prefixes, c.ranges = 0, 0, 0, nil, nil
}

type countingBody struct {
	io.ReadCloser
	c     *Counter
	limit int64 // -1: no cut
	read  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.limit >= 0 {
		if b.read >= b.limit {
			// The reverse proxy aborts the response on a body error: the
			// client sees the connection end early.
			return 0, errors.New("s3test: connection cut")
		}
		if rem := b.limit - b.read; int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	b.c.mu.Lock()
	b.c.getBytes += int64(n)
	b.c.mu.Unlock()
	return n, err
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
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
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Keep the tail only: minio can be chatty over a long benchmark.
	if l.b.Len() > 1<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *lockedBuffer) Reset()         { l.mu.Lock(); defer l.mu.Unlock(); l.b.Reset() }
