package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/ondemand"
	"github.com/rouse-dev/rouse/internal/fanout"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// On-demand chains. A component with an on_demand key (a root) and every
// component only on-demand components need (config.OnDemandManaged) are
// "demand" units: they are not started at boot, nor by a wake, unless a
// chain holds them. A chain is a component and all its dependencies
// (required and optional, transitively); starting it (a demand from its
// entry point, or a manual start) makes its component hold every member,
// and brings the members up with the restore's own machinery (prepareUnit,
// bringUpAll, the components' deadlines). Stopping it (idle, the user, a
// rollback) releases the holds; a member nobody holds any more is stopped,
// dependents first, and waits in stateIdle. A unit is thus ref-counted by
// the running chains that need it.

// stateIdle is the state of a demand component that no chain holds: not
// started yet, or stopped for lack of use. A wake leaves it alone.
const stateIdle trackers.State = "idle"

// What started a restore or a chain (the metrics' trigger label and a
// chain's Trigger).
const (
	triggerBoot   = "boot"
	triggerWake   = "wake"
	triggerDemand = "demand"
	triggerManual = "manual"
)

// Causes of a chain start's end that are not its failure.
var (
	errSuperseded    = errors.New("superseded")                  // a sleep, a wake, a stop or the shutdown took over
	errChainDeadline = errors.New("the chain's deadline passed") // the bound of the whole start
)

// parkedLocked (u.mu held): u starts on demand and no chain holds it.
func (u *unit) parkedLocked() bool { return u.demand && len(u.holders) == 0 }

// chain is one component's on-demand chain.
type chain struct {
	name string
	hub  fanout.Hub[struct{}] // Watch: every change of the chain's view
	opMu sync.Mutex           // one start set-up or stop at a time

	// Under Agent.chainMu.
	opts      *config.OnDemand // nil: a component without on_demand started by name
	members   []string         // name and its dependencies, in start order
	memberSet map[string]bool
	required  map[string]bool // name and what it requires, transitively
	trigger   string
	startedAt time.Time
	deadline  time.Duration // the bound of the start under way
	starting  bool
	stopping  bool
	cancel    context.CancelCauseFunc
	done      chan struct{} // closed when the start under way ends
	failed    bool
	reason    string
	began     map[string]bool      // members this start waited for
	ended     map[string]time.Time // when each one's bring-up ended
	est       map[string]memberEstimate

	// The bring-ups a start that failed left going (on_failure: keep, or
	// a manual start): members it cut short while they were starting go
	// on under their own deadlines. A stop, the next start and a sleep
	// end them (bgCancel under chainMu; bg waited for under opMu).
	bgCancel context.CancelCauseFunc
	bg       sync.WaitGroup
}

// closure returns name and its dependencies (required and optional,
// transitively) in g's start order, and the required part.
func closure(g *graph, name string) (members []string, required map[string]bool) {
	all := map[string]bool{}
	required = map[string]bool{}
	var walk func(n string, req bool)
	walk = func(n string, req bool) {
		if req {
			if required[n] {
				return
			}
			required[n] = true
		} else if all[n] {
			return
		}
		all[n] = true
		for _, d := range g.nodes[n].required {
			walk(d, req)
		}
		for _, d := range g.nodes[n].optional {
			walk(d, false)
		}
	}
	walk(name, true)
	for _, n := range g.order {
		if all[n] {
			members = append(members, n)
		}
	}
	return members, required
}

// chainsOf is the on-demand components whose chain has name as a member
// (name's own excepted), in config order; nil for none. Worked out once
// per graph (a config change builds a new one, with its config).
func (a *Agent) chainsOf(name string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.memberOf.g != a.graph {
		m := map[string][]string{}
		for _, t := range a.cfg.Trackers {
			if t.OnDemand == nil || a.graph.nodes[t.Name].name == "" {
				continue
			}
			members, _ := closure(a.graph, t.Name)
			for _, n := range members {
				if n != t.Name {
					m[n] = append(m[n], t.Name)
				}
			}
		}
		a.memberOf.g, a.memberOf.m = a.graph, m
	}
	return slices.Clone(a.memberOf.m[name])
}

