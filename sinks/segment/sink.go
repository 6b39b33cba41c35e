// Package segment is the sink that delivers messages to Segment's HTTP batch
// API: encode (sinks/message), pack into requests within Segment's limits,
// send with bounded concurrency under a rate limit, retry like the official
// clients, and acknowledge a batch only when each of its rows got a 2xx or is
// in the dead-letter file.
package segment

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/message"
)

// Sink is the segment sink. Write and Close follow pipeline.Sink.
type Sink struct {
	opts   Options
	env    *pipeline.Env
	log    *slog.Logger
	url    string
	shown  string           // url for messages: a secret in its user info replaced
	red    *redact.Redactor // the write key, in any form, out of errors and dead letters
	auth   string           // precomputed Authorization header; never logged
	ua     string
	client *http.Client

	thr      *throttle     // the events/s limit and request size, adapted to 429s
	requests *rate.Limiter // nil: no requests/s limit
	warn     *failLog      // failed attempts, as warnings

	encoders sync.Pool // *message.Encoder, one per concurrent Write
	reqPool  sync.Pool // *request with its buffers

	open  chan *request // partly filled requests between Writes
	queue chan *request // full requests waiting for a sender

	runCtx context.Context // the senders' lifetime: ends when Close's context does
	cancel context.CancelFunc
	// sendCtx ends on a permanent error (fail) or with runCtx: no new
	// attempt, no more waiting; an attempt in flight goes on under runCtx,
	// so rows the destination stores are counted delivered.
	sendCtx   context.Context
	stopSends context.CancelFunc
	// stopping is the run's context (Open): once it ends the run is
	// stopping, and a request the sink gives up on (retries spent, Close's
	// context ended) is abandoned, not a failure.
	stopping context.Context
	opened   bool
	wg       sync.WaitGroup // senders
	flushD   chan struct{}  // closed to stop the flusher
	flushW   sync.WaitGroup

	errMu sync.Mutex
	err   error // first permanent error

	liveMu sync.Mutex
	live   map[*tracker]struct{}

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool // Write after Close is refused (the queue is closed)
	cutLogged atomic.Bool // the first slow-down was logged

	st stats
}

// request is one /v1/batch body under construction or in flight: buf holds
// `{"batch":[m1,m2,...` (the tail with the batch's sentAt is added per
// attempt) and refs says where each message is, where its own sentAt's
// value is, and which batch row it belongs to.
type request struct {
	buf  []byte
	refs []msgRef
	born time.Time // when the first message went in, for flush_interval
}

type msgRef struct {
	off, end int32
	// sent is where the message's sentAt value starts in buf (its
	// placeholder, stamped per attempt), or -1: the data has its own.
	sent int32
	// id is where the message's messageId value starts in buf, for a
	// batch that wants receipts (a delivery ledger). It fills what was
	// padding: a msgRef is 32 bytes with it or without it.
	id  int32
	row int64
	t   *tracker
}

const bodyPrefix = `{"batch":[`

// tailLen is len(`],"sentAt":"2006-01-02T15:04:05.000Z"}`): every body
// ends with it, so it counts against max_bytes.
const tailLen = len(`],"sentAt":"`) + len("2006-01-02T15:04:05.000Z") + len(`"}`)

// tracker counts a batch's rows that are neither delivered nor dead-lettered
// yet, plus one guard held while Write is encoding it.
type tracker struct {
	b       *pipeline.Batch
	split   string
	pending atomic.Int64
	done    atomic.Bool
	s       *Sink
	// receipts: the batch's account keeps a delivery ledger, so its
	// delivered rows are reported with their offsets and messageIds
	// (Batch.DeliveredRows) instead of counted.
	receipts bool
}

