// Package retry owns the backoff arithmetic the network trackers share:
// capped exponential ceilings with full or equal jitter, and a sleep that
// honours its context. The random source is injectable so tests can check
// the bounds exactly; time itself is the runtime's, so tests run these under
// testing/synctest.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff. The zero Rand uses math/rand/v2.
type Backoff struct {
	Initial time.Duration // the ceiling of the first delay
	Max     time.Duration // no ceiling exceeds this
	// Rand returns a uniform value in [0, n); nil means rand.Int64N.
	Rand func(n int64) int64
}

// Ceiling is the largest delay for attempt (0-based):
// min(Max, Initial·2^attempt).
func (b Backoff) Ceiling(attempt int) time.Duration {
	if b.Initial <= 0 {
		return 0
	}
	c := b.Initial
	for i := 0; i < attempt; i++ {
		if b.Max > 0 && c >= b.Max {
			break
		}
		if c > time.Duration(1<<62)/2 {
			break // overflow guard
		}
		c *= 2
	}
	if b.Max > 0 && c > b.Max {
		c = b.Max
	}
	return c
}

// Full is the full-jitter delay for attempt: uniform in [0, Ceiling(attempt)].
func (b Backoff) Full(attempt int) time.Duration {
	c := b.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	return time.Duration(b.rand(int64(c) + 1))
}

// Equal is the equal-jitter delay for attempt: uniform in
// [Ceiling/2, Ceiling]. It never retries at once, which suits reconnect
// loops against a server that accepts and then drops every connection.
func (b Backoff) Equal(attempt int) time.Duration {
	c := b.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	half := c / 2
	return half + time.Duration(b.rand(int64(c-half)+1))
}

func (b Backoff) rand(n int64) int64 {
	if b.Rand != nil {
		return b.Rand(n)
	}
	return rand.Int64N(n)
}

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