// chainLocked returns name's chain (a.chainMu held), made on first use;
// nil when name is not a component that starts on demand.
func (a *Agent) chainLocked(name string) *chain {
	if ch := a.chains[name]; ch != nil {
		return ch
	}
	u := a.unit(name)
	if u == nil || !u.demand {
		return nil
	}
	if a.chains == nil {
		a.chains = map[string]*chain{}
	}
	ch := &chain{name: name}
	a.shapeChainLocked(ch)
	a.chains[name] = ch
	return ch
}

// shapeChainLocked sets ch's members and options from the current graph
// and config (a.chainMu held).
func (a *Agent) shapeChainLocked(ch *chain) {
	a.mu.Lock()
	g, cfg := a.graph, a.cfg
	a.mu.Unlock()
	ch.members, ch.required = closure(g, ch.name)
	ch.memberSet = map[string]bool{}
	for _, n := range ch.members {
		ch.memberSet[n] = true
	}
	ch.opts = nil
	if t := cfg.Tracker(ch.name); t != nil && t.OnDemand != nil {
		o := *t.OnDemand
		ch.opts = &o
	}
	ch.est = nil
}

// reshapeChains follows a config change: chains of components that no
// longer start on demand go, the others get their new members.
func (a *Agent) reshapeChains() {
	a.chainMu.Lock()
	defer a.chainMu.Unlock()
	for n, ch := range a.chains {
		if u := a.unit(n); u == nil || !u.demand {
			delete(a.chains, n)
			continue
		}
		a.shapeChainLocked(ch)
	}
}

// notifyChains tells the watchers of every chain name belongs to that its
// view changed.
func (a *Agent) notifyChains(name string) {
	a.chainMu.Lock()
	var hit []*chain
	for _, ch := range a.chains {
		if ch.memberSet[name] {
			hit = append(hit, ch)
		}
	}
	a.chainMu.Unlock()
	for _, ch := range hit {
		ch.hub.Publish(struct{}{})
	}
}

// Demand starts name's chain (trigger demand) unless it is starting or
// ready (ondemand.Chains). It returns at once.
func (a *Agent) Demand(name string) {
	a.chainMu.Lock()
	ch := a.chainLocked(name)
	busy := ch == nil || ch.starting
	a.chainMu.Unlock()
	if busy {
		return
	}
	if u := a.unit(name); u != nil {
		u.mu.Lock()
		up := u.state.IsReady() && u.holders[name]
		u.mu.Unlock()
		if up {
			return
		}
	}
	a.mu.Lock()
	closing := a.closing
	if !closing {
		a.wg.Add(1)
	}
	a.mu.Unlock()
	if closing {
		return
	}
	go func() {
		defer a.wg.Done()
		a.startChain(name, triggerDemand)
	}()
}

// IdleStop stops name's chain because nobody used it (ondemand.Chains);
// it returns at once.
func (a *Agent) IdleStop(name string) {
	a.mu.Lock()
	closing := a.closing
	var why string
	if t := a.cfg.Tracker(name); t != nil && t.OnDemand != nil {
		why = "idle for " + t.OnDemand.IdleStop.String()
	}
	if !closing {
		a.wg.Add(1)
	}
	a.mu.Unlock()
	if closing {
		return
	}
	go func() {
		defer a.wg.Done()
		a.stopChain(name, why, false)
	}()
}

// Watch notifies after every change of name's chain view (ondemand.Chains).
func (a *Agent) Watch(name string) (<-chan struct{}, func()) {
	a.chainMu.Lock()
	ch := a.chainLocked(name)
	a.chainMu.Unlock()
	if ch == nil {
		var h fanout.Hub[struct{}]
		return h.Subscribe()
	}
	return ch.hub.Subscribe()
}

var _ ondemand.Chains = (*Agent)(nil)