// New builds a sink from opts (DefaultOptions, changed where needed); Open
// starts it. Rows that cannot be delivered go to each batch's dead
// letters; env.Alloc is not used (the sink only reads records).
func New(opts Options, env *pipeline.Env) (*Sink, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.Endpoint = strings.TrimRight(opts.Endpoint, "/")
	if env == nil {
		env = &pipeline.Env{}
	}
	// The rate limit is the workspace's: the shards of one run share it.
	if env.Shards > 1 {
		opts.RateLimit /= float64(env.Shards)
		opts.RequestRate /= float64(env.Shards)
	}
	s := &Sink{
		opts:   opts,
		env:    env,
		log:    env.Logger,
		url:    opts.Endpoint + opts.Path,
		shown:  redact.URL(opts.Endpoint + opts.Path),
		red:    redact.New(append(redact.URLSecrets(opts.Endpoint), opts.WriteKey)...),
		auth:   "Basic " + base64.StdEncoding.EncodeToString([]byte(opts.WriteKey+":")),
		ua:     "backfill/" + version(env.Version),
		open:   make(chan *request, 64),
		queue:  make(chan *request, opts.Concurrency),
		flushD: make(chan struct{}),
		live:   map[*tracker]struct{}{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Keep one idle connection per sender so requests reuse them.
	tr.MaxIdleConns = 2 * opts.Concurrency
	tr.MaxIdleConnsPerHost = 2 * opts.Concurrency
	tr.DisableCompression = true
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if opts.CAFile != "" || opts.InsecureSkipVerify {
		tc, err := tlsConfig(opts.CAFile, opts.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	s.client = &http.Client{Transport: tr,
		// A redirect is answered as a configuration error (send): followed,
		// a 301 or 302 turns the POST into a GET, whose 405 would
		// dead-letter every message.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.thr = newThrottle(opts.RateLimit, opts.MaxEvents)
	if opts.RequestRate > 0 {
		s.requests = rate.NewLimiter(rate.Limit(opts.RequestRate), 1)
	}
	s.warn = newFailLog(s.log, s.shown)
	mopts := message.Options{Pipeline: env.Name, Library: "backfill", Version: env.Version,
		OwnLibrary: opts.Library == message.LibraryBackfill, SentAt: true,
		MaxMessageBytes: opts.MaxMessageBytes, IDColumns: opts.IDColumns}
	s.encoders.New = func() any { return message.NewEncoder(mopts) }
	s.reqPool.New = func() any {
		return &request{buf: make([]byte, 0, opts.MaxBytes+64), refs: make([]msgRef, 0, 256)}
	}
	s.runCtx, s.cancel = context.WithCancel(context.Background())
	s.sendCtx, s.stopSends = context.WithCancel(s.runCtx)
	s.stopping = context.Background()
	return s, nil
}

// Open starts the senders and the flusher. ctx is the run's: once it ends
// the run is stopping, and the requests the sink then gives up on (its
// retries spent, or Close's context ended: the grace is over) are
// abandoned, their rows unacknowledged (pipeline.ErrStopped), instead of
// failing the run.
func (s *Sink) Open(ctx context.Context) error {
	if s.opened || s.closed.Load() {
		return errors.New("segment: Open twice, or after Close")
	}
	s.opened, s.stopping = true, ctx
	for i := 0; i < s.opts.Concurrency; i++ {
		s.wg.Add(1)
		go s.sender()
	}
	s.flushW.Add(1)
	go s.flusher()
	return nil
}

func version(v string) string {
	if v == "" {
		return "dev"
	}
	return v
}

// Write encodes b into requests and returns once every row is queued (it
// blocks while the send queue is full). b is acknowledged later, from a
// sender, when its last row is delivered or dead-lettered.
func (s *Sink) Write(ctx context.Context, b *pipeline.Batch) error {
	err := s.failure()
	if err == nil && (s.closed.Load() || !s.opened) {
		err = errors.New("segment: Write before Open or after Close")
	}
	if err != nil {
		b.Release()
		b.Ack(err)
		return err
	}
	t := &tracker{b: b, split: b.Split, s: s, receipts: b.WantsReceipts()}
	t.pending.Store(1)
	s.liveMu.Lock()
	s.live[t] = struct{}{}
	s.liveMu.Unlock()
	s.st.batches.Add(1)

	enc := s.encoders.Get().(*message.Encoder)
	req := s.takeOpen()
	maxBody := s.opts.MaxBytes - tailLen
	rejects, err := enc.Encode(b, func(row int, msg []byte) error {
		stamp := enc.SentAtOffset()
		if len(bodyPrefix)+len(msg)+1 > maxBody {
			// Larger than a whole request: no request could carry it.
			t.pending.Add(1)
			kept := append([]byte(nil), msg...)
			if stamp >= 0 {
				kept = message.WithoutSentAt(nil, msg, stamp)
			}
			return s.deadLetter(ctx, t, pipeline.Reject{Row: b.Row(row), Stage: "sink",
				Reason:  fmt.Sprintf("message is %d bytes with its sentAt, more than fits in batch.max_bytes (%d)", len(msg), s.opts.MaxBytes),
				Message: kept})
		}
		if len(req.refs) > 0 && (len(req.buf)+1+len(msg) > maxBody || len(req.refs) >= s.opts.MaxEvents) {
			if err := s.enqueue(ctx, req); err != nil {
				req = nil
				return err
			}
			req = s.newRequest()
		}
		if len(req.refs) == 0 {
			req.born = time.Now()
		} else {
			req.buf = append(req.buf, ',')
		}
		off := len(req.buf)
		req.buf = append(req.buf, msg...)
		t.pending.Add(1)
		sent := int32(-1)
		if stamp >= 0 {
			sent = int32(off + stamp)
		}
		req.refs = append(req.refs, msgRef{off: int32(off), end: int32(len(req.buf)), sent: sent,
			id: int32(off + enc.MessageIDOffset()), row: b.Row(row), t: t})
		return nil
	})
	s.encoders.Put(enc)
	b.Release() // encoded: the record is no longer needed
	if req != nil {
		if perr := s.putOpen(ctx, req); perr != nil && err == nil {
			err = perr
		}
	}
	s.st.rejectedEncode.Add(int64(len(rejects)))
	for _, r := range rejects {
		t.pending.Add(1)
		if derr := s.deadLetter(ctx, t, r); derr != nil && err == nil {
			err = derr
		}
	}
	if err != nil {
		t.finish(err)
		return err
	}
	t.sub(1) // drop the guard: the batch may complete now
	return nil
}

// deadLetter writes one row to the dead letters and counts it done. A failure
// to write (or too many rejects) is permanent: the run stops.
func (s *Sink) deadLetter(ctx context.Context, t *tracker, r pipeline.Reject) error {
	if r.Stage == "" {
		r.Stage = "sink"
	}
	if err := t.b.DeadLetter(ctx, r); err != nil {
		s.fail(err)
		t.finish(err)
		return err
	}
	s.st.deadLettered.Add(1)
	t.sub(1)
	return nil
}

func (t *tracker) sub(n int64) {
	if t.pending.Add(-n) == 0 {
		t.finish(nil)
	}
}

// finish acks the batch once: nil when every row is accounted for, the error
// when some row failed for good (those rows are not acknowledged).
func (t *tracker) finish(err error) {
	if !t.done.CompareAndSwap(false, true) {
		return
	}
	t.s.liveMu.Lock()
	delete(t.s.live, t)
	t.s.liveMu.Unlock()
	if err == nil {
		t.s.st.batchesAcked.Add(1)
	} else {
		t.s.st.batchesFailed.Add(1)
	}
	t.b.Ack(err)
}

func (s *Sink) newRequest() *request {
	r := s.reqPool.Get().(*request)
	r.buf = append(r.buf[:0], bodyPrefix...)
	r.refs = r.refs[:0]
	return r
}

func (s *Sink) recycle(r *request) {
	for i := range r.refs {
		r.refs[i].t = nil // let finished batches be collected
	}
	r.refs = r.refs[:0]
	s.reqPool.Put(r)
}

// takeOpen continues a partly filled request if one is waiting, so requests
// fill up across batches without a lock per message.
func (s *Sink) takeOpen() *request {
	if r := s.pollOpen(); r != nil {
		return r
	}
	return s.newRequest()
}

// pollOpen takes a partly filled request if one is waiting, else nil.
func (s *Sink) pollOpen() *request {
	select {
	case r := <-s.open:
		return r
	default:
		return nil
	}
}

func (s *Sink) putOpen(ctx context.Context, r *request) error {
	if len(r.refs) == 0 {
		s.recycle(r)
		return nil
	}
	select {
	case s.open <- r:
		return nil
	default:
		return s.enqueue(ctx, r)
	}
}

// enqueue hands a request to the senders, blocking while the queue is full:
// that is the backpressure on readers. If it fails, the request's rows are
// abandoned (their batches nacked).
func (s *Sink) enqueue(ctx context.Context, r *request) error {
	select {
	case s.queue <- r:
		return nil
	case <-ctx.Done():
		s.abandon(r, ctx.Err())
		return ctx.Err()
	case <-s.sendCtx.Done():
		err := s.stopError()
		s.abandon(r, err)
		return err
	}
}

// abandon nacks the batches of rows that will not be sent.
func (s *Sink) abandon(r *request, err error) {
	var last *tracker
	for _, ref := range r.refs {
		if ref.t != last {
			ref.t.finish(err)
			last = ref.t
		}
	}
	s.recycle(r)
}

// flusher sends requests that have waited flush_interval in the open pool,
// so a slow source still gets its rows delivered (and acked) promptly.
func (s *Sink) flusher() {
	defer s.flushW.Done()
	tick := time.NewTicker(s.opts.FlushInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-s.flushD:
			return
		case <-tick.C:
		}
		for n := len(s.open); n > 0; n-- {
			r := s.pollOpen()
			if r == nil {
				break
			}
			if time.Since(r.born) < s.opts.FlushInterval {
				if err := s.putOpen(s.runCtx, r); err != nil {
					return
				}
				continue
			}
			if err := s.enqueue(s.runCtx, r); err != nil {
				return
			}
		}
	}
}

// Close sends the partly filled requests, waits for every request in flight
// and returns the first permanent error. If ctx ends first, sending stops at
// once and the undelivered rows' batches are nacked.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *Sink) close(ctx context.Context) error {
	s.closed.Store(true)
	if !s.opened {
		s.cancel()
		return s.failure()
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.cancel()
		case <-done:
		}
	}()
	close(s.flushD)
	s.flushW.Wait()
	for {
		r := s.pollOpen()
		if r == nil {
			break
		}
		if len(r.refs) == 0 {
			s.recycle(r)
			continue
		}
		s.enqueue(ctx, r) // on failure it nacks the rows itself
	}
	close(s.queue)
	s.wg.Wait()
	s.cancel()
	s.client.CloseIdleConnections()
	s.warn.flush()

	err := s.failure()
	if err == nil && ctx.Err() != nil {
		err = s.givingUp(ctx.Err())
	}
	// Whatever is still tracked was never fully delivered.
	s.liveMu.Lock()
	left := make([]*tracker, 0, len(s.live))
	for t := range s.live {
		left = append(left, t)
	}
	s.liveMu.Unlock()
	if len(left) > 0 && err == nil {
		err = fmt.Errorf("segment: %d batches were not fully delivered", len(left))
	}
	for _, t := range left {
		t.finish(err)
	}
	return err
}

// fail records a permanent error and stops the senders: they abandon what
// they have not sent; attempts in flight end as they will.
func (s *Sink) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.stopSends()
}

func (s *Sink) failure() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// ErrConfig is wrapped by errors that mean the write key, region or
// endpoint is wrong (HTTP 401, 403, 404): the run cannot succeed.
var ErrConfig = errors.New("segment rejected the configuration")

// tlsConfig trusts the system's certificate authorities plus those in
// caFile.
func tlsConfig(caFile string, skipVerify bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skipVerify}
	if caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: tls.ca_file: %v", ErrConfig, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: tls.ca_file %s holds no PEM certificate", ErrConfig, caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}

// Destination is the batch URL, for the run's summary (never the key).
func (s *Sink) Destination() string { return s.shown }
