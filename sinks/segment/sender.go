package segment

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/internal/redact"
	"github.com/backfillhq/backfill/pipeline"
	"github.com/backfillhq/backfill/sinks/message"
)

// sender state owned by one goroutine: its compressor and scratch buffers.
type worker struct {
	zw      *gzip.Writer
	zbuf    bytes.Buffer
	scratch []byte
	rbody   []byte
	// a delivered run's row offsets and messageIds, for a batch that
	// wants receipts (reused)
	rows []int64
	ids  [][]byte
}

func (s *Sink) sender() {
	defer s.wg.Done()
	w := s.newWorker()
	for r := range s.queue {
		if err := s.sendCtx.Err(); err != nil {
			// Stopping: keep draining so no Write stays blocked.
			s.abandon(r, s.stopError())
			continue
		}
		if err := pipeline.Safely("segment sender", func() error { s.deliver(w, r, r.refs, true); return nil }); err != nil {
			// A bug met on a request or a response: stop the run with
			// it instead of ending the process. Rows acked before the
			// panic stay acked; the rest are nacked and resent on resume.
			s.fail(err)
			s.nack(r.refs, err)
			w = s.newWorker() // its compressor may be mid-stream
		}
		s.recycle(r)
	}
}

func (s *Sink) newWorker() *worker {
	w := &worker{}
	if s.opts.Gzip {
		w.zw, _ = gzip.NewWriterLevel(io.Discard, s.opts.GzipLevel)
	}
	return w
}

func (s *Sink) stopError() error {
	if err := s.failure(); err != nil {
		return err
	}
	return s.givingUp(context.Canceled)
}

// deliver sends refs (all of r when whole) and accounts for each of them:
// acked on 2xx, split and resent on 400, dead-lettered when a single
// message is rejected, nacked on a permanent error. While 429s continue,
// requests larger than the collector takes are sent in halves.
func (s *Sink) deliver(w *worker, r *request, refs []msgRef, whole bool) {
	if len(refs) > s.thr.maxEvents() {
		s.st.throttleSplits.Add(1)
		h := len(refs) / 2
		s.deliver(w, r, refs[:h], false)
		s.deliver(w, r, refs[h:], false)
		return
	}
	code, body, err := s.send(w, r, refs, whole)
	switch {
	case err != nil:
		s.fail(err)
		s.nack(refs, err)
	case code/100 == 2:
		s.st.delivered.Add(int64(len(refs)))
		w.ack(r.buf, refs, code)
	case code == http.StatusTooManyRequests:
		// 429s continue: send was told to make requests smaller.
		s.st.throttleSplits.Add(1)
		h := len(refs) / 2
		s.deliver(w, r, refs[:h], false)
		s.deliver(w, r, refs[h:], false)
	case len(refs) > 1:
		// One bad message fails the whole request: halve until it is alone.
		s.st.splits.Add(1)
		h := len(refs) / 2
		s.deliver(w, r, refs[:h], false)
		s.deliver(w, r, refs[h:], false)
	default:
		ref := refs[0]
		s.st.rejectedHTTP.Add(1)
		msg := r.buf[ref.off:ref.end]
		kept := bytes.Clone(msg)
		if ref.sent >= 0 {
			// Without the sentAt of this attempt: a redrive stamps its own.
			kept = message.WithoutSentAt(nil, msg, int(ref.sent-ref.off))
		}
		s.deadLetter(s.runCtx, ref.t, pipeline.Reject{Row: ref.row, Stage: "sink",
			Reason:  fmt.Sprintf("Segment rejected the message with HTTP %d (response: %s)", code, s.excerpt([]byte(body))),
			Message: kept, Status: code, Body: body})
	}
}

// ack counts delivered rows off their batches, one atomic per run of rows
// from the same batch. A batch that wants receipts (a delivery ledger) is
// told which rows they are and their messageIds, read from buf, and the
// HTTP status that acknowledged them.
func (w *worker) ack(buf []byte, refs []msgRef, status int) {
	for i := 0; i < len(refs); {
		t, j := refs[i].t, i+1
		for j < len(refs) && refs[j].t == t {
			j++
		}
		if t.receipts {
			w.rows, w.ids = w.rows[:0], w.ids[:0]
			for _, ref := range refs[i:j] {
				w.rows = append(w.rows, ref.row)
				w.ids = append(w.ids, message.IDAt(buf, int(ref.id)))
			}
			t.b.DeliveredRows(status, w.rows, w.ids)
			clear(w.ids) // let buf go with its request
		} else {
			t.b.Delivered(j - i)
		}
		t.sub(int64(j - i))
		i = j
	}
}

