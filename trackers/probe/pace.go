package probe

import (
	"time"

	"github.com/rouse-dev/rouse/internal/backoff"
)

// FirstProbe is how soon after a start (or a wake) the first readiness
// check of a cheap kind (tcp, http) runs.
const FirstProbe = 10 * time.Millisecond

// Pace spaces the runs of a readiness check that has not passed yet: the
// first after a short delay, each next one twice the one before, up to
// the component's ready_interval, so a program that comes up quickly is
// seen ready quickly and one that takes long is not polled hard. The
// steps are the ceilings of rouse's one backoff (internal/backoff), with
// no jitter: a probe's time is what its readiness is measured by.
//
// A cheap check (a TCP connect, an HTTP GET) starts at FirstProbe; a
// costly one (a command: a fork and exec each run; a container exec) at
// a quarter of the interval, so it runs at most two more times than at
// the plain interval before it settles on it. The zero Pace is not
// usable; build one with NewPace. Not safe for concurrent use: it
// belongs to the loop that runs the check.
type Pace struct {
	p backoff.Policy
	n int
}

// NewPace paces a check whose steady interval is interval; costly says
// each run is expensive (a process).
func NewPace(interval time.Duration, costly bool) *Pace {
	first := FirstProbe
	if costly {
		first = max(interval/4, FirstProbe)
	}
	return &Pace{p: backoff.Policy{Initial: min(first, interval), Max: interval}}
}

// Next is the delay before the next run, and counts it.
func (p *Pace) Next() time.Duration {
	d := p.p.Ceiling(p.n)
	if d < p.p.Max {
		p.n++
	}
	return d
}

// Reset starts the ramp over (a wake asks for readiness again).
func (p *Pace) Reset() { p.n = 0 }
