package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/platform/power"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// onDemand is a test entry point's options.
func onDemand(onFailure string, idle time.Duration) *config.OnDemand {
	return &config.OnDemand{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Mode: "http", IdleStop: idle, OnFailure: onFailure}
}

// blogChain is the chain: db (required, slow), sidecar
// (optional), blog (on demand), and a component that runs all the time.
func blogChain(db, sidecar, blog, other *probe, onFailure string) []spec {
	return []spec{
		{name: "db", p: db, deadline: 5 * time.Second},
		{name: "sidecar", p: sidecar},
		{name: "blog", p: blog, requires: []string{"db"}, optional: []string{"sidecar"}, onDemand: onDemand(onFailure, time.Minute)},
		{name: "other", p: other},
	}
}

// bootedBlog starts an agent on blogChain and waits for its boot restore.
// The caller defers stop; a failed restore stops the agent here.
func bootedBlog(t *testing.T, dir string, db, sidecar, blog, other *probe, onFailure string) (*Agent, func()) {
	t.Helper()
	a, stop := testAgent(t, dir, blogChain(db, sidecar, blog, other, onFailure))
	booted := false
	defer func() {
		if !booted {
			stop()
		}
	}()
	restoreNow(t, a, "boot", false)
	booted = true
	return a, stop
}

// waitChain waits (fake time) until name's chain is in state, or fails
// after a minute.
func waitChain(t *testing.T, a *Agent, name, state string) wire.Chain {
	t.Helper()
	ch, stop := a.Watch(name)
	defer stop()
	deadline := time.After(time.Minute)
	for {
		if v := a.Chain(name); v.State == state {
			return v
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("chain %s is %+v, want %s", name, a.Chain(name), state)
		}
	}
}

func states(a *Agent, names ...string) string {
	var out []string
	for _, n := range names {
		out = append(out, n+"="+string(a.stateOf(n)))
	}
	return strings.Join(out, " ")
}