// startChain starts name's chain with trigger and returns a channel closed
// when the start ends (at once when there is nothing to do). A start
// already under way is not doubled: its channel is returned.
func (a *Agent) startChain(name, trigger string) <-chan struct{} {
	closed := make(chan struct{})
	close(closed)
	a.chainMu.Lock()
	ch := a.chainLocked(name)
	a.chainMu.Unlock()
	if ch == nil {
		return closed
	}
	ch.opMu.Lock() // waits for a stop under way
	defer ch.opMu.Unlock()
	a.mu.Lock()
	closing, asleep := a.closing, a.asleep
	a.mu.Unlock()
	if closing || asleep {
		return closed
	}
	root := a.unit(name)
	a.chainMu.Lock()
	starting, members := ch.starting, slices.Clone(ch.members)
	a.chainMu.Unlock()
	if !starting {
		a.endKept(ch) // this start takes over what the last one left going
		// `deadline: auto` is chosen before every start, as before a
		// wake's restore: a member's deadline (and so the chain's, which
		// the entry point holds its clients for) follows its history.
		var us []*unit
		for _, n := range members {
			if u := a.unit(n); u != nil {
				us = append(us, u)
			}
		}
		lctx, lcancel := context.WithTimeout(a.runCtx, time.Second)
		a.learnDeadlines(lctx, us)
		lcancel()
	}
	a.chainMu.Lock()
	if ch.starting {
		done := ch.done
		a.chainMu.Unlock()
		return done
	}
	rs := root.snapshot()
	root.mu.Lock()
	held := root.holders[name]
	root.mu.Unlock()
	if rs.state.IsReady() && held {
		a.chainMu.Unlock()
		return closed
	}
	now := time.Now()
	ch.trigger, ch.startedAt = trigger, now.Round(0).UTC()
	ch.failed, ch.reason, ch.stopping = false, "", false
	ch.began, ch.ended = map[string]bool{}, map[string]time.Time{}
	if rs.stopped {
		ch.failed = true
		ch.reason = fmt.Sprintf("%s is stopped by the user (rouse start %s starts it)", name, name)
		a.chainMu.Unlock()
		ch.hub.Publish(struct{}{})
		return closed
	}
	members = slices.Clone(ch.members)
	deadline := a.chainDeadline(members)
	ctx, cancel := context.WithCancelCause(a.runCtx)
	ctx, cancelT := context.WithTimeoutCause(ctx, deadline, errChainDeadline)
	ch.starting, ch.cancel, ch.done, ch.deadline = true, cancel, make(chan struct{}), deadline
	done := ch.done
	var units []*unit
	for _, n := range members {
		u := a.unit(n)
		u.mu.Lock()
		if u.holders == nil {
			u.holders = map[string]bool{}
		}
		u.holders[name] = true
		skip := u.stopped
		ready := u.state.IsReady() && u.run != nil
		u.mu.Unlock()
		if skip {
			continue
		}
		if !ready {
			ch.began[n] = true
		}
		units = append(units, u)
	}
	a.chainMu.Unlock()
	for _, u := range units {
		a.prepareUnit(u, false)
	}
	a.metrics.startsBy.With(trigger).Inc()
	a.log.Info("chain starting", "chain", name, "trigger", trigger, "components", len(units), "deadline", deadline)
	ch.hub.Publish(struct{}{})
	a.goRun(func() {
		defer cancelT()
		defer cancel(nil)
		a.runChain(ctx, ch, units)
	})
	return done
}

