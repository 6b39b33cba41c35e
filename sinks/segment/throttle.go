package segment

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// throttle adapts sending to a collector's rate limit, AIMD style. While
// a request keeps being answered 429 (the same request again after
// waiting as told), the events/s rate is halved and the request is sent
// in halves; each request delivered raises the rate again, additively,
// and lets requests grow back. A configured rate_limit is the ceiling and
// the starting rate; without one, sending is unlimited until 429s
// continue. A collector whose token bucket holds less than one request
// (rudder-server allowing fewer events a window than 2,500) is met this
// way: requests shrink to what it admits, at the rate it admits.
//
// An isolated 429 (the next attempt passes) changes nothing: it is waited
// out as told. A collector answering 429 now and then, whatever the rate
// (an overloaded one, a test receiver's faults), would otherwise ratchet
// the rate down to nothing. A cut answers the requests in flight when it
// was made, so a request attempted before the last cut does not cut
// again: requests failing together are one signal.
type throttle struct {
	mu      sync.Mutex
	ceiling float64       // request.rate_limit (this shard's share), events/s; 0: none
	rate    float64       // the events/s limit in force; 0: none
	lim     *rate.Limiter // holds rate; nil while there is none
	maxReq  int           // batch.max_events
	reqCap  int           // messages per request allowed now, at most maxReq
	cuts    int64         // times the rate was lowered
	lastCut time.Time     // when
	cutFrom float64       // the rate before the last cut: the scale of the increase

	// Events attempted per 200 ms over the last 2 s: the rate sent at when
	// 429s first continue without a configured limit.
	window [10]int64
	slot   int64
	since  time.Time // the first attempt

	capNow   atomic.Int64 // the messages per request allowed now, for deliver's check
	adapting atomic.Bool  // cut at least once
}

const (
	windowSlot = 200 * time.Millisecond
	minRate    = 1.0 // events/s: a rate is never cut below it
	// increaseSeconds is how long sending at the cut rate takes to raise
	// it back to the rate it was cut from: the additive increase is
	// (that rate)/(2*increaseSeconds) events/s for each second's worth of
	// events delivered.
	increaseSeconds = 5
)

func newThrottle(ceiling float64, maxReq int) *throttle {
	t := &throttle{ceiling: ceiling, rate: ceiling, maxReq: maxReq, reqCap: maxReq}
	if ceiling > 0 {
		// A burst of one full request: the long-run rate is exact, and a
		// request never waits for more tokens than the bucket holds.
		t.lim = rate.NewLimiter(rate.Limit(ceiling), maxReq)
	}
	t.capNow.Store(int64(maxReq))
	return t
}

// maxEvents is the most messages a request may carry now: batch.max_events
// until 429s continue, then what the collector was seen to take, and at
// most one second's worth of the adapted rate (a collector whose bucket
// holds one second's worth answers a larger request 429 forever).
func (t *throttle) maxEvents() int { return int(t.capNow.Load()) }

// wait takes n events from the rate limit in force, waiting for them.
func (t *throttle) wait(ctx context.Context, n int) error {
	t.mu.Lock()
	lim := t.lim
	t.mu.Unlock()
	if lim == nil {
		return nil
	}
	for n > 0 {
		// The burst may shrink meanwhile: take at most a burst at a time.
		k := min(n, max(1, lim.Burst()))
		if err := lim.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // the burst shrank between Burst and WaitN
		}
		n -= k
	}
	return nil
}

// attempt counts n events sent at now, for the first cut's estimate.
func (t *throttle) attempt(n int, now time.Time) {
	if t.ceiling > 0 {
		return // the first cut starts from the configured rate
	}
	t.mu.Lock()
	if t.since.IsZero() {
		t.since = now
	}
	t.advance(now)
	t.window[t.slot%int64(len(t.window))] += int64(n)
	t.mu.Unlock()
}

// advance moves the window to now's slot, clearing the slots passed.
func (t *throttle) advance(now time.Time) {
	slot := now.UnixNano() / int64(windowSlot)
	for i := t.slot + 1; i <= slot && i <= t.slot+int64(len(t.window)); i++ {
		t.window[i%int64(len(t.window))] = 0
	}
	if slot > t.slot {
		t.slot = slot
	}
}

// sentRate is the events/s attempted over the window, or since the first
// attempt when that is shorter (a short run's rate is not diluted over
// 2 s it did not last), counted over one slot at least.
func (t *throttle) sentRate(now time.Time) float64 {
	t.advance(now)
	var n int64
	for _, v := range t.window {
		n += v
	}
	span := time.Duration(len(t.window)) * windowSlot
	if d := now.Sub(t.since); d < span {
		span = max(d, windowSlot)
	}
	return float64(n) / span.Seconds()
}

// limited answers a request of n messages, attempted at started, that is
// answered 429 again: the rate is halved (once for the requests in flight
// at the last cut), and with split the requests get at most half of n. It
// returns whether the rate was cut, and the rate and request size now.
func (t *throttle) limited(n int, started, now time.Time, split bool) (cut bool, evps float64, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if split {
		t.reqCap = max(1, min(t.reqCap, n/2))
	}
	if t.lastCut.IsZero() || started.After(t.lastCut) {
		from := t.rate
		if from == 0 {
			from = max(t.sentRate(now), float64(n))
		}
		t.cutFrom, t.rate = from, max(minRate, from/2)
		t.lastCut, cut = now, true
		t.cuts++
		t.adapting.Store(true)
		// A new bucket, not the old one slowed down: the old one owes
		// the tokens of attempts the collector refused (and did not
		// count), which at the lower rate would stall sending for long.
		t.lim = rate.NewLimiter(rate.Limit(t.rate), 1)
	}
	t.resize()
	return cut, t.rate, int(t.capNow.Load())
}

// delivered raises the rate additively after n events were delivered,
// up to the ceiling, and lets requests grow back.
func (t *throttle) delivered(n int) {
	if !t.adapting.Load() {
		return // never cut: nothing to raise
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Each second's worth of events delivered at the current rate raises
	// it by step: back to the rate it was cut from in increaseSeconds.
	step := max(minRate, t.cutFrom/(2*increaseSeconds))
	t.rate += step * float64(n) / t.rate
	if t.ceiling > 0 && t.rate > t.ceiling {
		t.rate = t.ceiling
	}
	t.lim.SetLimit(rate.Limit(t.rate))
	if t.reqCap < t.maxReq {
		t.reqCap = min(t.maxReq, t.reqCap+max(1, t.reqCap/8))
	}
	t.resize()
}

// resize sets the request size allowed now, and the limiter's burst to
// one such request.
func (t *throttle) resize() {
	c := t.reqCap
	if t.cuts > 0 && t.rate > 0 && (t.ceiling == 0 || t.rate < t.ceiling) {
		c = min(c, max(1, int(t.rate))) // back at the ceiling, as configured
	}
	t.capNow.Store(int64(c))
	if t.lim != nil {
		t.lim.SetBurst(c)
	}
}

// stats adds the throttle's gauges and counter to m: the request size only
// while it is below batch.max_events.
func (t *throttle) stats(m map[string]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m["rate_limit_cuts"] = t.cuts
	if t.rate > 0 {
		m["rate_limit_events_per_s"] = int64(t.rate + 0.5)
	}
	if c := t.capNow.Load(); t.cuts > 0 && c < int64(t.maxReq) {
		m["request_max_events_now"] = c
	}
}