func TestOnDemandChains(t *testing.T) {
	t.Run("NotStartedAtBootNorByAWake", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: 2 * time.Second}, &probe{latency: time.Millisecond}, &probe{latency: time.Second}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			restoreNow(t, a, "manual", true)
			if got, want := states(a, "db", "sidecar", "blog", "other"), "db=idle sidecar=idle blog=idle other=ready"; got != want {
				t.Fatalf("%s, want %s", got, want)
			}
			if n := db.runs.Load() + side.runs.Load() + blog.runs.Load(); n != 0 {
				t.Fatalf("%d runs of the on-demand chain before any demand", n)
			}
			if r := a.Ready(context.Background(), true); !r.Ready {
				t.Fatalf("/readyz counts idle components: %v", r.Reasons)
			}
			if v := a.Chain("blog"); v.State != wire.ChainIdle || len(v.Components) != 3 {
				t.Fatalf("chain %+v", v)
			}
		})
	})
	t.Run("ADemandStartsTheChainInOrderAndRecordsIt", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: 2 * time.Second}, &probe{latency: 300 * time.Millisecond}, &probe{latency: time.Second}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			t0 := time.Now()
			a.Demand("blog")
			a.Demand("blog") // a second request while it starts is not a second start
			v := waitChain(t, a, "blog", wire.ChainStarting)
			if v.Trigger != "demand" || v.DeadlineMS != 15000 {
				t.Fatalf("chain %+v: want trigger demand, deadline db's 5s + blog's 10s", v)
			}
			// Its first start: nothing on record, nothing guessed.
			for _, c := range v.Components {
				if c.EstimatedMS != 0 || c.Samples != 0 {
					t.Errorf("%s on the chain's first start: estimated %d ms from %d starts, want no estimate", c.Name, c.EstimatedMS, c.Samples)
				}
			}
			v = waitChain(t, a, "blog", wire.ChainReady)
			if got := time.Since(t0); got != 3*time.Second {
				t.Fatalf("ready after %v, want db's 2s then blog's 1s", got)
			}
			if got := time.Duration(blog.readyAt.Load() - db.readyAt.Load()); got != time.Second {
				t.Fatalf("blog ready %v after db, want 1s: it starts once db is ready", got)
			}
			if got := time.Duration(side.readyAt.Load() - t0.UnixNano()); got != 300*time.Millisecond {
				t.Fatalf("the optional sidecar was ready after %v, want 300ms: in parallel", got)
			}
			want := map[string]int64{"db": 2000, "sidecar": 300, "blog": 3000}
			for _, c := range v.Components {
				if c.ElapsedMS != want[c.Name] || c.State != "ready" {
					t.Errorf("%s: %+v, want ready after %dms", c.Name, c, want[c.Name])
				}
			}
			if db.runs.Load() != 1 || blog.runs.Load() != 1 {
				t.Fatalf("runs db %d blog %d", db.runs.Load(), blog.runs.Load())
			}
			synctest.Wait()
			ws, err := a.Wakes(context.Background(), 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			if ws[0].DetectedBy != "demand" || ws[0].Restore.Ready != 3 || len(ws[0].Components) != 3 {
				t.Fatalf("recorded %+v", ws[0])
			}
			// The components' own times: 2s + 0.3s + 1s in 3s of wall time.
			if e := ws[0].Restore.ParallelEfficiency; e != 1.1 {
				t.Fatalf("parallel efficiency %v, want 1.1", e)
			}
			// Learned: the next view estimates each member from it.
			v = a.Chain("blog")
			for _, c := range v.Components {
				if c.Name == "db" && (c.EstimatedMS != 2000 || c.Samples != 1) {
					t.Fatalf("db estimated %dms from %d starts, want the 2000 it took, from 1", c.EstimatedMS, c.Samples)
				}
			}
			if n := counterValue(a.metrics.startsBy.With("demand")); n != 1 {
				t.Fatalf("demand starts counted %v", n)
			}
		})
	})
	t.Run("IdleStopStopsInReverseAndAWakeLeavesItStopped", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			var order []string
			stopped := func(n string) { mu.Lock(); order = append(order, n); mu.Unlock() }
			db, side, blog, other := &probe{latency: 20 * time.Millisecond, stopped: stopped}, &probe{latency: time.Millisecond, stopped: stopped}, &probe{latency: 10 * time.Millisecond, stopped: stopped}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			a.Demand("blog")
			waitChain(t, a, "blog", wire.ChainReady)
			a.IdleStop("blog")
			v := waitChain(t, a, "blog", wire.ChainIdle)
			synctest.Wait()
			if v.Reason != "idle for 1m0s" {
				t.Fatalf("reason %q", v.Reason)
			}
			// An idle chain shows no progress: the last start's times
			// are history.
			if v.StartedAt != nil || slices.ContainsFunc(v.Components, func(c wire.ChainComponent) bool { return c.ElapsedMS != 0 }) {
				t.Fatalf("idle chain shows times of the last start: %+v", v)
			}
			if got, want := states(a, "db", "sidecar", "blog", "other"), "db=idle sidecar=idle blog=idle other=ready"; got != want {
				t.Fatalf("%s, want %s", got, want)
			}
			mu.Lock()
			got := strings.Join(order, ",")
			mu.Unlock()
			if got != "blog,sidecar,db" {
				t.Fatalf("stopped in order %v, want blog first, db last", got)
			}
			restoreNow(t, a, "logind", true)
			if got, want := states(a, "db", "sidecar", "blog"), "db=idle sidecar=idle blog=idle"; got != want {
				t.Fatalf("after a wake: %s, want %s", got, want)
			}
			// The next demand starts it again.
			a.Demand("blog")
			waitChain(t, a, "blog", wire.ChainReady)
			if db.runs.Load() != 2 || blog.runs.Load() != 2 {
				t.Fatalf("runs db %d blog %d, want 2 each", db.runs.Load(), blog.runs.Load())
			}
			// A start from idle is not a restart.
			for _, n := range []string{"db", "blog"} {
				if r := a.svc(t, n).Restarts; r != 0 {
					t.Fatalf("%s: restarts %d after two demands and no failure, want 0", n, r)
				}
			}
		})
	})
	t.Run("AWakeRestoresAChainThatWasRunning", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: 20 * time.Millisecond}, &probe{latency: time.Millisecond}, &probe{latency: 10 * time.Millisecond}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			a.Demand("blog")
			waitChain(t, a, "blog", wire.ChainReady)
			a.BeforeSleep(context.Background(), power.Event{})
			restoreNow(t, a, "logind", true)
			v := waitChain(t, a, "blog", wire.ChainReady)
			if v.Trigger != "wake" || db.runs.Load() != 2 {
				t.Fatalf("chain %+v, db runs %d: want restored by the wake", v, db.runs.Load())
			}
		})
	})
	t.Run("ASharedDependencyStopsWithTheLastChainThatNeedsIt", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, blog, wiki := &probe{latency: 10 * time.Millisecond}, &probe{latency: 10 * time.Millisecond}, &probe{latency: 10 * time.Millisecond}
			a, stop := testAgent(t, dir, []spec{
				{name: "db", p: db},
				{name: "blog", p: blog, requires: []string{"db"}, onDemand: onDemand("rollback", 0)},
				{name: "wiki", p: wiki, requires: []string{"db"}, onDemand: onDemand("rollback", 0)},
			})
			defer stop()
			restoreNow(t, a, "boot", false)
			a.Demand("blog")
			a.Demand("wiki")
			waitChain(t, a, "blog", wire.ChainReady)
			waitChain(t, a, "wiki", wire.ChainReady)
			a.IdleStop("blog")
			waitChain(t, a, "blog", wire.ChainIdle)
			synctest.Wait()
			if got, want := states(a, "db", "blog", "wiki"), "db=ready blog=idle wiki=ready"; got != want {
				t.Fatalf("%s, want %s: wiki still needs db", got, want)
			}
			a.IdleStop("wiki")
			waitChain(t, a, "wiki", wire.ChainIdle)
			synctest.Wait()
			if got, want := states(a, "db", "blog", "wiki"), "db=idle blog=idle wiki=idle"; got != want {
				t.Fatalf("%s, want %s", got, want)
			}
			if db.runs.Load() != 1 {
				t.Fatalf("db ran %d times, want once for both chains", db.runs.Load())
			}
		})
	})
	t.Run("AFailingRequiredDependencyRollsBack", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: time.Millisecond, failN: 1000}, &probe{latency: 5 * time.Second}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			t0 := time.Now()
			a.Demand("blog")
			v := waitChain(t, a, "blog", wire.ChainFailed)
			if got := time.Since(t0); got != 0 {
				t.Fatalf("failed after %v: the slow sidecar held the rollback up", got)
			}
			if v.Reason != "db: failed: refused" {
				t.Fatalf("reason %q", v.Reason)
			}
			synctest.Wait()
			if got, want := states(a, "db", "sidecar", "blog", "other"), "db=idle sidecar=idle blog=idle other=ready"; got != want {
				t.Fatalf("%s, want %s: nothing of the chain left running", got, want)
			}
			time.Sleep(time.Hour) // and the heartbeat does not retry it
			synctest.Wait()
			if n := db.runs.Load(); n != 1 {
				t.Fatalf("db ran %d times after the rollback", n)
			}
			ws, _ := a.Wakes(context.Background(), 1, 0)
			if ws[0].DetectedBy != "demand" || ws[0].Restore.Failed != 1 || !strings.Contains(ws[0].Components[0].Error, "refused") {
				t.Fatalf("recorded %+v", ws[0])
			}
			if n := counterValue(a.metrics.chainFailures.With("blog", "failed")); n != 1 {
				t.Fatalf("failures counted %v", n)
			}
		})
	})
	t.Run("ADependencyThatMissesItsDeadlineRollsBack", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{never: true, ready: make(chan struct{})}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			t0 := time.Now()
			a.Demand("blog")
			v := waitChain(t, a, "blog", wire.ChainFailed)
			if got := time.Since(t0); got != 5*time.Second {
				t.Fatalf("failed after %v, want db's 5s deadline", got)
			}
			if v.Reason != "db: deadline passed before the component was ready" {
				t.Fatalf("reason %q", v.Reason)
			}
			synctest.Wait()
			if got, want := states(a, "db", "sidecar", "blog"), "db=idle sidecar=idle blog=idle"; got != want {
				t.Fatalf("%s, want %s", got, want)
			}
		})
	})
	t.Run("KeepLeavesThemTrying", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: time.Millisecond, failN: 1}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "keep")
			defer stop()
			a.Demand("blog")
			v := waitChain(t, a, "blog", wire.ChainFailed)
			if v.Reason != "db: failed: refused" {
				t.Fatalf("reason %q", v.Reason)
			}
			if s := a.stateOf("sidecar"); s != trackers.StateReady && s != trackers.StateStarting {
				t.Fatalf("sidecar %s: keep leaves it running", s)
			}
			// The heartbeat retries db, and blog follows: the chain is ready.
			waitChain(t, a, "blog", wire.ChainReady)
			if s, n := a.stateOf("sidecar"), side.runs.Load(); s != trackers.StateReady || n != 1 {
				t.Fatalf("sidecar %s after %d runs, want ready from its one run", s, n)
			}
		})
	})
	t.Run("AManualStartHoldsTheChainAndAStopLetsGo", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: 20 * time.Millisecond}, &probe{latency: time.Millisecond}, &probe{latency: 10 * time.Millisecond}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			got, err := a.Start(context.Background(), "blog")
			if err != nil || got != wire.ActionStarted {
				t.Fatalf("start: %q %v", got, err)
			}
			if v := a.Chain("blog"); v.State != wire.ChainReady || v.Trigger != "manual" {
				t.Fatalf("chain %+v", v)
			}
			if _, err := a.Stop(context.Background(), "blog"); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if got, want := states(a, "db", "sidecar", "blog"), "db=idle sidecar=idle blog=stopped"; got != want {
				t.Fatalf("%s, want %s", got, want)
			}
			a.Demand("blog") // stopped by the user: a demand does not override that
			synctest.Wait()
			if v := a.Chain("blog"); v.State != wire.ChainFailed || !strings.Contains(v.Reason, "stopped by the user") {
				t.Fatalf("chain %+v", v)
			}
			if blog.runs.Load() != 1 {
				t.Fatalf("blog ran %d times", blog.runs.Load())
			}
		})
	})
	t.Run("WatchNotifiesOnEveryChange", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			db, side, blog, other := &probe{latency: 20 * time.Millisecond}, &probe{latency: time.Millisecond}, &probe{latency: 10 * time.Millisecond}, &probe{latency: time.Millisecond}
			a, stop := bootedBlog(t, dir, db, side, blog, other, "rollback")
			defer stop()
			ch, unwatch := a.Watch("blog")
			a.Demand("blog")
			seen := map[string]bool{}
			for v := a.Chain("blog"); v.State != wire.ChainReady; v = a.Chain("blog") {
				<-ch
				for _, c := range v.Components {
					seen[c.Name+"="+c.State] = true
				}
			}
			unwatch()
			if !seen["db=starting"] || !seen["blog=waiting"] {
				t.Fatalf("saw %v", seen)
			}
			for range ch { // closed: the range ends (a bubble blocked here fails the test)
			}
		})
	})
}