// runChain brings a chain's units up (held by startChain) and ends the
// start: on a failure of a required member it rolls back (on_failure:
// rollback, trigger demand), records it like a wake, counts it.
func (a *Agent) runChain(ctx context.Context, ch *chain, units []*unit) {
	a.chainMu.Lock()
	name, t0, trigger := ch.name, ch.startedAt, ch.trigger
	rollback := trigger == triggerDemand && (ch.opts == nil || ch.opts.OnFailure != config.OnFailureKeep)
	a.chainMu.Unlock()
	start := time.Now()
	results := a.bringUpAll(ctx, units, false, func(i int, r result) {
		a.chainMu.Lock()
		ch.ended[units[i].name] = time.Now()
		a.chainMu.Unlock()
		if units[i].name == name && !r.state.IsReady() {
			// The verdict is the root's: no optional member keeps the
			// client, the waiting page and a rollback waiting. What is
			// still starting is rolled back, or goes on (keepStarting).
			ch.cancel(errChainFailed)
		}
		ch.hub.Publish(struct{}{})
	})
	total := time.Since(start)
	cause := context.Cause(ctx)
	superseded := errors.Is(cause, errSuperseded)
	ok := false
	for i, u := range units {
		if u.name == name {
			ok = results[i].state.IsReady()
		}
	}
	reason, why := "", ""
	if !ok && !superseded {
		reason, why = a.chainReason(ch, units, results, cause)
		a.metrics.chainFailures.With(name, why).Inc()
		a.log.Warn("chain failed", "chain", name, "trigger", trigger, "reason", reason, "rollback", rollback)
	}
	if !ok && !superseded && !rollback {
		a.keepStarting(ch, units, results)
	}
	// The record: what this start waited for, like a wake's restore.
	var rec []*unit
	var recRes []result
	a.chainMu.Lock()
	for i, u := range units {
		if ch.began[u.name] {
			rec, recRes = append(rec, u), append(recRes, results[i])
		}
	}
	a.chainMu.Unlock()
	eff := a.metrics.efficiency(trigger, recRes, total)
	for i, u := range rec {
		if recRes[i].state.IsReady() {
			a.metrics.chainStepDur.With(name, u.name).Update(recRes[i].dur.Seconds())
		}
	}
	if !ok && !superseded && rollback {
		a.chainMu.Lock()
		ch.starting, ch.stopping, ch.failed, ch.reason = false, true, true, reason
		a.chainMu.Unlock()
		ch.hub.Publish(struct{}{})
		a.releaseChain(name)
	}

	if !superseded && len(rec) > 0 {
		a.recordChain(ctx, name, trigger, t0, rec, recRes, total, eff)
	}
	a.chainMu.Lock()
	ch.starting, ch.stopping = false, false
	ch.failed, ch.reason = !ok && !superseded, reason
	ch.est = nil // learned again from this start
	done := ch.done
	a.chainMu.Unlock()
	close(done)
	a.log.Info("chain start ended", "chain", name, "trigger", trigger, "ready", ok, "duration", total.Round(time.Millisecond), "parallel_efficiency", eff)
	ch.hub.Publish(struct{}{})
	a.refreshViews()
}

// errChainFailed cancels the rest of a start whose component failed.
var errChainFailed = errors.New("the chain failed")

// keepStarting follows a failed start that is not rolled back (on_failure:
// keep, or a manual start): each member whose bring-up the failure cut
// short while it was starting goes on, under its own deadline (degraded
// when it passes, then the heartbeat's), as if the start had not failed.
// Failed and waiting members are the heartbeat's already.
func (a *Agent) keepStarting(ch *chain, units []*unit, results []result) {
	a.mu.Lock()
	bound := a.cfg.Deadlines.Wake
	a.mu.Unlock()
	a.chainMu.Lock()
	defer a.chainMu.Unlock()
	var ctx context.Context
	for i, u := range units {
		if results[i].state.IsReady() || results[i].blocked {
			continue
		}
		u.mu.Lock()
		going := u.state == trackers.StateStarting && u.run != nil
		if going {
			u.op++ // the heartbeat leaves it to this bring-up
		}
		u.mu.Unlock()
		if !going {
			continue
		}
		results[i].err = "the chain failed while it was starting; it goes on"
		if ctx == nil {
			ctx, ch.bgCancel = context.WithCancelCause(a.runCtx)
		}
		ch.bg.Add(1)
		a.goRun(func() {
			defer ch.bg.Done()
			bctx, cancel := context.WithTimeout(ctx, bound)
			defer cancel()
			a.bringUp(bctx, u, false)
			a.release(u)
		})
	}
}

