package agent

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rouse-dev/rouse/trackers"
)

// follow makes the dependents of a component that left ready wait for it,
// and, once it is ready again, resumes them (back to the state their own
// Run reports) or restarts them (a dependency with restart: true), as
// compose's depends_on does. A wake, a sleep and a shutdown are left to
// the restore and the pause, which handle every component anyway.
func (a *Agent) follow(c *change) {
	leaving := c.from.IsReady() && !c.to.IsReady()
	back := c.to.IsReady() && !c.from.IsReady()
	if !leaving && !back || c.to == trackers.StatePaused {
		return
	}
	a.mu.Lock()
	skip := a.asleep || a.waking || a.closing
	a.mu.Unlock()
	if skip {
		return
	}
	for _, d := range a.allUnits() {
		if !slices.Contains(d.required, c.u.name) {
			continue
		}
		if leaving {
			a.holdDependent(d, c.u.name, c.to)
		} else {
			a.releaseDependent(d)
		}
	}
}

// holdDependent makes d, ready and running, wait for dep, which is now is.
func (a *Agent) holdDependent(d *unit, dep string, is trackers.State) {
	// Whether dep is itself blocked, read before d is locked: no lock is
	// taken under a unit's (the lock order, restore.go).
	depBlocked := ""
	if is != trackers.StateStopped {
		if du := a.unit(dep); du != nil {
			depBlocked = du.snapshot().blocked
		}
	}
	d.mu.Lock()
	restart := slices.Contains(d.restartOn, dep)
	if d.heldFor != "" {
		d.heldRestart = d.heldRestart || restart
		d.mu.Unlock()
		return
	}
	if !d.state.IsReady() || d.run == nil || d.stopped {
		d.mu.Unlock()
		return
	}
	why := fmt.Errorf("waiting for %s: %s is %s", dep, dep, is)
	// A stopped dependency, or one blocked by a stopped one, waits for the
	// user: say so, so the overall status does not read "starting".
	blocked := ""
	if is == trackers.StateStopped {
		blocked = (&blockedError{dep: dep, is: string(is)}).Error()
	} else if depBlocked != "" {
		blocked = (&blockedError{dep: dep, is: "blocked (" + strings.TrimPrefix(depBlocked, "blocked: ") + ")"}).Error()
	}
	if blocked != "" {
		why = errors.New(blocked)
	}
	held := d.state
	d.lastErr = why.Error()
	c := a.setStateLocked(d, trackers.StateWaiting, why)
	d.heldFor, d.held, d.heldRestart, d.blocked = dep, held, restart, blocked
	d.mu.Unlock()
	d.log.Info("waiting for a dependency", "dependency", dep, "is", is)
	a.afterChange(c)
}

// releaseDependent resumes or restarts d, held for a dependency, once all
// its required dependencies are ready.
func (a *Agent) releaseDependent(d *unit) {
	if !a.depsReady(d) {
		return
	}
	d.mu.Lock()
	if d.heldFor == "" || d.state != trackers.StateWaiting {
		d.mu.Unlock()
		return
	}
	dep, restart, to := d.heldFor, d.heldRestart, d.held
	d.heldFor, d.heldRestart = "", false
	if !restart {
		c := a.setStateLocked(d, to, nil)
		if to.IsReady() {
			d.lastErr = ""
		}
		d.mu.Unlock()
		d.log.Info("dependency ready again; resumed", "dependency", dep)
		a.afterChange(c)
		return
	}
	d.op++ // the heartbeat leaves it to this restart
	d.mu.Unlock()
	d.log.Info("dependency ready again; restarting", "dependency", dep)
	a.goRun(func() {
		defer a.release(d)
		ctx, cancel := a.boundCtx()
		defer cancel()
		if err := a.stopRun(ctx, d); err != nil {
			d.log.Warn("did not stop in time", "err", err)
			return
		}
		a.bringUp(ctx, d, false)
	})
}
