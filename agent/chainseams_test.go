package agent

import (
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
