// Package segmenttest is a Segment-compatible HTTP receiver for tests and
// benchmarks: it enforces Segment's limits (strictest reading), validates
// messages the way Segment does, records what it received by messageId and
// injects faults deterministically.
//
// Tests that must act at a known point of a delivery use the receiver's own
// signals rather than sleeps: Stored says when a number of messages has
// arrived, and Options.HoldAfter stalls the receiver after a number of
// requests (Held says when requests are held) until Release lets it go on.
package segmenttest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/time/rate"
)

// Segment's limits, strictest reading (see shared/docs/segment-wire.md).
const (
	MaxBodyBytes    = 500_000
	MaxMessageBytes = 32_000
	MaxBatchEvents  = 2_500
)

// Options configure a Server. The zero value accepts any write key, injects
// no faults and keeps every messageId.
type Options struct {
	// WriteKeys accepted in Basic auth; empty means any non-empty key.
	WriteKeys []string

	// Fault injection, each a fraction of requests in [0,1], decided in
	// arrival order from Seed.
	Seed       int64
	Fail500    float64
	Fail429    float64
	RetryAfter string // Retry-After header sent with 429s, injected or EventsPerSecond's ("" sends none)
	Slow       float64
	SlowDelay  time.Duration
	Drop       float64 // hijack the connection and close it without a response

	// EventsPerSecond, when > 0, is a collector's rate limit in events:
	// a token bucket refilled at that rate holding one second's worth
	// (rudder-server's). A request whose messages the bucket cannot cover
	// now is answered 429 (with RetryAfter, by default none, as
	// rudder-server answers) and takes no tokens; one larger than the
	// bucket never passes.
	EventsPerSecond float64

	// Status, when set, answers every authorized batch request with that
	// status and StatusBody, storing nothing: a disabled source (rudder-
	// server's 404 "source is disabled"), a proxy's error page.
	Status     int
	StatusBody string

	// Reject, when set, turns a whole request into a 400 if it returns a
	// non-empty reason for any message (rudder-server fails the whole batch
	// on one bad message). Use it to exercise the sink's 400 splitting.
	Reject func(m Message) string

	// MaxBodyBytes and MaxEvents lower the limits below Segment's (0 keeps
	// Segment's), to check that a client holds a configured limit exactly.
	MaxBodyBytes int
	MaxEvents    int

	// KeepBodies keeps each message's JSON (first copy) for assertions;
	// otherwise only messageIds and counts are kept.
	KeepBodies bool
	// CountOnly keeps no ids at all (for benchmarks at scale): duplicates
	// cannot be detected then.
	CountOnly bool
	// SkipValidation skips per-message JSON decoding (benchmarks that only
	// measure the client); limits are still enforced.
	SkipValidation bool

	// HoldAfter, when > 0, makes the receiver answer its first HoldAfter
	// requests to /v1/batch and /v1/import as usual (in arrival order) and
	// then hold every later one: its body is read, but it gets no answer
	// and stores nothing until Release is called (it is then handled as
	// usual), its client gives up on it (the connection closes) or the
	// server is closed. It is a collector stalling at a known point, for
	// tests of cancellation, shutdown and backpressure. Stats.Held counts
	// the requests held; Held signals them.
	HoldAfter int
}

// Message is the part of a Segment message the receiver checks.
type Message struct {
	Type        string          `json:"type"`
	MessageID   string          `json:"messageId"`
	UserID      json.RawMessage `json:"userId"`
	AnonymousID json.RawMessage `json:"anonymousId"`
	Event       json.RawMessage `json:"event"`
	GroupID     json.RawMessage `json:"groupId"`
	PreviousID  json.RawMessage `json:"previousId"`
	Timestamp   string          `json:"timestamp"`
	SentAt      string          `json:"sentAt"`
	Properties  json.RawMessage `json:"properties"`
	Traits      json.RawMessage `json:"traits"`
	Raw         []byte          `json:"-"`
}

