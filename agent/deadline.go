package agent

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/wire"
)

// How the wake history is read: the last historyLen restores of a
// component; a learned deadline needs at least minAutoSamples of them.
const (
	historyLen     = 20
	minAutoSamples = 3
	autoFactor     = 1.5
)

// estimate is the dry run's restore time of a component from its past
// restores: their median, where a restore that timed out counts as its
// recorded duration, a lower bound of what it would have taken. atLeast
// says the estimate is only a lower bound: a timed-out sample sits at or
// below the median. ok is false without any sample.
func estimate(rs []store.Restore) (d time.Duration, atLeast, ok bool) {
	if len(rs) == 0 {
		return 0, false, false
	}
	s := slices.Clone(rs)
	slices.SortStableFunc(s, func(a, b store.Restore) int { return cmp.Compare(a.Duration, b.Duration) })
	mid := len(s) / 2
	d = s[mid].Duration
	if len(s)%2 == 0 {
		d = (s[mid-1].Duration + s[mid].Duration) / 2
	}
	for _, r := range s[:mid+1] {
		if r.TimedOut {
			atLeast = true
		}
	}
	return d, atLeast, true
}

// chooseDeadline is `deadline: auto`: 1.5 × the 95th percentile (nearest
// rank) of the restores rs, within [lo, hi]. A restore that timed out
// counts as its recorded duration, so a component that keeps timing out
// gets 1.5 × its last deadline the next time, up to hi. With fewer than
// minAutoSamples restores it is fallback (the default deadline), within
// the same bounds.
func chooseDeadline(rs []store.Restore, lo, hi, fallback time.Duration) wire.AutoDeadline {
	c := wire.AutoDeadline{Samples: len(rs), MinMS: lo.Milliseconds(), MaxMS: hi.Milliseconds()}
	for _, r := range rs {
		if r.TimedOut {
			c.TimedOut++
		}
	}
	d := fallback
	if len(rs) >= minAutoSamples {
		ds := make([]time.Duration, len(rs))
		for i, r := range rs {
			ds[i] = r.Duration
		}
		slices.Sort(ds)
		p95 := ds[int(math.Ceil(0.95*float64(len(ds))))-1]
		c.P95MS = p95.Milliseconds()
		d = time.Duration(float64(p95) * autoFactor)
	} else {
		c.TooFew = true
	}
	d = min(max(d, lo), hi)
	c.DeadlineMS = d.Milliseconds()
	return c
}

// learnDeadlines chooses the deadline of every unit of us with `deadline:
// auto` from its wake history, before a restore or a start. A unit whose
// history cannot be read keeps what it had.
func (a *Agent) learnDeadlines(ctx context.Context, us []*unit) {
	a.mu.Lock()
	lo, hi := a.cfg.Deadlines.AutoMin, a.cfg.Deadlines.AutoMax
	a.mu.Unlock()
	for _, u := range us {
		if !u.autoDeadline {
			continue
		}
		rs, err := a.store.ComponentRestores(ctx, u.name, historyLen)
		if err != nil {
			u.log.Warn("cannot read the wake history; the deadline stays", "err", err)
			continue
		}
		c := chooseDeadline(rs, lo, hi, u.deadline)
		u.mu.Lock()
		prev := u.learned
		u.learned = &c
		u.mu.Unlock()
		if prev == nil || prev.DeadlineMS != c.DeadlineMS {
			u.log.Info("deadline chosen", "deadline", time.Duration(c.DeadlineMS)*time.Millisecond,
				"samples", c.Samples, "timed_out", c.TimedOut, "p95", time.Duration(c.P95MS)*time.Millisecond)
		}
	}
}

// deadlineNow is u's deadline: the learned one with `deadline: auto`.
func (u *unit) deadlineNow() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.learned != nil {
		return time.Duration(u.learned.DeadlineMS) * time.Millisecond
	}
	return u.deadline
}
