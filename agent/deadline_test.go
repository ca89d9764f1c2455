package agent

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/wire"
)

func ok(ms ...int) []store.Restore {
	var rs []store.Restore
	for _, m := range ms {
		rs = append(rs, store.Restore{Duration: time.Duration(m) * time.Millisecond})
	}
	return rs
}

func timedOut(ms int) store.Restore {
	return store.Restore{Duration: time.Duration(ms) * time.Millisecond, TimedOut: true}
}

func TestEstimate(t *testing.T) {
	for _, c := range []struct {
		name    string
		rs      []store.Restore
		want    time.Duration
		atLeast bool
		ok      bool
	}{
		{"NoHistory", nil, 0, false, false},
		{"OddCount", ok(300, 100, 200), 200 * time.Millisecond, false, true},
		{"EvenCount", ok(100, 400, 200, 300), 250 * time.Millisecond, false, true},
		{"AlwaysTimesOut", []store.Restore{timedOut(10000), timedOut(10000), timedOut(10000)}, 10 * time.Second, true, true},
		{"ATimeoutAboveTheMedianChangesNothing", append(ok(100, 200), timedOut(10000)), 200 * time.Millisecond, false, true},
		{"ATimeoutAtTheMedianMakesItALowerBound", append(ok(100, 20000), timedOut(10000)), 10 * time.Second, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, al, k := estimate(c.rs)
			if d != c.want || al != c.atLeast || k != c.ok {
				t.Fatalf("estimate = %s, at least %v, ok %v; want %s, %v, %v", d, al, k, c.want, c.atLeast, c.ok)
			}
		})
	}
}

func TestChooseDeadline(t *testing.T) {
	const lo, hi, fallback = time.Second, 2 * time.Minute, 10 * time.Second
	twenty := make([]int, 20)
	for i := range twenty {
		twenty[i] = (i + 1) * 1000 // 1 s … 20 s
	}
	for _, c := range []struct {
		name string
		rs   []store.Restore
		want wire.AutoDeadline
	}{
		{"NoHistoryIsTheDefault", nil,
			wire.AutoDeadline{DeadlineMS: 10000, TooFew: true}},
		{"TwoSamplesAreTooFew", ok(100, 200),
			wire.AutoDeadline{DeadlineMS: 10000, Samples: 2, TooFew: true}},
		{"OnePointFiveTimesTheP95", ok(2000, 4000, 3000),
			wire.AutoDeadline{DeadlineMS: 6000, Samples: 3, P95MS: 4000}},
		{"P95IsTheNearestRank", ok(twenty...),
			wire.AutoDeadline{DeadlineMS: 28500, Samples: 20, P95MS: 19000}},
		{"FastComponentsGetTheMinimum", ok(10, 20, 30),
			wire.AutoDeadline{DeadlineMS: 1000, Samples: 3, P95MS: 30}},
		{"SlowOnesTheMaximum", ok(100000, 90000, 95000),
			wire.AutoDeadline{DeadlineMS: 120000, Samples: 3, P95MS: 100000}},
		{"TimeoutsCountAsAtLeastTheirDeadlineSoItGrows", []store.Restore{timedOut(10000), timedOut(10000), timedOut(10000)},
			wire.AutoDeadline{DeadlineMS: 15000, Samples: 3, TimedOut: 3, P95MS: 10000}},
		{"ATimeoutAmongFastRestoresLiftsTheP95", append(ok(1000, 1000, 1000), timedOut(15000)),
			wire.AutoDeadline{DeadlineMS: 22500, Samples: 4, TimedOut: 1, P95MS: 15000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.want.MinMS, c.want.MaxMS = lo.Milliseconds(), hi.Milliseconds()
			if got := chooseDeadline(c.rs, lo, hi, fallback); got != c.want {
				t.Fatalf("chooseDeadline = %+v, want %+v", got, c.want)
			}
		})
	}
}

// A component that always takes 14 s against the 10 s default: with
// `deadline: auto` it times out on the first wakes, which count as "at
// least 10 s", and from the third on it is given 15 s and is ready in time.
// The dry run estimates it from those timed-out restores, not at the 1 s
// default.
func TestAutoDeadlineLearnsFromTimeouts(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		slow := &probe{latency: 14 * time.Second}
		a, stop := testAgent(t, dir, []spec{{name: "slow", p: slow, auto: true}})
		defer stop()
		for i := range 3 {
			restoreNow(t, a, "manual", true)
			if s := a.svc(t, "slow"); s.State != "degraded" || s.DeadlineMS != 10000 || s.DeadlineAuto == nil || s.DeadlineAuto.Samples != i {
				t.Fatalf("wake %d: %s, deadline %d ms, auto %+v; want degraded at the 10 s default from %d samples", i+1, s.State, s.DeadlineMS, s.DeadlineAuto, i)
			}
			time.Sleep(10 * time.Second)
		}
		p, err := a.WakePlan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ps := p.Components[0]
		if ps.EstimatedMS != 10000 || !ps.EstimateAtLeast || ps.Samples != 3 {
			t.Fatalf("dry run: estimate %d ms, at least %v, from %d; want at least 10 s from 3", ps.EstimatedMS, ps.EstimateAtLeast, ps.Samples)
		}
		if ps.DeadlineMS != 15000 || ps.DeadlineAuto == nil || ps.DeadlineAuto.Samples != 3 || ps.DeadlineAuto.TimedOut != 3 {
			t.Fatalf("dry run: deadline %d ms, auto %+v; want 15 s learned from 3 timed-out restores", ps.DeadlineMS, ps.DeadlineAuto)
		}
		restoreNow(t, a, "manual", true)
		s := a.svc(t, "slow")
		if s.State != "ready" || s.DeadlineMS != 15000 {
			t.Fatalf("fourth wake: %s with deadline %d ms, want ready within the learned 15 s", s.State, s.DeadlineMS)
		}
		if w := a.lastWake; w.Restore.Ready != 1 || w.Restore.TimedOut != 0 {
			t.Fatalf("fourth wake's summary %+v", w.Restore)
		}
	})
}