func (s *Sink) nack(refs []msgRef, err error) {
	var last *tracker
	for _, ref := range refs {
		if ref.t != last {
			ref.t.finish(err)
			last = ref.t
		}
	}
}

// send posts refs until a final answer: a 2xx, or a 4xx that says the
// content is bad (code and body returned), a 429 that continues on a
// request of more than one message (it is to be sent in halves), or a
// permanent error (retries exhausted, a configuration error, the run
// stopping).
func (s *Sink) send(w *worker, r *request, refs []msgRef, whole bool) (int, string, error) {
	ctx := s.sendCtx // waits; an attempt itself runs under runCtx
	failures, limited, streak := 0, 0, 0
	var lastErr string
	for {
		if err := ctx.Err(); err != nil {
			return 0, "", s.stopped(err)
		}
		if s.requests != nil {
			if err := s.requests.Wait(ctx); err != nil {
				return 0, "", s.stopped(err)
			}
		}
		if err := s.thr.wait(ctx, len(refs)); err != nil {
			return 0, "", s.stopped(err)
		}
		body := s.body(w, r, refs, whole)
		started := time.Now()
		s.thr.attempt(len(refs), started)
		code, hdr, rbody, err := s.post(s.runCtx, w, body)
		s.st.requests.Add(1)
		s.st.bytes.Add(int64(len(body)))
		s.st.status(code)
		var wait time.Duration
		if code != http.StatusTooManyRequests {
			streak = 0
		}
		switch {
		case err != nil:
			if s.runCtx.Err() != nil {
				return 0, "", s.stopped(s.runCtx.Err())
			}
			if cerr := (*tls.CertificateVerificationError)(nil); errors.As(err, &cerr) {
				// Retrying cannot fix a certificate the client does not trust.
				return 0, "", fmt.Errorf("%w: %s: %v (a private certificate authority goes in tls.ca_file)",
					ErrConfig, redact.URL(s.opts.Endpoint), err)
			}
			lastErr = s.red.String(err.Error())
			s.warn.failed(kindNetwork, lastErr, len(refs))
			failures++
			wait = s.backoff(failures)
		case code/100 == 2:
			s.thr.delivered(len(refs))
			return code, "", nil
		case code == http.StatusTooManyRequests:
			// Rate limited: wait as told, without spending the retry
			// budget, but do not wait forever on a collector stuck at 429.
			limited++
			streak++
			s.st.rateLimited.Add(1)
			ex := s.excerpt(rbody)
			s.warn.failed(code, ex, len(refs))
			if limited > 1000 {
				return 0, "", s.givingUp(fmt.Errorf("segment: still rate limited after %d attempts: HTTP 429 from %s (response: %s)",
					limited, s.shown, ex))
			}
			wait = s.retryAfter(hdr)
			if streak < 2 {
				break // once may be chance: wait as told and try again
			}
			// 429s continue: send less often, and in smaller requests.
			split := len(refs) > 1
			if cut, evps, size := s.thr.limited(len(refs), started, time.Now(), split); cut {
				s.logCut(evps, size)
			}
			if split {
				// Told when to come back: wait as told. Otherwise the
				// lowered rate paces the halves.
				if told(hdr) {
					if err := s.sleep(ctx, wait); err != nil {
						return 0, "", err
					}
				}
				return code, "", nil
			}
			// One message that still cannot pass: the retry budget decides.
			failures++
			lastErr = fmt.Sprintf("HTTP 429 (response: %s)", ex)
			wait = max(wait, s.backoff(failures))
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			ex := s.excerpt(rbody)
			s.warn.failed(code, ex, len(refs))
			return 0, "", fmt.Errorf("%w: HTTP %d from %s (response: %s): the write key is not valid for this endpoint "+
				"(check write_key, and that the workspace's region matches endpoint: EU workspaces use %s)",
				ErrConfig, code, redact.URL(s.opts.Endpoint), ex, EUEndpoint)
		case code == http.StatusNotFound:
			ex := s.excerpt(rbody)
			s.warn.failed(code, ex, len(refs))
			return 0, "", fmt.Errorf("%w: HTTP 404 from %s (response: %s): no Segment batch API there, or the source is disabled "+
				"(check endpoint and path, and that the source is enabled)", ErrConfig, s.shown, ex)
		case code/100 == 3:
			s.warn.failed(code, s.excerpt(rbody), len(refs))
			return 0, "", fmt.Errorf("%w: HTTP %d from %s: it redirects to %q; set endpoint to where it points "+
				"(a redirect is not followed: it would resend the batch as a GET, or to an unchecked host)",
				ErrConfig, code, s.shown, redact.URL(hdr.Get("Location")))
		case code == http.StatusRequestTimeout || (code >= 500 && code != 501 && code != 505):
			ex := s.excerpt(rbody)
			s.warn.failed(code, ex, len(refs))
			lastErr = fmt.Sprintf("HTTP %d (response: %s)", code, ex)
			failures++
			wait = s.backoff(failures)
		case code >= 400 && code < 500:
			s.warn.failed(code, s.excerpt(rbody), len(refs))
			return code, s.red.String(string(rbody)), nil
		default:
			ex := s.excerpt(rbody)
			s.warn.failed(code, ex, len(refs))
			return 0, "", fmt.Errorf("segment: unexpected HTTP %d from %s (response: %s)", code, s.shown, ex)
		}
		if failures >= s.opts.MaxAttempts {
			return 0, "", s.givingUp(fmt.Errorf("segment: giving up on a request of %d messages after %d attempts: %s",
				len(refs), failures, lastErr))
		}
		s.st.retries.Add(1)
		s.log.Debug("segment: retrying a request", "status", code, "error", lastErr, "messages", len(refs),
			"attempt", failures+limited, "wait", wait)
		if err := s.sleep(ctx, wait); err != nil {
			return 0, "", err
		}
	}
}