func TestStartPlanIsTheChainOnly(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		db, side, blog, other := &probe{latency: 20 * time.Millisecond}, &probe{latency: time.Millisecond}, &probe{latency: 10 * time.Millisecond}, &probe{latency: time.Millisecond}
		a, stop := testAgent(t, dir, blogChain(db, side, blog, other, "rollback"))
		defer stop()
		p, err := a.StartPlan(context.Background(), "blog")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range p.Components {
			names = append(names, s.Name+"<"+strings.Join(s.WaitsFor, "+"))
		}
		if got := strings.Join(names, " "); got != "db< sidecar< blog<db" {
			t.Fatalf("plan %s", got)
		}
		if p.EstimatedTotalMS != 2000 || strings.Join(p.CriticalPath, ",") != "db,blog" {
			t.Fatalf("plan %+v", p)
		}
		wp, err := a.WakePlan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(wp.Components) != 1 || wp.Components[0].Name != "other" || len(wp.NotPlanned) != 3 || wp.NotPlanned[0].Reason != "idle: starts on demand" {
			t.Fatalf("wake plan %+v", wp)
		}
	})
}

// counterValue reads a counter.
func counterValue(c *promreg.Counter) float64 { return float64(c.Get()) }

// TestAChainSaysWhatItWaitsFor: a member waiting for a dependency names
// it, during a start and after; a ready chain whose dependency turns
// unhealthy is waiting for it (not starting: no start is under way), and
// its reason names the dependency, its state and why.
func TestAChainSaysWhatItWaitsFor(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		cl := &checkLog{}
		db := &probe{latency: 2 * time.Second, check: cl.check}
		blog := &probe{latency: 10 * time.Millisecond}
		a, stop := testAgent(t, dir, []spec{
			{name: "db", p: db, health: health(10*time.Second, 2, 0)},
			{name: "blog", p: blog, requires: []string{"db"}, onDemand: onDemand("rollback", time.Hour)},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		member := func(v wire.Chain, n string) wire.ChainComponent {
			for _, c := range v.Components {
				if c.Name == n {
					return c
				}
			}
			t.Fatalf("no %s in %+v", n, v)
			return wire.ChainComponent{}
		}

		a.Demand("blog")
		time.Sleep(time.Second)
		synctest.Wait()
		v := a.Chain("blog")
		if c := member(v, "blog"); v.State != wire.ChainStarting || c.State != "waiting" || c.WaitingFor != "db" || c.Error != "" {
			t.Fatalf("blog while db starts: chain %s, %+v; want starting, blog waiting for db", v.State, c)
		}
		if c := member(v, "db"); c.WaitingFor != "" {
			t.Fatalf("db waits for %q, it has no dependency", c.WaitingFor)
		}
		waitChain(t, a, "blog", wire.ChainReady)

		cl.fail.Store(true)
		changed, unwatch := a.Watch("blog")
		defer unwatch()
		deadline := time.After(time.Minute)
		for a.Chain("blog").State == wire.ChainReady {
			select {
			case <-changed:
			case <-deadline:
				t.Fatal("db's failing checks did not take the chain out of ready within a minute")
			}
		}
		cl.fail.Store(false) // the restarted db passes
		synctest.Wait()
		v = a.Chain("blog")
		if v.State != wire.ChainWaiting {
			t.Fatalf("chain %s (%q) while db restarts after failing its health check, want waiting", v.State, v.Reason)
		}
		dbNow := member(v, "db").State
		if want := "blog is waiting for db, which is " + dbNow + " (health check failed 2 times in a row: "; !strings.HasPrefix(v.Reason, want) {
			t.Fatalf("reason %q, want it to begin %q", v.Reason, want)
		}
		if c := member(v, "blog"); c.State != "waiting" || c.WaitingFor != "db" || c.Error != "" {
			t.Fatalf("blog: %+v, want waiting for db", c)
		}
		if s := a.svc(t, "blog"); s.State != "waiting" || !strings.HasPrefix(s.LastError, "waiting for db: db is ") {
			t.Fatalf("the services view: %s %q", s.State, s.LastError)
		}
		v = waitChain(t, a, "blog", wire.ChainReady)
		if v.Reason != "" || member(v, "blog").WaitingFor != "" {
			t.Fatalf("ready again: %+v", v)
		}
	})
}

