package agent

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// A demand component with `deadline: auto` learns its deadline from its
// chain's starts, as a component that runs all the time learns from wakes:
// db always takes 14 s against the 10 s default, so the first three
// demands miss its deadline (and roll back); they count as "at least 10
// s", the fourth start gives db 15 s, and the chain's view (what the entry
// point holds a client for) says db's 15 s + blog's 10 s at once.
func TestChainLearnsAutoDeadlines(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		db, blog := &probe{latency: 14 * time.Second}, &probe{latency: time.Millisecond}
		a, stop := testAgent(t, dir, []spec{
			{name: "db", p: db, auto: true},
			{name: "blog", p: blog, requires: []string{"db"}, onDemand: onDemand("rollback", 0)},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		for i := range 3 {
			a.Demand("blog")
			if v := waitChain(t, a, "blog", wire.ChainStarting); v.DeadlineMS != 20000 {
				t.Fatalf("start %d: chain deadline %d ms, want db's 10 s default + blog's 10 s", i+1, v.DeadlineMS)
			}
			waitChain(t, a, "blog", wire.ChainFailed)
			synctest.Wait()
		}
		a.Demand("blog")
		if v := waitChain(t, a, "blog", wire.ChainStarting); v.DeadlineMS != 25000 {
			t.Fatalf("fourth start: chain deadline %d ms, want db's learned 15 s + blog's 10 s", v.DeadlineMS)
		}
		waitChain(t, a, "blog", wire.ChainReady)
		if s := a.svc(t, "db"); s.DeadlineMS != 15000 || s.DeadlineAuto == nil || s.DeadlineAuto.TimedOut != 3 {
			t.Fatalf("db: deadline %d ms, auto %+v; want 15 s learned from 3 timed-out starts", s.DeadlineMS, s.DeadlineAuto)
		}
	})
}

// What a failed demand start leaves, by on_failure, with an optional
// sidecar still starting when a required dependency fails: the chain's
// verdict comes at once under both (an optional member never holds it up);
// rollback stops everything this start started, the sidecar included;
// keep leaves every member going — the sidecar finishes its start under
// its own deadline — until the idle stop (or rouse stop), which ends
// them all.
func TestAFailedStartAndItsSidecar(t *testing.T) {
	for _, c := range []struct {
		onFailure string
		never     bool   // the sidecar is never ready, else it takes 5 s
		after     string // the members an hour after the failure
	}{
		{"rollback", false, "db=idle sidecar=idle blog=idle"},
		{"keep", false, "db=failed sidecar=ready blog=waiting"},
		// Never ready: its deadline (10 s) still applies after the
		// failure, then the heartbeat's retries.
		{"keep", true, "db=failed sidecar=degraded blog=waiting"},
	} {
		t.Run(c.onFailure+"/"+c.after, func(t *testing.T) {
			dir := t.TempDir()
			synctest.Test(t, func(t *testing.T) {
				db, blog, other := &probe{latency: time.Millisecond, failN: 1 << 20}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}
				side := &probe{latency: 5 * time.Second}
				if c.never {
					side = &probe{never: true, ready: make(chan struct{})} // made in the bubble
				}
				a, stop := bootedBlog(t, dir, db, side, blog, other, c.onFailure)
				defer stop()
				t0 := time.Now()
				a.Demand("blog")
				v := waitChain(t, a, "blog", wire.ChainFailed)
				if got := time.Since(t0); got != 0 {
					t.Fatalf("failed after %v: the optional sidecar held the verdict up", got)
				}
				if v.Reason != "db: failed: refused" {
					t.Fatalf("reason %q", v.Reason)
				}
				time.Sleep(time.Hour)
				synctest.Wait()
				if got := states(a, "db", "sidecar", "blog"); got != c.after {
					t.Fatalf("an hour after the failure: %s, want %s", got, c.after)
				}
				a.IdleStop("blog")
				waitChain(t, a, "blog", wire.ChainIdle)
				time.Sleep(time.Hour)
				synctest.Wait()
				if got, want := states(a, "db", "sidecar", "blog"), "db=idle sidecar=idle blog=idle"; got != want {
					t.Fatalf("after the idle stop: %s, want %s", got, want)
				}
			})
		})
	}
}

// An idle stop while a kept sidecar is still starting ends its bring-up:
// it is idle, and its deadline passing later does not mark it degraded.
func TestAnIdleStopEndsAKeptStart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		db, side, blog, other := &probe{latency: time.Millisecond, failN: 1 << 20}, &probe{never: true, ready: make(chan struct{})}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}
		a, stop := bootedBlog(t, dir, db, side, blog, other, "keep")
		defer stop()
		a.Demand("blog")
		waitChain(t, a, "blog", wire.ChainFailed)
		time.Sleep(time.Second)
		if s := a.stateOf("sidecar"); s != "starting" {
			t.Fatalf("sidecar %s, want still starting", s)
		}
		a.IdleStop("blog")
		waitChain(t, a, "blog", wire.ChainIdle)
		time.Sleep(time.Hour)
		synctest.Wait()
		if got, want := states(a, "db", "sidecar", "blog"), "db=idle sidecar=idle blog=idle"; got != want {
			t.Fatalf("%s, want %s", got, want)
		}
	})
}

// A component waiting for the user (it reports waiting itself: "enable the
// extension in Roon") is not slow: the wake's summary counts it under
// waiting_for_user, not timed_out, and stores it so.
func TestWakeSummaryCountsWaitingForTheUserApart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ok := &probe{latency: time.Millisecond}
		roon := &probe{never: true, ready: make(chan struct{}), waitUser: "enable the extension in Roon (Settings > Extensions)"}
		slow := &probe{never: true, ready: make(chan struct{})}
		a, stop := testAgent(t, dir, []spec{{name: "ok", p: ok}, {name: "roon", p: roon}, {name: "slow", p: slow, deadline: time.Second}})
		defer stop()
		restoreNow(t, a, "manual", true)
		want := wire.RestoreSummary{Ready: 1, TimedOut: 1, WaitingForUser: 1}
		got := a.lastWake.Restore
		got.DurationMS, got.ParallelEfficiency = 0, 0
		if got != want {
			t.Fatalf("summary %+v, want %+v", got, want)
		}
		ws, err := a.Wakes(context.Background(), 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r := ws[0].Restore; r.WaitingForUser != 1 || r.TimedOut != 1 {
			t.Fatalf("stored summary %+v", r)
		}
		close(slow.ready)
		close(roon.ready)
	})
}