// endKept ends the bring-ups keepStarting left going and waits for them
// (ch.opMu held): a stop or a new start takes the members over.
func (a *Agent) endKept(ch *chain) {
	a.chainMu.Lock()
	cancel := ch.bgCancel
	ch.bgCancel = nil
	a.chainMu.Unlock()
	if cancel != nil {
		cancel(errSuperseded)
	}
	ch.bg.Wait()
}

// chainReason says which required member made a start fail, and why, and
// the failure's kind for the metrics (failed, deadline, stopped, blocked).
func (a *Agent) chainReason(ch *chain, units []*unit, results []result, cause error) (string, string) {
	a.chainMu.Lock()
	required := ch.required
	members := ch.members
	name := ch.name
	deadline := ch.deadline
	a.chainMu.Unlock()
	for _, n := range members {
		if !required[n] {
			continue
		}
		if s := a.unit(n).snapshot(); s.stopped {
			return fmt.Sprintf("%s is stopped by the user (rouse start %s starts it)", n, n), "stopped"
		}
	}
	for i, u := range units {
		r := results[i]
		if !required[u.name] || r.state.IsReady() || r.blocked || strings.HasPrefix(r.err, "blocked: ") || strings.HasPrefix(r.err, "waiting for ") {
			continue
		}
		if errors.Is(cause, errChainDeadline) && (r.state == trackers.StateStarting || r.state == trackers.StateWaiting) {
			continue // cut short by the chain's deadline: said below
		}
		msg := r.err
		if last := u.snapshot().lastErr; last != "" && !strings.Contains(msg, last) {
			msg += " (last error: " + last + ")"
		}
		kind := "failed"
		if r.state == trackers.StateDegraded {
			kind = "deadline"
		}
		return u.name + ": " + msg, kind
	}
	if errors.Is(cause, errChainDeadline) {
		var pending []string
		for i, u := range units {
			if required[u.name] && !results[i].state.IsReady() {
				pending = append(pending, u.name)
			}
		}
		return fmt.Sprintf("the chain's deadline (%s) passed before %s was ready", deadline, strings.Join(pending, ", ")), "deadline"
	}
	for i, u := range units {
		if u.name == name && results[i].err != "" {
			return name + ": " + results[i].err, "blocked"
		}
	}
	return name + " is not ready", "failed"
}

// recordChain stores a chain start like a wake (detected_by: its
// trigger), so it is in the wakes history and its components' times
// teach the estimates and learned deadlines.
func (a *Agent) recordChain(ctx context.Context, name, trigger string, at time.Time, units []*unit, results []result, total time.Duration, eff float64) {
	w := wire.Wake{DetectedBy: trigger, WokeAt: at, Done: true}
	w.Restore, w.Components = summarize(units, results, total)
	w.Restore.ParallelEfficiency = eff
	if _, err := a.store.CreateWake(context.WithoutCancel(ctx), w); err != nil {
		a.log.Warn("cannot record the chain start", "chain", name, "err", err)
	}
}

// stopChain ends name's chain: a start under way is cancelled, the chain
// releases what it holds, and every member nobody else holds is stopped,
// dependents first. why becomes the chain's reason.
func (a *Agent) stopChain(name, why string, user bool) {
	a.chainMu.Lock()
	ch := a.chains[name]
	a.chainMu.Unlock()
	if ch == nil {
		return
	}
	ch.opMu.Lock()
	defer ch.opMu.Unlock()
	a.chainMu.Lock()
	if ch.starting {
		ch.cancel(errSuperseded)
		done := ch.done
		a.chainMu.Unlock()
		<-done
		a.chainMu.Lock()
	}
	ch.stopping, ch.failed, ch.reason = true, false, why
	a.chainMu.Unlock()
	a.endKept(ch)
	ch.hub.Publish(struct{}{})
	a.log.Info("chain stopping", "chain", name, "why", why)
	a.releaseChain(name)
	a.chainMu.Lock()
	ch.stopping = false
	a.chainMu.Unlock()
	ch.hub.Publish(struct{}{})
	a.refreshViews()
}