// sleep waits d, or until ctx ends (the run's stopped error then).
func (s *Sink) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return s.stopped(ctx.Err())
	}
}

// logCut says the sink slowed down: the first time as a warning, later
// at debug (the progress line and the metrics show the rate).
func (s *Sink) logCut(evps float64, size int) {
	if s.cutLogged.CompareAndSwap(false, true) {
		s.log.Warn("segment: HTTP 429s continue: sending less often and in smaller requests; "+
			"the rate rises again as requests pass", "events_per_s", int64(evps+0.5), "max_messages", size)
		return
	}
	s.log.Debug("segment: HTTP 429s continue: rate lowered", "events_per_s", int64(evps+0.5), "max_messages", size)
}

// givingUp is the error of a request the sink gives up on: permanent,
// unless the run is stopping, when its rows are abandoned to be sent on
// resume.
func (s *Sink) givingUp(err error) error {
	if s.stopping.Err() != nil {
		return fmt.Errorf("%w: %w", pipeline.ErrStopped, err)
	}
	return err
}

func (s *Sink) stopped(err error) error {
	if f := s.failure(); f != nil {
		return f
	}
	return s.givingUp(err)
}

// backoff is exponential with full jitter, capped.
func (s *Sink) backoff(failures int) time.Duration {
	d := s.opts.InitialBackoff << min(failures-1, 30)
	if d <= 0 || d > s.opts.MaxBackoff {
		d = s.opts.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// told reports whether a 429 says when to come back.
func told(h http.Header) bool { return h.Get("Retry-After") != "" || h.Get("X-RateLimit-Reset") != "" }

// retryAfter reads Retry-After (seconds or an HTTP date) or
// X-RateLimit-Reset (seconds to wait, or a unix time), capped.
func (s *Sink) retryAfter(h http.Header) time.Duration {
	d, ok := time.Duration(0), false
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
			d, ok = time.Duration(n*float64(time.Second)), true
		} else if t, err := http.ParseTime(v); err == nil {
			d, ok = time.Until(t), true
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); !ok && v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			switch {
			case n > 1e12: // unix milliseconds
				d, ok = time.Until(time.UnixMilli(n)), true
			case n > 1e9: // unix seconds
				d, ok = time.Until(time.Unix(n, 0)), true
			default:
				d, ok = time.Duration(n)*time.Second, true
			}
		}
	}
	if !ok {
		d = s.opts.DefaultRetryAfter
	}
	return max(0, min(d, s.opts.MaxRetryAfter))
}

