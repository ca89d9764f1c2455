package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/platform/power"
	"github.com/rouse-dev/rouse/trackers"
)

// checkLog records when a probe's check ran and answers from a switch.
type checkLog struct {
	mu   sync.Mutex
	at   []time.Time
	fail atomic.Bool
	hang atomic.Bool // block until the check's ctx ends
}

func (c *checkLog) check(ctx context.Context) error {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	if c.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if c.fail.Load() {
		return errors.New("connection refused (the probe's output)")
	}
	return nil
}

func (c *checkLog) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

func (c *checkLog) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}

func health(interval time.Duration, retries int, startPeriod time.Duration) *config.Health {
	h := config.DefaultHealth()
	h.Interval, h.Retries, h.StartPeriod = interval, retries, startPeriod
	return &h
}

func TestHealth(t *testing.T) {
	t.Run("RetriesFailuresInARowMakeItUnhealthyThenItIsRestartedAndDependentsFollow", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			cl := &checkLog{}
			db := &probe{latency: 10 * time.Millisecond, check: cl.check}
			web := &probe{latency: 10 * time.Millisecond}
			a, stop := testAgent(t, dir, []spec{
				{name: "db", p: db, health: health(10*time.Second, 3, 0)},
				{name: "web", p: web, requires: []string{"db"}},
			})
			defer stop()
			// Bounded in fake time: an event that never comes ends the
			// stream (and fails below) instead of running the checks'
			// clock until the test binary's timeout.
			sctx, cancel := context.WithTimeout(t.Context(), time.Hour)
			defer cancel()
			events := a.Subscribe(sctx, 0)
			restoreNow(t, a, "boot", false)
			time.Sleep(time.Minute)
			synctest.Wait()
			if n := cl.count(); n < 5 || db.runs.Load() != 1 {
				t.Fatalf("a healthy db: %d checks in a minute, %d runs; want about 6, 1", n, db.runs.Load())
			}
			// Two failures, then a pass: the count starts again.
			cl.fail.Store(true)
			time.Sleep(20*time.Second + time.Second)
			synctest.Wait()
			if s := a.svc(t, "db"); s.State != "ready" || s.Health == nil || s.Health.Failures != 2 || s.Health.LastResult != "failed" {
				t.Fatalf("after two failures: state %s, health %+v; want ready, 2 failures", s.State, s.Health)
			}
			cl.fail.Store(false)
			time.Sleep(11 * time.Second)
			synctest.Wait()
			if s := a.svc(t, "db"); s.State != "ready" || s.Health.Failures != 0 || s.Health.LastResult != "ok" {
				t.Fatalf("after a pass: state %s, health %+v", s.State, s.Health)
			}
			// Three in a row: unhealthy, restarted, ready again; web waits
			// meanwhile and is back after.
			cl.fail.Store(true)
			failFrom := time.Now()
			var unhealthyAt time.Time
			var webWaited, webBack bool
			for ev := range events {
				if ev.State == nil {
					continue
				}
				if ev.State.Name == "db" && ev.State.State == "unhealthy" && unhealthyAt.IsZero() {
					unhealthyAt = ev.At
					if !strings.Contains(ev.State.Error, "health check failed 3 times in a row") || !strings.Contains(ev.State.Error, "the probe's output") {
						t.Fatalf("the unhealthy event's error %q lacks the check's output", ev.State.Error)
					}
					cl.fail.Store(false) // the restarted one is fine
				}
				if ev.State.Name == "web" && ev.State.State == "waiting" {
					webWaited = true
				}
				if ev.State.Name == "web" && ev.State.State == "ready" && webWaited {
					webBack = true
					break
				}
			}
			if !webBack {
				t.Fatalf("within the hour: db unhealthy at %v, web waited %v, never ready again", unhealthyAt, webWaited)
			}
			// Fake time: the third failure comes at most 3 × the interval
			// (each moved by at most 1/40 onto the shared grid,
			// trackers.PollDelay) after the first, and not before the third
			// failing check: two intervals at least.
			if d := unhealthyAt.Sub(failFrom); d > 3*(10*time.Second+250*time.Millisecond) || d < 2*(10*time.Second-250*time.Millisecond) {
				t.Fatalf("unhealthy %s after the check began to fail, want within (2, 3] × the interval", d)
			}
			synctest.Wait()
			s := a.svc(t, "db")
			if db.runs.Load() != 2 || s.State != "ready" || s.Restarts != 1 || s.Health.Restarts != 1 {
				t.Fatalf("after the restart: runs %d, state %s, restarts %d, health %+v; want 2, ready, 1, 1 restart", db.runs.Load(), s.State, s.Restarts, s.Health)
			}
			if web.runs.Load() != 1 {
				t.Fatalf("web ran %d times; without restart: true it resumes, not restarts", web.runs.Load())
			}
		})
	})
	t.Run("AHungCheckTimesOutAndCounts", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			cl := &checkLog{}
			p := &probe{latency: 10 * time.Millisecond, check: cl.check}
			a, stop := testAgent(t, dir, []spec{{name: "p", p: p, health: health(time.Second, 2, 0)}})
			defer stop()
			restoreNow(t, a, "boot", false)
			cl.hang.Store(true)
			time.Sleep(time.Second + 2*time.Second + time.Second + 2*time.Second + 500*time.Millisecond)
			synctest.Wait()
			if p.runs.Load() != 2 {
				t.Fatalf("runs %d, want 2: two hung checks make it unhealthy and restarted", p.runs.Load())
			}
			if s := a.svc(t, "p"); !strings.Contains(s.Health.LastOutput, "timed out after 2s") {
				t.Fatalf("last output %q", s.Health.LastOutput)
			}
		})
	})
	t.Run("StartPeriodDelaysTheFirstCheck", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			cl := &checkLog{}
			cl.fail.Store(true)
			p := &probe{latency: 10 * time.Millisecond, check: cl.check}
			a, stop := testAgent(t, dir, []spec{{name: "p", p: p, health: health(time.Second, 1, 30*time.Second)}})
			defer stop()
			restoreNow(t, a, "boot", false)
			ready := time.Now()
			time.Sleep(30 * time.Second)
			synctest.Wait()
			if n := cl.count(); n != 0 {
				t.Fatalf("%d checks within the start period", n)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			ts := cl.times()
			if len(ts) == 0 {
				t.Fatal("no check after the start period")
			}
			if d := ts[0].Sub(ready); d < 31*time.Second-25*time.Millisecond || d > 31*time.Second+100*time.Millisecond {
				t.Fatalf("first check %s after ready, want start period + interval (31s, ± 1/40 of the interval)", d)
			}
			if p.runs.Load() != 2 {
				t.Fatalf("runs %d: retries 1 restarts it after one failure", p.runs.Load())
			}
		})
	})
	t.Run("NoCheckWhileAsleep", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			cl := &checkLog{}
			p := &probe{latency: 10 * time.Millisecond, check: cl.check, resumer: true}
			a, stop := testAgent(t, dir, []spec{{name: "p", p: p, health: health(time.Second, 1, 0)}})
			defer stop()
			restoreNow(t, a, "boot", false)
			time.Sleep(5 * time.Second)
			synctest.Wait()
			before := cl.count()
			if before < 4 {
				t.Fatalf("%d checks in 5s at a 1s interval", before)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			a.BeforeSleep(ctx, power.Event{Kind: power.Sleep, At: time.Now()})
			cancel()
			// Asleep a long while, the Run going on (a resumer): no check,
			// and one failing meanwhile would not count.
			cl.fail.Store(true)
			time.Sleep(time.Hour)
			synctest.Wait()
			if n := cl.count(); n != before {
				t.Fatalf("%d checks while asleep", n-before)
			}
			if s := a.stateOf("p"); s != trackers.StatePaused {
				t.Fatalf("asleep: %s, want paused", s)
			}
			cl.fail.Store(false)
			restoreNow(t, a, "logind", true)
			time.Sleep(3 * time.Second)
			synctest.Wait()
			if n := cl.count(); n <= before {
				t.Fatal("no check after the wake")
			}
			if p.runs.Load() != 1 {
				t.Fatalf("runs %d, want 1", p.runs.Load())
			}
		})
	})
	t.Run("AStoppedComponentIsNotChecked", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			cl := &checkLog{}
			p := &probe{latency: 10 * time.Millisecond, check: cl.check}
			a, stop := testAgent(t, dir, []spec{{name: "p", p: p, health: health(time.Second, 1, 0)}})
			defer stop()
			restoreNow(t, a, "boot", false)
			if _, err := a.Stop(context.Background(), "p"); err != nil {
				t.Fatal(err)
			}
			n := cl.count()
			time.Sleep(time.Minute)
			synctest.Wait()
			if m := cl.count(); m != n {
				t.Fatalf("%d checks of a stopped component", m-n)
			}
		})
	})
}