// releaseChain drops name's hold on its members and stops, dependents
// first, each member no chain holds any more; it then waits in stateIdle
// (or stays stopped when the user stopped it).
func (a *Agent) releaseChain(name string) {
	a.chainMu.Lock()
	var members []string
	if ch := a.chains[name]; ch != nil {
		members = slices.Clone(ch.members)
	}
	a.chainMu.Unlock()
	a.mu.Lock()
	timeout := a.cfg.ShutdownTimeout
	a.mu.Unlock()
	for _, n := range slices.Backward(members) {
		u := a.unit(n)
		if u == nil {
			continue
		}
		u.mu.Lock()
		delete(u.holders, name)
		parked := u.parkedLocked()
		u.mu.Unlock()
		if parked {
			a.park(u, timeout)
		}
	}
}

// park stops u, which no chain holds, and leaves it idle.
func (a *Agent) park(u *unit, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(a.runCtx, timeout)
	defer cancel()
	if err := a.stopRun(ctx, u); err != nil {
		u.log.Warn("did not stop in time", "err", err)
	}
	u.mu.Lock()
	var c *change
	if !u.stopped && u.parkedLocked() {
		u.attempts, u.nextRetry, u.lastErr = 0, time.Time{}, ""
		// The next start from idle is a start, not a restart: RESTARTS
		// counts what came back after failing, not each demand.
		u.launched = false
		c = a.setStateLocked(u, stateIdle, nil)
	}
	u.mu.Unlock()
	a.afterChange(c)
}

// supersedeChains cancels every chain start under way (a sleep or a wake
// takes over; the wake restores what the chains hold).
func (a *Agent) supersedeChains(trigger string, at time.Time) {
	a.chainMu.Lock()
	defer a.chainMu.Unlock()
	for _, ch := range a.chains {
		if ch.starting {
			ch.cancel(errSuperseded)
		}
		if ch.bgCancel != nil {
			ch.bgCancel(errSuperseded) // the wake restores them
			ch.bgCancel = nil
		}
		if trigger == "" {
			continue
		}
		if u := a.unit(ch.name); u != nil {
			u.mu.Lock()
			held := u.holders[ch.name]
			u.mu.Unlock()
			if held {
				ch.trigger, ch.startedAt, ch.failed, ch.reason = trigger, at, false, ""
				ch.began, ch.ended = map[string]bool{}, map[string]time.Time{}
				for _, n := range ch.members {
					ch.began[n] = true
				}
			}
		}
	}
}

// sweepHolds follows a config change: a hold by a chain that no longer
// exists, or that no longer has the unit as a member, is dropped, and a
// member nobody holds any more is stopped.
func (a *Agent) sweepHolds() {
	a.mu.Lock()
	g := a.graph
	timeout := a.cfg.ShutdownTimeout
	a.mu.Unlock()
	closures := map[string]map[string]bool{}
	in := func(root, n string) bool {
		c, ok := closures[root]
		if !ok {
			ms, _ := closure(g, root)
			c = map[string]bool{}
			for _, m := range ms {
				c[m] = true
			}
			closures[root] = c
		}
		return c[n]
	}
	for _, n := range slices.Backward(g.order) {
		u := a.unit(n)
		// Under chainMu, so no start adds a hold between the check and
		// the drop; one unit's lock at a time (the lock order, restore.go).
		a.chainMu.Lock()
		u.mu.Lock()
		holders := slices.Collect(maps.Keys(u.holders))
		u.mu.Unlock()
		var stale []string
		for _, h := range holders {
			hu := a.unit(h)
			valid := u.demand && hu != nil && hu.demand && in(h, n)
			if valid && hu != u {
				hu.mu.Lock()
				valid = hu.holders[h]
				hu.mu.Unlock()
			}
			if !valid {
				stale = append(stale, h)
			}
		}
		u.mu.Lock()
		for _, h := range stale {
			delete(u.holders, h)
		}
		parked := u.parkedLocked()
		running := u.run != nil || (u.state != stateIdle && u.state != trackers.StateStopped)
		u.mu.Unlock()
		a.chainMu.Unlock()
		if parked && running {
			a.park(u, timeout)
		}
	}
}