// body builds the request body with a fresh sentAt, on every message and
// on the batch (Segment derives the event time from sentAt, so a retry
// must not reuse an old one; rudder-server keeps only the messages'),
// gzipped when configured. Each message's sentAt is its placeholder,
// overwritten in place: nothing is encoded again.
func (s *Sink) body(w *worker, r *request, refs []msgRef, whole bool) []byte {
	var sb [40]byte // room for the formatting's scratch digits: no allocation
	stamp := message.AppendStamp(sb[:0], time.Now())
	st := [len(message.SentAtStamp)]byte(stamp) // copied per message as a value: no call
	var raw []byte
	if whole {
		// r is owned by this sender now: stamp and write the tail in place.
		buf := r.buf
		for i := range refs {
			if o := refs[i].sent; o >= 0 {
				*(*[len(message.SentAtStamp)]byte)(buf[o:]) = st
			}
		}
		end := int(refs[len(refs)-1].end)
		raw = appendTail(buf[:end], stamp)
		r.buf = raw
	} else {
		raw = append(w.scratch[:0], bodyPrefix...)
		for i, ref := range refs {
			if i > 0 {
				raw = append(raw, ',')
			}
			at := len(raw)
			raw = append(raw, r.buf[ref.off:ref.end]...)
			if ref.sent >= 0 {
				*(*[len(message.SentAtStamp)]byte)(raw[at+int(ref.sent-ref.off):]) = st
			}
		}
		raw = appendTail(raw, stamp)
		w.scratch = raw
	}
	if w.zw == nil {
		return raw
	}
	w.zbuf.Reset()
	w.zw.Reset(&w.zbuf)
	w.zw.Write(raw) // writes to a bytes.Buffer cannot fail
	w.zw.Close()
	return w.zbuf.Bytes()
}

func appendTail(b, stamp []byte) []byte {
	b = append(b, `],"sentAt":"`...)
	b = append(b, stamp...)
	return append(b, `"}`...)
}

// post makes one attempt. It always reads the response to its end and
// closes it, so the connection is reused.
func (s *Sink) post(ctx context.Context, w *worker, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	if w.zw != nil {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, errors.Unwrap(err) // drop the *url.Error wrapper: it repeats the URL
	}
	defer resp.Body.Close()
	w.rbody = w.rbody[:0]
	buf := bytes.NewBuffer(w.rbody)
	_, err = io.Copy(buf, io.LimitReader(resp.Body, 64<<10))
	io.Copy(io.Discard, resp.Body)
	w.rbody = buf.Bytes()
	if err != nil && resp.StatusCode/100 != 2 {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, w.rbody, nil
}

// stats are the sink's counters, read by Stats.
type stats struct {
	batches, batchesAcked, batchesFailed         atomic.Int64
	delivered, deadLettered, rejectedEncode      atomic.Int64
	rejectedHTTP, requests, retries, rateLimited atomic.Int64
	splits, bytes, throttleSplits                atomic.Int64
	byStatus                                     [600]atomic.Int64
}

func (st *stats) status(code int) {
	if code >= 0 && code < len(st.byStatus) {
		st.byStatus[code].Add(1)
	}
}

// Stats returns the sink's counters for the run summary: events delivered
// (2xx), dead-lettered (rejected by the encoder or by Segment), requests
// made and by HTTP status ("status_0" are network errors), retries,
// 429s, 400 splits, requests halved while 429s continued, times the rate
// was lowered, bytes sent (as on the wire), batches acked or failed. Two
// are gauges, levels rather than counts (their names say so: _per_s,
// _now): rate_limit_events_per_s, the events/s limit in force (configured
// or adapted; absent when there is none), and request_max_events_now, the
// messages a request may carry now (only while 429s keep it below
// batch.max_events).
func (s *Sink) Stats() map[string]int64 {
	st := &s.st
	m := map[string]int64{
		"events_sent":     st.delivered.Load(),
		"dead_lettered":   st.deadLettered.Load(),
		"rejected_encode": st.rejectedEncode.Load(),
		"rejected_http":   st.rejectedHTTP.Load(),
		"requests":        st.requests.Load(),
		"retries":         st.retries.Load(),
		"rate_limited":    st.rateLimited.Load(),
		"splits":          st.splits.Load(),
		"throttle_splits": st.throttleSplits.Load(),
		"bytes_sent":      st.bytes.Load(),
		"batches":         st.batches.Load(),
		"batches_acked":   st.batchesAcked.Load(),
		"batches_failed":  st.batchesFailed.Load(),
	}
	s.thr.stats(m)
	for code := range st.byStatus {
		if n := st.byStatus[code].Load(); n > 0 {
			m["status_"+strconv.Itoa(code)] = n
		}
	}
	return m
}