// Stats are the receiver's counters.
type Stats struct {
	Requests     int64
	ByStatus     map[int]int64
	Messages     int64 // messages in 2xx-answered requests
	UniqueIDs    int64
	Duplicates   int64 // messages whose messageId was seen before
	Dropped      int64 // accepted with 200 but invalid: Segment drops them silently
	Violations   int64 // requests over Segment's limits
	BytesIn      int64 // bytes on the wire (compressed when gzipped)
	BytesDecoded int64 // uncompressed body bytes
	Gzipped      int64 // requests sent with Content-Encoding: gzip
	Unauthorized int64
	BadSentAt    int64 // requests without a parseable sentAt
	// NoMessageSentAt counts stored messages without a parseable sentAt
	// of their own (rudder-server keeps only the messages'); not counted
	// with SkipValidation.
	NoMessageSentAt int64
	RateLimited     int64 // requests answered 429 by EventsPerSecond
	Held            int64 // requests held by Options.HoldAfter (released or not)
	DroppedReasons  map[string]int64
}

// Server is a running receiver.
type Server struct {
	opts Options
	srv  *httptest.Server
	keys map[string]bool

	rmu sync.Mutex
	rnd *rand.Rand

	bucket *rate.Limiter // EventsPerSecond; nil without

	mu         sync.Mutex
	ids        map[string]int32
	bodies     map[string][]byte
	byStatus   map[int]int64
	dropReason map[string]int64
	violations []string
	userAgents map[string]int64
	waiters    []waiter // Stored and Held channels not closed yet

	release     chan struct{} // closed by Release
	releaseOnce sync.Once
	closing     chan struct{} // closed by Close
	closeOnce   sync.Once

	requests, messages, duplicates, dropped, violationN   atomic.Int64
	bytesIn, bytesDecoded, gzipped, unauthorized, badSent atomic.Int64
	batchRequests, held, noMsgSentAt, rateLimited         atomic.Int64
}

// waiter is a Stored (or Held) channel, closed once messages (or held)
// reaches n.
type waiter struct {
	n    int64
	held bool
	ch   chan struct{}
}

// NewServer starts a receiver on 127.0.0.1. Close it when done.
func NewServer(opts Options) *Server {
	s := newServer(opts)
	s.srv = httptest.NewServer(s)
	return s
}

// NewHandler returns a receiver that is not listening: serve it yourself
// (bench/cmd/receiver does).
func NewHandler(opts Options) *Server { return newServer(opts) }

func newServer(opts Options) *Server {
	s := &Server{
		opts:       opts,
		rnd:        rand.New(rand.NewSource(opts.Seed)),
		ids:        map[string]int32{},
		bodies:     map[string][]byte{},
		byStatus:   map[int]int64{},
		dropReason: map[string]int64{},
		userAgents: map[string]int64{},
		keys:       map[string]bool{},
		release:    make(chan struct{}),
		closing:    make(chan struct{}),
	}
	for _, k := range opts.WriteKeys {
		s.keys[k] = true
	}
	if opts.EventsPerSecond > 0 {
		s.bucket = rate.NewLimiter(rate.Limit(opts.EventsPerSecond), max(1, int(math.Ceil(opts.EventsPerSecond))))
	}
	return s
}

// URL is the base URL to use as the sink's endpoint.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server. Requests still held (Options.HoldAfter) end
// without an answer.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	if s.srv != nil {
		s.srv.CloseClientConnections()
		s.srv.Close()
	}
}

// Release ends the hold of Options.HoldAfter: the requests held are
// handled as usual, and so is every later one. Calling it again does
// nothing.
func (s *Server) Release() { s.releaseOnce.Do(func() { close(s.release) }) }

// Stored returns a channel that is closed once the receiver has stored at
// least n messages (Stats.Messages: the messages of 2xx-answered requests,
// duplicates included). It is closed when the request that reaches n is
// stored, just before that request is answered; at once if n are stored
// already. A test waits on it to act at a known point of a delivery (stop a
// client part way, say) instead of sleeping or polling Stats.
func (s *Server) Stored(n int64) <-chan struct{} { return s.wait(waiter{n: n}) }

