package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/trackers"
	checks "github.com/rouse-dev/rouse/trackers/probe"
	"github.com/rouse-dev/rouse/wire"
)

// Health checks (a tracker's health: entry). Each Run of a component with
// one has a health loop beside it, started and waited for by the Run's
// goroutine (launch), so it never outlives the Run. The loop waits until
// the component is ready, then start_period, then checks it every
// interval (moved onto the machine's shared grid, trackers.PollDelay), each check under
// timeout. A success clears the failure count; retries failures in a row
// make the component unhealthy — not ready, so its dependents wait
// (follow.go) — with the failing check's output as its error (stored and
// streamed with the state change), and restart it: in place when the
// component is a trackers.Restarter (a container: docker restart), else
// by ending its Run and starting a new one (an exec child's process group
// goes with its Run). Whenever the component is not ready (starting,
// waiting for a dependency, paused for sleep) no check runs and the count
// starts again; a check that was running when the machine went to sleep
// or the component left ready does not count. Nothing runs while the
// machine sleeps: the loop sleeps on the unit's state channel.

// maxHealthOutput bounds the check output kept and recorded.
const maxHealthOutput = 1024

// healthSetup is what a unit needs to run its health check.
type healthSetup struct {
	cfg   config.Health
	check checks.Func
	what  string // the check, for the API: "tcp 127.0.0.1:9330", "its readiness check"
}

// newHealth builds t's health check for comp; nil when it has none.
func newHealth(t *config.Tracker, comp trackers.Component) (*healthSetup, error) {
	if t.Health == nil {
		return nil, nil
	}
	h := &healthSetup{cfg: *t.Health}
	s := t.Health.Check
	switch {
	case s.Count() > 0:
		// Its HTTP client keeps no connection between checks: nothing to close.
		h.check, _ = checks.New(s, "health.check", nil)
		switch {
		case s.TCP != "":
			h.what = "tcp " + s.TCP
		case s.HTTP != "":
			h.what = "http " + s.HTTP
		default:
			h.what = "command " + strings.Join(s.Command, " ")
		}
	default:
		c, ok := comp.(trackers.Checker)
		if !ok {
			return nil, fmt.Errorf("health: this %s tracker has no readiness check of its own: set health.check", t.Kind)
		}
		h.check, h.what = c.Check, "its readiness check"
	}
	return h, nil
}

// healthState is a unit's health check record (under unit.mu).
type healthState struct {
	fails    int       // failures in a row
	lastAt   time.Time // the last check's end
	lastOK   bool
	lastOut  string // the last failure's output
	restarts int    // restarts for failing it
}

// healthView is the API's view of a unit's health check, nil without one.
func (u *unit) healthView() *wire.HealthStatus {
	if u.health == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.health.cfg
	v := &wire.HealthStatus{
		Check: u.health.what, IntervalMS: c.Interval.Milliseconds(), TimeoutMS: c.Timeout.Milliseconds(),
		Retries: c.Retries, StartPeriodMS: c.StartPeriod.Milliseconds(),
		Failures: u.hs.fails, LastOutput: u.hs.lastOut, Restarts: u.hs.restarts,
	}
	if !u.hs.lastAt.IsZero() {
		at := u.hs.lastAt.Round(0).UTC()
		v.LastCheck = &at
		v.LastResult = "failed"
		if u.hs.lastOK {
			v.LastResult = "ok"
		}
	}
	return v
}

// healthLoop runs u's health check for Run r until ctx (the Run's) ends,
// or until it hands the component to a restart of its Run.
func (a *Agent) healthLoop(ctx context.Context, u *unit, r *run) {
	hc := u.health
	for ctx.Err() == nil {
		if !a.waitHealthReady(ctx, u, r, 0) {
			return
		}
		if hc.cfg.StartPeriod > 0 && !a.waitHealthReady(ctx, u, r, hc.cfg.StartPeriod) {
			continue // it left ready during its warm-up: wait again
		}
		fails := 0
		for {
			if !a.waitHealthReady(ctx, u, r, trackers.PollDelay(time.Now(), hc.cfg.Interval)) {
				break
			}
			cctx, cancel := context.WithTimeout(ctx, hc.cfg.Timeout)
			err := hc.check(cctx)
			timedOut := cctx.Err() != nil && ctx.Err() == nil
			cancel()
			if ctx.Err() != nil {
				return
			}
			if timedOut && err != nil {
				err = fmt.Errorf("timed out after %s: %w", hc.cfg.Timeout, err)
			}
			// A check that overlapped a sleep, or ended after the
			// component left ready, says nothing about its health.
			if !a.healthCounts(u, r) {
				break
			}
			if err == nil {
				fails = 0
				a.recordCheck(u, nil, 0)
				continue
			}
			fails++
			a.recordCheck(u, err, fails)
			u.log.Info("health check failed", "failures", fails, "retries", hc.cfg.Retries, "err", err)
			if fails < hc.cfg.Retries {
				continue
			}
			if !a.unhealthy(ctx, u, r, err, fails) {
				return // its Run is being restarted
			}
			break // restarted in place: wait until it is ready again
		}
	}
}

