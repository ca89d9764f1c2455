// Package backoff owns rouse's one retry backoff, used by every loop that
// tries again: the agent's heartbeat and store reopen, exec restarts, the
// network trackers, the logind reconnect and lock retry, the tray's redial
// and the client's event stream. The delay before attempt n (0-based) is
// capped exponential with full jitter: uniform in [0, min(Max, Initial·2ⁿ)].
// Full jitter spreads components that failed together instead of keeping
// them in step (a ±factor around the interval, as cenkalti/backoff has it,
// does not); see "Exponential Backoff And Jitter" (AWS Architecture Blog).
//
// Equal jitter — uniform in [ceiling/2, ceiling] — is offered for the
// reconnect loops that reset on every connect (websocket, roon): against a
// server that accepts and then drops each connection, full jitter would
// retry at once again and again.
//
// The random source is injectable so tests can check the bounds exactly;
// time is the runtime's, so tests run loops under testing/synctest.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a capped exponential backoff. A zero Rand uses math/rand/v2.
type Policy struct {
	Initial time.Duration // the ceiling of the first delay
	Max     time.Duration // no ceiling exceeds this; 0: no cap
	// Rand returns a uniform value in [0, n); nil means rand.Int64N.
	Rand func(n int64) int64
}

// Ceiling is the largest delay for attempt (0-based):
// min(Max, Initial·2^attempt).
func (p Policy) Ceiling(attempt int) time.Duration {
	if p.Initial <= 0 {
		return 0
	}
	c := p.Initial
	for i := 0; i < attempt; i++ {
		if p.Max > 0 && c >= p.Max {
			break
		}
		if c > time.Duration(1<<62)/2 {
			break // overflow guard
		}
		c *= 2
	}
	if p.Max > 0 && c > p.Max {
		c = p.Max
	}
	return c
}

// Full is the full-jitter delay for attempt: uniform in [0, Ceiling(attempt)].
func (p Policy) Full(attempt int) time.Duration {
	c := p.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	return time.Duration(p.rand(int64(c) + 1))
}

// Equal is the equal-jitter delay for attempt: uniform in
// [Ceiling/2, Ceiling]. It never retries at once, which suits reconnect
// loops against a server that accepts and then drops every connection.
func (p Policy) Equal(attempt int) time.Duration {
	c := p.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	half := c / 2
	return half + time.Duration(p.rand(int64(c-half)+1))
}

func (p Policy) rand(n int64) int64 {
	if p.Rand != nil {
		return p.Rand(n)
	}
	return rand.Int64N(n)
}

// Retry is one retry loop's place in a Policy: Next gives the full-jitter
// delay before the next attempt and counts it; Reset starts over (after a
// success, or a healthy run). The zero Retry waits 0. Not safe for
// concurrent use: it belongs to the loop that retries.
type Retry struct {
	Policy
	n int // attempts counted since the last Reset
}

// Next returns the delay before the next attempt and counts it.
func (r *Retry) Next() time.Duration {
	d := r.Full(r.n)
	if r.Ceiling(r.n) < r.Max || r.Max <= 0 {
		r.n++ // past the cap the count no longer matters
	}
	return d
}

// Reset makes the next delay the first one again.
func (r *Retry) Reset() { r.n = 0 }

// Sleep waits d or until ctx is done, whichever is first, and returns
// ctx.Err() in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