// Held returns a channel that is closed once the receiver has held n
// requests (Options.HoldAfter; Stats.Held), released or not: from then on
// the test knows the client is waiting on a stalled collector.
func (s *Server) Held(n int64) <-chan struct{} { return s.wait(waiter{n: n, held: true}) }

func (s *Server) wait(w waiter) <-chan struct{} {
	w.ch = make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiters = append(s.waiters, w)
	s.wake()
	return w.ch
}

// wake closes the waiters' channels whose count is reached; s.mu is held.
func (s *Server) wake() {
	if len(s.waiters) == 0 {
		return
	}
	stored, held := s.messages.Load(), s.held.Load()
	keep := s.waiters[:0]
	for _, w := range s.waiters {
		if (w.held && held >= w.n) || (!w.held && stored >= w.n) {
			close(w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	clear(s.waiters[len(keep):])
	s.waiters = keep
}

// hold keeps a request unanswered while Options.HoldAfter says so; false
// means the request is to end without any answer (its client left, or the
// server is closing).
func (s *Server) hold(r *http.Request) bool {
	if s.opts.HoldAfter <= 0 || s.batchRequests.Add(1) <= int64(s.opts.HoldAfter) {
		return true
	}
	select {
	case <-s.release:
		return true
	default:
	}
	s.mu.Lock()
	s.held.Add(1)
	s.wake()
	s.mu.Unlock()
	select {
	case <-s.release:
		return true
	case <-r.Context().Done():
	case <-s.closing:
	}
	return false
}

// Count is how many times messageId was received in 2xx-answered requests.
func (s *Server) Count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.ids[id])
}

// IDs returns every messageId received with its count.
func (s *Server) IDs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		out[k] = int(v)
	}
	return out
}

// Body returns the first received copy of a message (KeepBodies only).
func (s *Server) Body(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[id]
}

// ViolationList describes each request that broke Segment's limits.
func (s *Server) ViolationList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

// UserAgents counts requests by User-Agent.
func (s *Server) UserAgents() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.userAgents)
}

// Stats snapshots the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Requests:        s.requests.Load(),
		ByStatus:        map[int]int64{},
		Messages:        s.messages.Load(),
		UniqueIDs:       int64(len(s.ids)),
		Duplicates:      s.duplicates.Load(),
		Dropped:         s.dropped.Load(),
		Violations:      s.violationN.Load(),
		BytesIn:         s.bytesIn.Load(),
		BytesDecoded:    s.bytesDecoded.Load(),
		Gzipped:         s.gzipped.Load(),
		Unauthorized:    s.unauthorized.Load(),
		BadSentAt:       s.badSent.Load(),
		NoMessageSentAt: s.noMsgSentAt.Load(),
		RateLimited:     s.rateLimited.Load(),
		Held:            s.held.Load(),
		DroppedReasons:  map[string]int64{},
	}
	for k, v := range s.byStatus {
		st.ByStatus[k] = v
	}
	for k, v := range s.dropReason {
		st.DroppedReasons[k] = v
	}
	return st
}

type fault int

const (
	faultNone fault = iota
	fault500
	fault429
	faultDrop
)

// pick decides one request's fault with a single draw, so the fractions add
// up and stay deterministic for a given arrival order.
func (s *Server) pick() (fault, bool) {
	o := s.opts
	if o.Fail500+o.Fail429+o.Drop <= 0 && o.Slow <= 0 {
		return faultNone, false
	}
	s.rmu.Lock()
	x := s.rnd.Float64()
	slow := o.Slow > 0 && s.rnd.Float64() < o.Slow
	s.rmu.Unlock()
	switch {
	case x < o.Fail500:
		return fault500, slow
	case x < o.Fail500+o.Fail429:
		return fault429, slow
	case x < o.Fail500+o.Fail429+o.Drop:
		return faultDrop, slow
	}
	return faultNone, slow
}

func (s *Server) status(w http.ResponseWriter, code int, body string) {
	s.mu.Lock()
	s.byStatus[code]++
	s.mu.Unlock()
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(code)
	if body != "" {
		io.WriteString(w, body)
	}
}