// TestAServiceSaysWhichChainsItIsPartOf: each component's service view
// lists the on-demand chains it is a member of (required or optional,
// transitively), and whether it starts with them; a config change that
// takes a component out of a chain takes it out of the list.
func TestAServiceSaysWhichChainsItIsPartOf(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		p := func() *probe { return &probe{latency: time.Millisecond} }
		wiki := onDemand("rollback", time.Hour)
		wiki.Listen = "127.0.0.1:3"
		a, stop := testAgent(t, dir, []spec{
			{name: "disk", p: p()},
			{name: "db", p: p(), requires: []string{"disk"}},
			{name: "shared", p: p()},
			{name: "sidecar", p: p()},
			{name: "blog", p: p(), requires: []string{"db", "shared"}, optional: []string{"sidecar"}, onDemand: onDemand("rollback", time.Hour)},
			{name: "wiki", p: p(), requires: []string{"db"}, onDemand: wiki},
			{name: "other", p: p(), requires: []string{"shared"}},
		})
		defer stop()
		restoreNow(t, a, "boot", false)
		want := map[string]string{
			"disk": "[blog wiki] true", "db": "[blog wiki] true", "shared": "[blog] false", "sidecar": "[blog] true",
			"blog": "[] true", "wiki": "[] true", "other": "[] false",
		}
		for n, w := range want {
			s := a.svc(t, n)
			if got := fmt.Sprint(s.Chains, " ", s.StartsOnDemand); got != w {
				t.Errorf("%s: chains, starts on demand: %s, want %s", n, got, w)
			}
		}
		// shared ran from the boot: the chain's first start shows its
		// measured time; the members that never ran have none.
		for _, c := range a.Chain("blog").Components {
			if c.Name == "shared" && c.Samples != 1 || c.Name == "db" && (c.Samples != 0 || c.EstimatedMS != 0) {
				t.Errorf("on blog's first start, %s: estimated %d ms from %d starts", c.Name, c.EstimatedMS, c.Samples)
			}
		}
		ss := a.Services(context.Background())
		if i := slices.IndexFunc(ss, func(s wire.Service) bool { return s.Name == "db" }); i < 0 || !slices.Equal(ss[i].Chains, []string{"blog", "wiki"}) {
			t.Errorf("the services list: %+v", ss)
		}
		// wiki runs all the time from now on: its chain is gone, and db,
		// which it needs, runs all the time too.
		a.mu.Lock()
		cfg := *a.cfg
		a.mu.Unlock()
		cfg.Trackers = slices.Clone(cfg.Trackers)
		for i := range cfg.Trackers {
			if cfg.Trackers[i].Name == "wiki" {
				cfg.Trackers[i].OnDemand = nil
			}
		}
		if err := a.applyConfig(&cfg); err != nil {
			t.Fatal(err)
		}
		want = map[string]string{"disk": "[blog] false", "db": "[blog] false", "wiki": "[] false", "sidecar": "[blog] true"}
		for n, w := range want {
			s := a.svc(t, n)
			if got := fmt.Sprint(s.Chains, " ", s.StartsOnDemand); got != w {
				t.Errorf("after the edit, %s: chains, starts on demand: %s, want %s", n, got, w)
			}
		}
	})
}