// chainDeadline bounds a start of the chain of members: the longest path
// of its components' deadlines through the dependency graph, at most the
// global bound (deadlines.wake).
func (a *Agent) chainDeadline(members []string) time.Duration {
	a.mu.Lock()
	g, bound := a.graph, a.cfg.Deadlines.Wake
	a.mu.Unlock()
	in := map[string]bool{}
	for _, n := range members {
		in[n] = true
	}
	_, total, _ := g.planIn(func(n string) time.Duration {
		if u := a.unit(n); u != nil {
			return u.deadlineNow()
		}
		return 0
	}, func(string) bool { return false }, func(n string) bool { return in[n] })
	return min(total, bound)
}

// memberEstimate is a chain member's learned start time and the number of
// starts on record it comes from; none on record (its first start): no
// estimate, 0 — the dry run's guess (defaultEstimate) is not shown as one.
type memberEstimate struct {
	d       time.Duration
	samples int
}

// chainEstimates returns the learned estimate of each member (as the dry
// run's), read from the wake history (wakes and chain starts) once per
// start.
func (a *Agent) chainEstimates(ch *chain) map[string]memberEstimate {
	a.chainMu.Lock()
	est, members := ch.est, slices.Clone(ch.members)
	a.chainMu.Unlock()
	if est != nil {
		return est
	}
	est = map[string]memberEstimate{}
	complete := true
	ctx, cancel := context.WithTimeout(a.runCtx, time.Second)
	defer cancel()
	for _, n := range members {
		rs, err := a.store.ComponentRestores(ctx, n, historyLen)
		if err != nil {
			complete = false
		}
		d, _, _ := estimate(rs)
		est[n] = memberEstimate{d: d, samples: len(rs)}
	}
	if complete {
		a.chainMu.Lock()
		ch.est = est
		a.chainMu.Unlock()
	}
	return est
}