func (s *Server) violation(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.violationN.Add(1)
	s.mu.Lock()
	if len(s.violations) < 100 {
		s.violations = append(s.violations, msg)
	}
	s.mu.Unlock()
	s.status(w, http.StatusBadRequest, `{"code":"invalid_request","message":`+strconv.Quote(msg)+`}`)
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Basic ") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(h[len("Basic "):])
	if err != nil {
		return false
	}
	key, _, ok := strings.Cut(string(raw), ":")
	if !ok || key == "" {
		return false
	}
	return len(s.keys) == 0 || s.keys[key]
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP implements Segment's /v1/batch and /v1/import.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.URL.Path != "/v1/batch" && r.URL.Path != "/v1/import" {
		io.Copy(io.Discard, r.Body)
		s.status(w, http.StatusNotFound, `{"code":"not_found"}`)
		return
	}
	if r.Method != http.MethodPost {
		s.status(w, http.StatusMethodNotAllowed, "")
		return
	}
	s.mu.Lock()
	s.userAgents[r.Header.Get("User-Agent")]++
	s.mu.Unlock()

	cr := &countingReader{r: r.Body}
	var body io.Reader = cr
	if r.Header.Get("Content-Encoding") == "gzip" {
		s.gzipped.Add(1)
		zr, err := gzip.NewReader(cr)
		if err != nil {
			s.violation(w, "bad gzip body: %v", err)
			return
		}
		defer zr.Close()
		body = zr
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	// Read one byte past the limit to detect an oversized body without
	// holding an unbounded one.
	maxBody, maxEvents := MaxBodyBytes, MaxBatchEvents
	if s.opts.MaxBodyBytes > 0 {
		maxBody = s.opts.MaxBodyBytes
	}
	if s.opts.MaxEvents > 0 {
		maxEvents = s.opts.MaxEvents
	}
	_, err := buf.ReadFrom(io.LimitReader(body, int64(maxBody)+1))
	io.Copy(io.Discard, r.Body)
	s.bytesIn.Add(cr.n)
	if err != nil {
		s.violation(w, "reading body: %v", err)
		return
	}
	s.bytesDecoded.Add(int64(buf.Len()))

	if !s.hold(r) {
		// No answer at all: returning would send an empty 200, which a
		// client still connected would take for a delivery.
		panic(http.ErrAbortHandler)
	}
	if !s.authorized(r) {
		s.unauthorized.Add(1)
		s.status(w, http.StatusUnauthorized, `{"code":"unauthorized","message":"Invalid write key"}`)
		return
	}

	if s.opts.Status != 0 {
		s.status(w, s.opts.Status, s.opts.StatusBody)
		return
	}

	f, slow := s.pick()
	if slow && s.opts.SlowDelay > 0 {
		select {
		case <-time.After(s.opts.SlowDelay):
		case <-r.Context().Done():
			return
		}
	}
	switch f {
	case fault500:
		s.status(w, http.StatusInternalServerError, `{"code":"internal"}`)
		return
	case fault429:
		if s.opts.RetryAfter != "" {
			w.Header().Set("Retry-After", s.opts.RetryAfter)
		}
		s.status(w, http.StatusTooManyRequests, `{"code":"rate_limited"}`)
		return
	case faultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				s.mu.Lock()
				s.byStatus[0]++
				s.mu.Unlock()
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				conn.Close()
				return
			}
		}
		s.status(w, http.StatusBadGateway, "")
		return
	}

	if buf.Len() > maxBody {
		s.violation(w, "request body over %d bytes", maxBody)
		return
	}
	batchMsgs, sentAt, err := splitBatch(buf.Bytes(), make([][]byte, 0, 512))
	if err != nil {
		s.violation(w, "body is not a JSON batch: %v", err)
		return
	}
	if len(batchMsgs) > maxEvents {
		s.violation(w, "%d messages in one batch (max %d)", len(batchMsgs), maxEvents)
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, sentAt); err != nil {
		s.badSent.Add(1)
	}
	for i, raw := range batchMsgs {
		if len(raw) > MaxMessageBytes {
			s.violation(w, "message %d is %d bytes (max %d)", i, len(raw), MaxMessageBytes)
			return
		}
	}
	if s.bucket != nil && !s.bucket.AllowN(time.Now(), len(batchMsgs)) {
		s.rateLimited.Add(1)
		if s.opts.RetryAfter != "" {
			w.Header().Set("Retry-After", s.opts.RetryAfter)
		}
		s.status(w, http.StatusTooManyRequests, `{"code":"rate_limited","message":"too many events"}`)
		return
	}

	msgs := make([]Message, len(batchMsgs))
	reasons := make([]string, len(batchMsgs))
	for i, raw := range batchMsgs {
		m := &msgs[i]
		m.Raw = raw
		if s.opts.SkipValidation {
			if !s.opts.CountOnly {
				m.MessageID = fastMessageID(raw)
			}
			continue
		}
		if err := json.Unmarshal(raw, m); err != nil {
			reasons[i] = "not a JSON object"
			continue
		}
		reasons[i] = Validate(m)
	}
	if s.opts.Reject != nil {
		for i := range msgs {
			if why := s.opts.Reject(msgs[i]); why != "" {
				s.status(w, http.StatusBadRequest,
					`{"code":"invalid_request","message":`+strconv.Quote(fmt.Sprintf("message %d: %s", i, why))+`}`)
				return
			}
		}
	}

	s.mu.Lock()
	for i := range msgs {
		if reasons[i] != "" {
			s.dropped.Add(1)
			s.dropReason[reasons[i]]++
			continue
		}
		s.messages.Add(1)
		if !s.opts.SkipValidation {
			if _, err := time.Parse(time.RFC3339Nano, msgs[i].SentAt); err != nil {
				s.noMsgSentAt.Add(1)
			}
		}
		if s.opts.CountOnly {
			continue
		}
		id := msgs[i].MessageID
		if n := s.ids[id]; n > 0 {
			s.duplicates.Add(1)
		} else {
			id = strings.Clone(id)
			if s.opts.KeepBodies {
				s.bodies[id] = bytes.Clone(msgs[i].Raw)
			}
		}
		s.ids[id]++
	}
	s.wake()
	s.mu.Unlock()
	s.status(w, http.StatusOK, `{"success":true}`)
}

