package segment

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// failLog tells the operator about failed attempts at the default log
// level without a line per retry: the first failure of each kind (an HTTP
// status, or a network error) is a warning with the status and the start
// of the response, then, while failures go on, one line at most every
// `every` counting each kind since the last line. Close says what is left.
type failLog struct {
	log   *slog.Logger
	where string // the batch URL, a secret in it replaced
	every time.Duration

	mu    sync.Mutex
	seen  map[int]bool  // kinds warned about
	since map[int]int64 // failures per kind since the last line
	last  time.Time     // when the last line was logged
	first time.Time     // the first failure counted in since
}

// kindNetwork is the kind of failures without a response (status_0).
const kindNetwork = 0

func newFailLog(log *slog.Logger, where string) *failLog {
	return &failLog{log: log, where: where, every: 10 * time.Second, seen: map[int]bool{}, since: map[int]int64{}}
}

// failed notes one failed attempt of n messages: code is the status (0 for
// a network error), detail the response's start or the error.
func (f *failLog) failed(code int, detail string, n int) {
	now := time.Now()
	f.mu.Lock()
	if !f.seen[code] {
		f.seen[code] = true
		f.last = now
		f.mu.Unlock()
		f.warnFirst(code, detail, n)
		return
	}
	if len(f.since) == 0 {
		f.first = now
	}
	f.since[code]++
	if now.Sub(f.last) < f.every {
		f.mu.Unlock()
		return
	}
	attrs := f.take(now)
	f.mu.Unlock()
	f.log.Warn("segment: failed attempts continue", attrs...)
}

// flush logs the failures counted since the last line, if any.
func (f *failLog) flush() {
	f.mu.Lock()
	if len(f.since) == 0 {
		f.mu.Unlock()
		return
	}
	attrs := f.take(time.Now())
	f.mu.Unlock()
	f.log.Warn("segment: failed attempts since the last warning", attrs...)
}

// take returns the counts since the last line as log attributes and
// starts counting again; f.mu is held.
func (f *failLog) take(now time.Time) []any {
	codes := make([]int, 0, len(f.since))
	for c := range f.since {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	attrs := []any{"url", f.where, "since", now.Sub(f.last).Round(time.Second).String()}
	for _, c := range codes {
		key := "http_" + strconv.Itoa(c)
		if c == kindNetwork {
			key = "network_errors"
		}
		attrs = append(attrs, key, f.since[c])
	}
	clear(f.since)
	f.last = now
	return attrs
}

// warnFirst logs the first failure of a kind, saying what the sink does next.
func (f *failLog) warnFirst(code int, detail string, n int) {
	if code == kindNetwork {
		f.log.Warn("segment: first network error posting to "+f.where, "error", detail, "messages", n,
			"next", "retry with backoff (request.retry)")
		return
	}
	var next string
	switch {
	case code == http.StatusTooManyRequests:
		next = "wait as told (Retry-After, else request.retry.default_retry_after); if 429s continue, send less often and in smaller requests"
	case code == http.StatusRequestTimeout || (code >= 500 && code != 501 && code != 505):
		next = "retry with backoff (request.retry)"
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound || code/100 == 3:
		next = "stop the run: the endpoint, path or write key is wrong"
	case code >= 400 && code < 500:
		next = "split the request to find the message refused; it goes to the dead letters"
	default:
		next = "stop the run"
	}
	f.log.Warn(fmt.Sprintf("segment: first HTTP %d from %s", code, f.where), "status", code, "response", detail,
		"messages", n, "next", next)
}

// excerptBytes is about how much of a response an error or a warning quotes.
const excerptBytes = 200

// excerpt is the start of a response body for an error, a warning or a
// dead letter's reason: secrets redacted first (a cut must not leave half
// a key), on one line, about excerptBytes long.
func (s *Sink) excerpt(body []byte) string {
	t := strings.TrimSpace(s.red.String(string(body)))
	if t == "" {
		return "(empty)"
	}
	cut := len(t) > excerptBytes
	if cut {
		n := excerptBytes
		for n > 0 && !utf8.RuneStart(t[n]) {
			n--
		}
		t = t[:n]
	}
	t = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, t)
	if cut {
		t += "..."
	}
	return t
}