// waitHealthReady waits until u, under Run r, is ready and the machine
// awake; with d > 0 it then waits d more while it stays so. It returns
// false when ctx ended, or when, with d > 0, u left ready meanwhile.
func (a *Agent) waitHealthReady(ctx context.Context, u *unit, r *run, d time.Duration) bool {
	for d == 0 {
		ch, _ := u.wait()
		if ctx.Err() != nil {
			return false
		}
		if a.healthCounts(u, r) {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		ch, _ := u.wait()
		if !a.healthCounts(u, r) {
			return false
		}
		select {
		case <-ch:
		case <-t.C:
			return a.healthCounts(u, r)
		case <-ctx.Done():
			return false
		}
	}
}

// healthCounts reports whether a check of u now means something: Run r is
// u's Run, u is ready and the machine is awake.
func (a *Agent) healthCounts(u *unit, r *run) bool {
	a.mu.Lock()
	asleep := a.asleep
	a.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	return !asleep && u.run == r && u.state.IsReady()
}

// recordCheck keeps a check's result for the API; err nil is a pass.
func (a *Agent) recordCheck(u *unit, err error, fails int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hs.lastAt, u.hs.fails, u.hs.lastOK = time.Now(), fails, err == nil
	if err != nil {
		u.hs.lastOut = bound(err.Error(), maxHealthOutput)
	}
}

func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// unhealthy marks u, ready under Run r, unhealthy after fails failed
// checks, and restarts it. It returns true when the component restarts in
// place (a Restarter) and the loop goes on, false when its Run is being
// restarted (the loop ends with it).
func (a *Agent) unhealthy(ctx context.Context, u *unit, r *run, err error, fails int) bool {
	why := fmt.Errorf("health check failed %d times in a row: %s", fails, bound(err.Error(), maxHealthOutput))
	rs, inPlace := u.comp.(trackers.Restarter)
	u.mu.Lock()
	if u.run != r || !u.state.IsReady() || u.stopped {
		u.mu.Unlock()
		return true
	}
	u.lastErr = why.Error()
	u.hs.restarts++
	c := a.setStateLocked(u, trackers.StateUnhealthy, why)
	if !inPlace {
		r.sick = true // what the old Run reports no longer counts
	}
	u.mu.Unlock()
	u.log.Warn("unhealthy; restarting", "failures", fails, "err", err)
	a.metrics.failures.With(u.name, "health").Inc()
	a.afterChange(c)
	if inPlace {
		rerr := rs.Restart(ctx)
		if rerr == nil {
			return a.restartedInPlace(ctx, u, r)
		}
		if ctx.Err() != nil {
			return false
		}
		u.log.Warn("cannot restart in place; starting it again", "err", rerr)
		u.mu.Lock()
		r.sick = true
		u.mu.Unlock()
	}
	a.restartRun(u)
	return false
}

// restartedInPlace waits, after a Restarter's restart, for u to leave
// unhealthy (the component reports the restart); when it has not within
// its deadline, its Run is restarted instead.
func (a *Agent) restartedInPlace(ctx context.Context, u *unit, r *run) bool {
	t := time.NewTimer(u.deadlineNow())
	defer t.Stop()
	for {
		ch, st := u.wait()
		if st != trackers.StateUnhealthy {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-t.C:
			u.log.Warn("still unhealthy after the restart; starting it again")
			u.mu.Lock()
			stale := u.run != r || u.state != trackers.StateUnhealthy
			r.sick = !stale
			u.mu.Unlock()
			if stale {
				return true
			}
			a.restartRun(u)
			return false
		}
	}
}

// restartRun ends u's Run and brings it up again, in the background (the
// health loop that asks for it ends with the Run).
func (a *Agent) restartRun(u *unit) {
	u.mu.Lock()
	u.op++ // the heartbeat leaves it to this restart
	u.mu.Unlock()
	a.goRun(func() {
		defer a.release(u)
		ctx, cancel := a.boundCtx()
		defer cancel()
		if err := a.stopRun(ctx, u); err != nil {
			u.log.Warn("did not stop in time", "err", err)
			return
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return
		}
		a.bringUp(ctx, u, false)
	})
}