// Validate returns why Segment would silently drop m, or "".
func Validate(m *Message) string {
	isStr := func(r json.RawMessage) bool {
		return len(r) > 2 && r[0] == '"' && string(r) != `""`
	}
	isObj := func(r json.RawMessage) bool {
		r = bytes.TrimSpace(r)
		return len(r) == 0 || string(r) == "null" || r[0] == '{'
	}
	switch m.Type {
	case "identify", "track", "page", "screen", "group", "alias":
	default:
		return "bad type"
	}
	if m.MessageID == "" {
		return "no messageId"
	}
	if len(m.MessageID) >= 100 {
		return "messageId too long"
	}
	if m.Type != "alias" && !isStr(m.UserID) && !isStr(m.AnonymousID) {
		return "no userId or anonymousId"
	}
	switch m.Type {
	case "track":
		if !isStr(m.Event) {
			return "track without event"
		}
	case "group":
		if !isStr(m.GroupID) {
			return "group without groupId"
		}
	case "alias":
		if !isStr(m.UserID) || !isStr(m.PreviousID) {
			return "alias without userId and previousId"
		}
	}
	if !isObj(m.Properties) {
		return "properties is not an object"
	}
	if !isObj(m.Traits) {
		return "traits is not an object"
	}
	if m.Timestamp != "" {
		if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
			return "bad timestamp"
		}
	}
	return ""
}

// fastMessageID finds "messageId":"..." without decoding the message.
func fastMessageID(raw []byte) string {
	i := bytes.Index(raw, []byte(`"messageId":"`))
	if i < 0 {
		return ""
	}
	rest := raw[i+len(`"messageId":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