// Chain is name's chain view (ondemand.Chains and the API).
func (a *Agent) Chain(name string) wire.Chain {
	a.chainMu.Lock()
	ch := a.chainLocked(name)
	if ch == nil {
		a.chainMu.Unlock()
		return wire.Chain{Name: name, State: wire.ChainFailed, Reason: fmt.Sprintf("%s does not start on demand", name), Components: []wire.ChainComponent{}}
	}
	v := wire.Chain{Name: name, Trigger: ch.trigger, Reason: ch.reason, Components: []wire.ChainComponent{}}
	if !ch.startedAt.IsZero() {
		t := ch.startedAt
		v.StartedAt = &t
	}
	members, required := slices.Clone(ch.members), ch.required
	began, ended := map[string]bool{}, map[string]time.Time{}
	for k, b := range ch.began {
		began[k] = b
	}
	for k, t := range ch.ended {
		ended[k] = t
	}
	starting, stopping, failed, t0, startDeadline := ch.starting, ch.stopping, ch.failed, ch.startedAt, ch.deadline
	// The members as they are now, read with the chain's fields (a start
	// holds them under chainMu too): one consistent view.
	snaps := make([]snapshot, len(members))
	rootHeld := false
	for i, n := range members {
		if u := a.unit(n); u != nil {
			snaps[i] = u.snapshot()
			if n == name {
				u.mu.Lock()
				rootHeld = u.holders[name]
				u.mu.Unlock()
			}
		}
	}
	a.chainMu.Unlock()
	est := a.chainEstimates(ch)
	// The deadline of the start under way, else the one a start would
	// have now: what the entry point holds a client for.
	if starting {
		v.DeadlineMS = startDeadline.Milliseconds()
	} else {
		v.DeadlineMS = a.chainDeadline(members).Milliseconds()
	}
	now := time.Now()
	var rootState trackers.State
	var rootSnap snapshot
	at := make(map[string]int, len(members))
	for i, n := range members {
		at[n] = i
	}
	for i, n := range members {
		s := snaps[i]
		c := wire.ChainComponent{Name: n, State: string(s.state), Required: required[n],
			EstimatedMS: est[n].d.Milliseconds(), Samples: est[n].samples}
		if !s.state.IsReady() && s.state != stateIdle {
			c.Error = s.lastErr
		}
		if s.state == trackers.StateWaiting {
			c.WaitingFor = waitingFor(a.unit(n), snaps, at)
			if c.WaitingFor != "" && s.blocked == "" {
				// What it waits for is in the dependency's own row, as it
				// is now; the message of the moment it began to wait
				// ("db is unhealthy") may be out of date.
				c.Error = ""
			}
		}
		if began[n] && !t0.IsZero() {
			end := now
			if e, ok := ended[n]; ok {
				end = e
			} else if s.state.IsReady() && !s.readyAt.Before(t0) {
				end = s.readyAt
			}
			c.ElapsedMS = max(end.Sub(t0), 0).Milliseconds()
		}
		v.Components = append(v.Components, c)
		if n == name {
			rootState, rootSnap = s.state, s
		}
	}
	switch {
	case stopping:
		v.State = wire.ChainStopping
	case rootState.IsReady():
		v.State, v.Reason = wire.ChainReady, ""
	case starting:
		v.State = wire.ChainStarting
	case failed:
		v.State = wire.ChainFailed
	case rootSnap.stopped:
		v.State = wire.ChainFailed
		v.Reason = fmt.Sprintf("%s is stopped by the user (rouse start %s starts it)", name, name)
	case !rootHeld || rootState == stateIdle:
		v.State = wire.ChainIdle
	case rootState == trackers.StateFailed || rootState == trackers.StateDegraded:
		v.State = wire.ChainFailed
		if v.Reason == "" {
			v.Reason = name + ": " + rootSnap.lastErr
		}
	case rootState == trackers.StateWaiting:
		// Held, no start under way, and not ready: it waits, most often
		// for a dependency that left ready (unhealthy, restarting).
		v.State, v.Reason = wire.ChainWaiting, waitReason(v.Components, at, name, rootSnap.lastErr)
	default:
		v.State = wire.ChainStarting
	}
	if v.State == wire.ChainIdle {
		// Nothing is under way: the last start's times are history (the
		// wakes record keeps them), not progress.
		v.StartedAt = nil
		for i := range v.Components {
			v.Components[i].ElapsedMS = 0
		}
	}
	return v
}

// waitingFor is the first required dependency of u, a waiting member,
// that is not ready in snaps (the chain's members, indexed by at); "" when
// there is none (it waits for the network, or for the user).
func waitingFor(u *unit, snaps []snapshot, at map[string]int) string {
	if u == nil {
		return ""
	}
	for _, d := range u.required {
		if i, ok := at[d]; ok && !snaps[i].state.IsReady() {
			return d
		}
	}
	return ""
}

// waitReason says what the chain's root, waiting, waits for: down the
// members' WaitingFor to the one that is not itself waiting for another,
// with its state and error ("blog is waiting for db, which is unhealthy
// (health check failed 3 times in a row: …)"), or the root's own error
// when it waits for nothing in the chain ("blog: waiting for the
// network").
func waitReason(cs []wire.ChainComponent, at map[string]int, root, rootErr string) string {
	c := cs[at[root]]
	if c.WaitingFor == "" {
		if rootErr == "" {
			return root + " is waiting"
		}
		return root + ": " + rootErr
	}
	var b strings.Builder
	b.WriteString(root)
	seen := map[string]bool{root: true}
	for c.WaitingFor != "" && !seen[c.WaitingFor] {
		seen[c.WaitingFor] = true
		c = cs[at[c.WaitingFor]]
		b.WriteString(" is waiting for " + c.Name + ", which")
	}
	b.WriteString(" is " + c.State)
	if c.Error != "" {
		b.WriteString(" (" + c.Error + ")")
	}
	return b.String()
}
