package agent

import (
	"context"
	"errors"
	"fmt"
	"github.com/rouse-dev/rouse/agent/api"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/platform/netwatch"
	"github.com/rouse-dev/rouse/platform/power"
	"github.com/rouse-dev/rouse/scheduler"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// Agent is one running rouse.
type Agent struct {
	opts    Options
	log     *slog.Logger
	store   *store.Store
	events  *bus
	metrics *metrics
	sched   *scheduler.Scheduler
	net     netSource         // nil: always online
	netw    *netwatch.Watcher // the watcher behind net, run by startLoops
	gate    *gate             // the API's view of the agent during boot
	unclean bool              // the store says the last agent did not shut down cleanly
	apiAddr string            // the API's bound address
	apiSrv  *api.Server       // set by boot step 0; its stream cap follows the config
	power   *power.Monitor    // nil without Options.Power; set under mu

	// Set by boot; stop undoes them.
	cancelRun context.CancelFunc
	stopAPI   func()
	undo      []func()

	// Lock order: a chain's opMu, then chainMu, then one unit's mu, then
	// mu. mu is the innermost (nothing is locked under it), and no unit's
	// lock is taken while another unit's is held. A unit's lock under mu,
	// or mu under one unit's lock while another path holds them the other
	// way round, deadlocks the agent (TestLockOrder).
	mu         sync.Mutex
	cfg        *config.Config
	units      map[string]*unit
	names      []string // config order
	graph      *graph
	asleep     bool
	sleptAt    time.Time
	waking     bool
	lastWake   *wire.Wake
	configErr  string
	startedAt  time.Time
	restoreEnd context.CancelFunc // cancels the restore under way
	booted     bool               // the first restore has begun (the heartbeat waits for it)
	closing    bool               // shutting down: nothing new starts
	sleepRuns  []int64            // the @sleep hooks' runs, given the next wake's id
	// memberOf: the on-demand chains each component is a member of,
	// worked out for graph g (chainsOf).
	memberOf struct {
		g *graph
		m map[string][]string
	}

	restoreMu sync.Mutex // one restore at a time
	runCtx    context.Context
	wg        sync.WaitGroup // every goroutine the agent starts
	kick      chan struct{}  // heartbeat: 1-slot
	stateQ    chan store.StateEvent
	flushQ    chan chan struct{} // asks the state writer to write now
	views     viewCache          // the API's rendered read views (views.go)

	fronts  fronts            // the on-demand entry points (fronts.go)
	chainMu sync.Mutex        // guards chains and each chain's fields (chains.go)
	chains  map[string]*chain // on-demand chains, by component, made on first use
}

// netSource is what the agent needs from the network watcher; components
// get it as their trackers.Deps.Network.
type netSource interface {
	trackers.NetworkSource
	WaitOnline(ctx context.Context) error
	Recheck() // look again now (after a wake the last status is stale)
}

func (a *Agent) online() bool { return a.net == nil || a.net.Status().Online }

// change is a state transition to publish once the unit's lock is released.
type change struct {
	u        *unit
	from, to trackers.State
	err      string
	at       time.Time
	// attempts and restarts as they were at the change, so the event
	// stream and the API read the same numbers.
	attempts, restarts int
}

// setStateLocked moves u to s (u.mu held) and returns the change to
// publish with afterChange, or nil when nothing changed.
func (a *Agent) setStateLocked(u *unit, s trackers.State, err error) *change {
	if u.state == s {
		return nil
	}
	now := time.Now().Round(0).UTC()
	c := &change{u: u, from: u.state, to: s, at: now, attempts: u.attempts, restarts: u.restarts}
	if err != nil {
		c.err = err.Error()
	}
	if s.IsReady() && !u.state.IsReady() {
		u.readyAt = now
		if err == nil {
			u.lastErr = "" // ready again: the old error no longer describes it
		}
	}
	u.state, u.since = s, now
	u.userWait = false
	if s != trackers.StateWaiting {
		u.heldFor, u.heldRestart = "", false
	}
	if s != trackers.StateWaiting {
		u.blocked = ""
	}
	close(u.changed)
	u.changed = make(chan struct{})
	return c
}

// setState locks u, sets the state and publishes the change.
func (a *Agent) setState(u *unit, s trackers.State, err error) {
	u.mu.Lock()
	if err != nil {
		u.lastErr = err.Error()
	}
	c := a.setStateLocked(u, s, err)
	u.mu.Unlock()
	a.afterChange(c)
}

// afterChange logs, streams, stores and counts a transition.
func (a *Agent) afterChange(c *change) {
	if c == nil {
		return
	}
	lvl := slog.LevelDebug
	switch c.to {
	case trackers.StateDegraded, trackers.StateFailed, trackers.StateUnhealthy:
		lvl = slog.LevelWarn
	case trackers.StateStopped:
		lvl = slog.LevelInfo
	}
	if c.err != "" {
		c.u.log.Log(context.Background(), lvl, "state changed", "from", c.from, "to", c.to, "err", c.err)
	} else {
		c.u.log.Log(context.Background(), lvl, "state changed", "from", c.from, "to", c.to)
	}
	a.events.publish(wire.Event{Type: wire.EventState, At: c.at, State: &wire.StateEvent{
		Name: c.u.name, State: string(c.to), Previous: string(c.from), Error: c.err,
		Attempts: c.attempts, Restarts: c.restarts,
	}})
	a.metrics.state(c.u.name, c.from, c.to)
	select {
	case a.stateQ <- store.StateEvent{Component: c.u.name, State: string(c.to), Previous: string(c.from), Error: c.err, At: c.at}:
	default:
		a.metrics.droppedEvents.Inc()
	}
	if c.to.IsReady() || c.to == trackers.StateFailed {
		a.kickHeartbeat()
	}
	a.follow(c)
	a.notifyChains(c.u.name)
}

// kickHeartbeat wakes the heartbeat without blocking; bursts merge.
func (a *Agent) kickHeartbeat() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// launch starts a new Run of u's component unless one is going, the user
// stopped it (a bring-up racing a stop), or the agent is shutting down.
func (a *Agent) launch(u *unit) {
	a.mu.Lock()
	closing := a.closing
	a.mu.Unlock()
	u.mu.Lock()
	if u.run != nil || u.stopped || closing {
		u.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(a.runCtx)
	r := &run{cancel: cancel, done: make(chan struct{})}
	u.run = r
	u.attempts++
	u.nextRetry, u.childTry = time.Time{}, time.Time{}
	if u.launched {
		u.restarts++
	}
	u.launched = true
	c := a.setStateLocked(u, trackers.StateStarting, nil)
	u.mu.Unlock()
	a.afterChange(c)
	a.metrics.starts.With(u.name).Inc()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		var hwg sync.WaitGroup
		if u.health != nil {
			hwg.Go(func() { a.healthLoop(ctx, u, r) })
		}
		err := runSafely(ctx, u.comp, host{a: a, u: u, r: r})
		cancelled := ctx.Err() != nil
		cancel()
		hwg.Wait()
		wait := a.retryWait(u.attempts)
		u.mu.Lock()
		r.err = err
		if u.run == r {
			u.run = nil
			u.childTry = time.Time{}
			if cancelled && !u.limited {
				u.lastExit = newExit(time.Now(), nil)
			}
		}
		var c *change
		limitHit := false
		if !cancelled {
			if err == nil {
				err = errors.New("exited without an error while it should have kept running")
			}
			now := time.Now()
			u.lastExit = newExit(now, err)
			u.nextRetry = now.Add(wait)
			if u.failedLocked(now) {
				// Failed for good: the heartbeat leaves it alone.
				u.limited, limitHit = true, true
				u.nextRetry = time.Time{}
				err = u.limitError(err.Error())
			}
			u.lastErr = err.Error()
			c = a.setStateLocked(u, trackers.StateFailed, err)
		}
		u.mu.Unlock()
		close(r.done)
		if c != nil {
			a.metrics.failures.With(u.name, "run").Inc()
		}
		if limitHit {
			u.log.Warn("start limit hit", "failures", u.startLimit, "window", u.startWindow)
			a.metrics.failures.With(u.name, "start_limit").Inc()
		}
		a.afterChange(c)
	}()
}

// runSafely calls Run, turning a panic into an error so one broken
// component cannot take the agent down.
func runSafely(ctx context.Context, c trackers.Component, h trackers.Host) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return c.Run(ctx, h)
}

// stopRun cancels u's Run and waits for it to end, or for ctx.
func (a *Agent) stopRun(ctx context.Context, u *unit) error {
	u.mu.Lock()
	r := u.run
	u.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop in time: %w", u.name, ctx.Err())
	}
}

// retryWait is the heartbeat's wait before retry number n (n >= 1): full
// jitter under a capped exponential (internal/backoff).
func (a *Agent) retryWait(n int) time.Duration {
	a.mu.Lock()
	p := backoff.Policy{Initial: a.cfg.Heartbeat.Initial, Max: a.cfg.Heartbeat.Max}
	a.mu.Unlock()
	return p.Full(n - 1)
}

// result is how one component's bring-up ended.
type result struct {
	state  trackers.State
	dur    time.Duration // from when it could start to ready (or to giving up)
	waited time.Duration // for dependencies and network
	err    string
	// blocked: it waits for a component the user stopped; the summary
	// counts it with the stopped ones, not as timed out.
	blocked bool
	// userWait: it runs and waits for the user (StateWaiting reported by
	// the component itself); the summary counts it apart, not as timed out.
	userWait bool
}

// errBlocked: a required dependency is degraded, failed or stopped.
var errBlocked = errors.New("blocked")

// waitDeps waits until every required dependency of u is ready. It gives up
// with errBlocked when one is degraded, failed or stopped (when blockEarly),
// or with ctx's error.
func (a *Agent) waitDeps(ctx context.Context, u *unit, blockEarly bool) (string, error) {
	for {
		pending := ""
		var wait <-chan struct{}
		for _, d := range u.required {
			du := a.unit(d)
			if du == nil {
				return d, fmt.Errorf("unknown dependency %q", d)
			}
			ch, st := du.wait()
			if st.IsReady() {
				continue
			}
			if blockEarly && (st == trackers.StateDegraded || st == trackers.StateFailed || st == trackers.StateStopped) {
				return d, &blockedError{dep: d, is: string(st), forGood: st == trackers.StateStopped}
			}
			if blockEarly && st == trackers.StateWaiting {
				if why := du.snapshot().blocked; why != "" {
					return d, &blockedError{dep: d, is: "blocked (" + strings.TrimPrefix(why, "blocked: ") + ")", forGood: true}
				}
			}
			pending, wait = d, ch
			break
		}
		if pending == "" {
			return "", nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return pending, ctx.Err()
		}
	}
}

// bringUp makes u ready: dependencies, network, start or resume, deadline.
// ctx bounds the whole (the restore's global bound or a request); the
// component's own deadline starts once its dependencies are ready.
func (a *Agent) bringUp(ctx context.Context, u *unit, resume bool) result {
	return a.bringUpSince(ctx, u, resume, time.Now())
}

// bringUpSince is bringUp for a unit whose wait began at t0: a restore's
// unit waits from the restore's start, though its goroutine starts only
// once its dependencies' bring-ups have ended (bringUpAll), so what it
// waited is counted from then.
func (a *Agent) bringUpSince(ctx context.Context, u *unit, resume bool, t0 time.Time) result {
	if dep, err := a.waitDeps(ctx, u, true); err != nil {
		msg := fmt.Sprintf("waiting for %s: %v", dep, err)
		var be *blockedError
		forGood := false
		if errors.As(err, &be) {
			msg, forGood = be.Error(), be.forGood // "blocked: tunnel is stopped"
			// A Run still going from before cannot serve without its
			// dependency, and would keep the heartbeat from starting it
			// once the dependency is back.
			if err := a.stopRun(ctx, u); err != nil {
				u.log.Warn("did not stop in time", "err", err)
			}
		}
		a.setWaiting(u, msg, forGood)
		return result{state: trackers.StateWaiting, waited: time.Since(t0), err: msg, blocked: forGood}
	}
	depsAt := time.Now()
	dctx, cancel := context.WithTimeout(ctx, u.deadlineNow())
	defer cancel()
	if u.needsNet && !a.online() {
		a.setState(u, trackers.StateWaiting, errors.New("waiting for the network"))
		if err := a.net.WaitOnline(dctx); err != nil {
			return a.giveUp(ctx, u, depsAt, time.Since(t0), "the network did not come back in time")
		}
	}
	waited := time.Since(t0)
	u.mu.Lock()
	res, canResume := u.comp.(trackers.Resumer)
	running := u.run != nil
	u.mu.Unlock()
	switch {
	case running && resume && canResume:
		u.mu.Lock()
		c := a.setStateLocked(u, trackers.StateStarting, nil)
		u.mu.Unlock()
		a.afterChange(c)
		res.Resume(dctx)
	case running && resume:
		// Not a Resumer but still running (a sleep that was not seen):
		// restart it so it does not sit on dead connections.
		_ = a.stopRun(dctx, u)
		a.launch(u)
	case running:
	default:
		a.launch(u)
	}
	if err := u.waitReady(dctx); err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return a.giveUp(ctx, u, depsAt, waited, errDeadline.Error())
		}
		if errors.Is(err, errUserWait) {
			return result{state: trackers.StateWaiting, dur: time.Since(depsAt), waited: waited, err: u.snapshot().lastErr, userWait: true}
		}
		return result{state: u.snapshot().state, dur: time.Since(depsAt), waited: waited, err: err.Error()}
	}
	d := time.Since(depsAt)
	a.metrics.startDur.With(u.name).Update(d.Seconds())
	return result{state: trackers.StateReady, dur: d, waited: waited}
}

// blockedError is a bring-up that cannot go on because a required
// dependency is degraded, failed, stopped, or itself blocked.
type blockedError struct {
	dep, is string // "tunnel", "stopped"
	forGood bool   // only the user can change it (a stopped component)
}

func (e *blockedError) Error() string        { return "blocked: " + e.dep + " is " + e.is }
func (e *blockedError) Is(target error) bool { return target == errBlocked }

// setWaiting moves u to waiting with why as its error, publishing even
// when u was waiting already for another reason, and marks it blocked
// for good (forGood) when it waits for a stopped component.
func (a *Agent) setWaiting(u *unit, why string, forGood bool) {
	u.mu.Lock()
	u.lastErr = why
	c := a.setStateLocked(u, trackers.StateWaiting, errors.New(why))
	if c == nil && u.blocked != why && (forGood || u.blocked != "") {
		c = &change{u: u, from: trackers.StateWaiting, to: trackers.StateWaiting, err: why, at: time.Now().Round(0).UTC(), attempts: u.attempts, restarts: u.restarts}
	}
	u.blocked = ""
	if forGood {
		u.blocked = why
	}
	u.mu.Unlock()
	a.afterChange(c)
}

// blockDependents tells every component waiting for dep, which is "is"
// for good ("stopped"), that it is blocked — and their dependents in
// turn — so none of them reads "starting" for good.
func (a *Agent) blockDependents(dep, is string) {
	for _, u := range a.allUnits() {
		if !slices.Contains(u.required, dep) {
			continue
		}
		s := u.snapshot()
		if s.state != trackers.StateWaiting || s.running {
			continue
		}
		be := &blockedError{dep: dep, is: is, forGood: true}
		if s.blocked == be.Error() {
			continue
		}
		a.setWaiting(u, be.Error(), true)
		a.blockDependents(u.name, "blocked ("+dep+" is "+is+")")
	}
}

// giveUp marks u degraded at its deadline (unless it failed meanwhile).
func (a *Agent) giveUp(ctx context.Context, u *unit, depsAt time.Time, waited time.Duration, why string) result {
	u.mu.Lock()
	var c *change
	st := u.state
	if !st.IsReady() && st != trackers.StateFailed && st != trackers.StateStopped && st != trackers.StatePaused {
		u.lastErr = why
		c = a.setStateLocked(u, trackers.StateDegraded, errors.New(why))
		st = trackers.StateDegraded
	}
	u.mu.Unlock()
	a.afterChange(c)
	if c != nil {
		a.metrics.failures.With(u.name, "deadline").Inc()
	}
	if st.IsReady() {
		return result{state: trackers.StateReady, dur: time.Since(depsAt), waited: waited}
	}
	return result{state: st, dur: time.Since(depsAt), waited: waited, err: why}
}

// unit returns the unit named name, or nil.
func (a *Agent) unit(name string) *unit {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.units[name]
}

// activeUnits returns the units the user has not stopped and that do not
// wait for a demand (parked), in graph order.
func (a *Agent) activeUnits() []*unit {
	a.mu.Lock()
	all := make([]*unit, 0, len(a.graph.order))
	for _, n := range a.graph.order {
		all = append(all, a.units[n])
	}
	a.mu.Unlock()
	var us []*unit
	for _, u := range all {
		u.mu.Lock()
		stopped := u.stopped || u.parkedLocked()
		u.mu.Unlock()
		if !stopped {
			us = append(us, u)
		}
	}
	return us
}

// allUnits returns every unit in config order.
func (a *Agent) allUnits() []*unit {
	a.mu.Lock()
	defer a.mu.Unlock()
	us := make([]*unit, 0, len(a.names))
	for _, n := range a.names {
		us = append(us, a.units[n])
	}
	return us
}

// prepareRestore marks every active component as part of a restore,
// synchronously: each leaves its old state (so a dependent never mistakes a
// dependency's state from before the wake for this restore's outcome) and
// is held by the restore (op), so the heartbeat leaves it alone.
func (a *Agent) prepareRestore(resume bool) []*unit {
	a.mu.Lock()
	a.booted = true
	a.mu.Unlock()
	units := a.activeUnits()
	for _, u := range units {
		a.prepareUnit(u, resume)
	}
	return units
}

// prepareUnit is prepareRestore for one unit (a chain start prepares its
// own units the same way).
func (a *Agent) prepareUnit(u *unit, resume bool) {
	u.mu.Lock()
	u.attempts, u.nextRetry = 0, time.Time{}
	u.unlimitLocked()                    // a wake gives a component that hit its start limit another go
	u.heldFor, u.heldRestart = "", false // the restore brings it up afresh
	u.op++
	to := trackers.StateStarting
	if len(u.required) > 0 {
		to = trackers.StateWaiting
	}
	// A component that is ready and still running stays ready unless
	// this is a wake (then it is resumed or restarted); everything else
	// is about to be (re)started.
	var c *change
	if !u.state.IsReady() || u.run == nil || resume {
		c = a.setStateLocked(u, to, nil)
	}
	u.mu.Unlock()
	a.afterChange(c)
}

// restore brings units (from prepareRestore) up concurrently and records
// the summary in w (already created in the store). resume: components that
// survive a sleep are resumed rather than restarted.
func (a *Agent) restore(ctx context.Context, w *wire.Wake, units []*unit, resume bool) {
	a.mu.Lock()
	bound := a.cfg.Deadlines.Wake
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	t0 := time.Now()
	pub := *w // restore fills in w below, while subscribers may still be encoding the event
	a.events.publish(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: wire.PhaseRestoring, Wake: &pub, Pending: len(units), Total: len(units)}})
	var pmu sync.Mutex
	pending := len(units)
	results := a.bringUpAll(ctx, units, resume, func(int, result) {
		pmu.Lock()
		pending--
		p := pending
		pmu.Unlock()
		a.events.publish(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: wire.PhaseRestoring, Pending: p, Total: len(units)}})
	})
	total := time.Since(t0)
	w.Done = true
	w.Restore, w.Components = summarize(units, results, total)
	w.Restore.Skipped += len(a.allUnits()) - len(units) // the ones the user stopped or that wait for a demand
	a.metrics.restoreDur.Update(total.Seconds())
	trigger := triggerWake
	if w.DetectedBy == "boot" {
		trigger = triggerBoot
	}
	eff := a.metrics.efficiency(trigger, results, total)
	w.Restore.ParallelEfficiency = eff
	a.metrics.startsBy.With(trigger).Inc()
	lvl := slog.LevelInfo
	if w.Restore.TimedOut+w.Restore.Failed > 0 {
		lvl = slog.LevelWarn
	}
	a.log.Log(context.Background(), lvl, "restore finished", "wake", w.ID, "detected_by", w.DetectedBy,
		"ready", w.Restore.Ready, "timed_out", w.Restore.TimedOut, "failed", w.Restore.Failed, "waiting_for_user", w.Restore.WaitingForUser,
		"skipped", w.Restore.Skipped, "duration", total.Round(time.Microsecond), "parallel_efficiency", eff)
	if err := a.store.FinishWake(context.WithoutCancel(ctx), *w); err != nil {
		a.log.Error("cannot store the wake summary", "wake", w.ID, "err", err)
	}
	a.mu.Lock()
	cp := *w
	a.lastWake = &cp
	a.waking = false
	a.mu.Unlock()
	a.events.publish(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: wire.PhaseDone, Wake: &cp, Total: len(units)}})
	a.kickHeartbeat()
	// A restore allocates in a burst (every component starting at once)
	// and the agent is idle after it: hand that memory back to the OS now
	// rather than keep it resident until the runtime's scavenger gets to
	// it. Off the restore's path (it holds no lock a wake needs).
	a.goRun(debug.FreeOSMemory)
}

// bringUpAll brings units (each held by the caller: op) up concurrently,
// each the moment its required dependencies are ready, and releases them;
// each, when set, is called as each one's bring-up ends. It returns the
// results in the order of units.
//
// A unit's goroutine starts when the bring-ups of its required
// dependencies among units have ended (at once when it has none there),
// not all at the restore's start: a thousand goroutines made runnable at
// once only to park in waitDeps queue the API's requests behind them for
// tens of milliseconds (Go's run queues are first in, first out). The
// dependency's goroutine starts its dependents before anything else once
// its bring-up returns, and their waitDeps decides as before (ready,
// blocked, the context's end).
func (a *Agent) bringUpAll(ctx context.Context, units []*unit, resume bool, each func(i int, r result)) []result {
	results := make([]result, len(units))
	t0 := time.Now()
	left, next := gateByDeps(units)
	var mu sync.Mutex // guards left
	var wg sync.WaitGroup
	var start func(i int)
	start = func(i int) {
		u := units[i]
		wg.Go(func() {
			results[i] = a.bringUpSince(ctx, u, resume, t0)
			var now []int
			mu.Lock()
			for _, d := range next[i] {
				if left[d]--; left[d] == 0 {
					now = append(now, d)
				}
			}
			mu.Unlock()
			for _, d := range now {
				start(d)
			}
			a.release(u)
			if each != nil {
				each(i, results[i])
			}
		})
	}
	var first []int
	for i := range units {
		if left[i] == 0 {
			first = append(first, i)
		}
	}
	for k, i := range first {
		start(i)
		if k%startBurst == startBurst-1 {
			// Behind the API's requests that arrived meanwhile, not
			// ahead of them: the next few start once those that just
			// did have had their turn (a hundred components without
			// dependencies start within a millisecond either way).
			runtime.Gosched()
		}
	}
	wg.Wait()
	return results
}

// startBurst is how many bring-ups bringUpAll starts before it yields.
const startBurst = 8

// gateByDeps counts, for each of units, its required dependencies among
// units (left) and lists each one's dependents there (next). A unit in or
// behind a dependency cycle (config validation rejects them; this is a
// guard against a hang) gets a count of zero and no entry in next: it
// starts at once, as every unit did before, and only once.
func gateByDeps(units []*unit) (left []int, next [][]int) {
	idx := make(map[string]int, len(units))
	for i, u := range units {
		idx[u.name] = i
	}
	left, next = make([]int, len(units)), make([][]int, len(units))
	for i, u := range units {
		for _, r := range u.required {
			if j, ok := idx[r]; ok && j != i {
				left[i]++
				next[j] = append(next[j], i)
			}
		}
	}
	// Kahn's walk: what it cannot reach waits on a cycle.
	sim := slices.Clone(left)
	queue := make([]int, 0, len(units))
	for i := range units {
		if sim[i] == 0 {
			queue = append(queue, i)
		}
	}
	for k := 0; k < len(queue); k++ {
		for _, d := range next[queue[k]] {
			if sim[d]--; sim[d] == 0 {
				queue = append(queue, d)
			}
		}
	}
	if len(queue) < len(units) {
		for i := range units {
			if sim[i] > 0 {
				left[i] = 0           // started at once
				for j := range next { // and never again by a dependency
					next[j] = slices.DeleteFunc(next[j], func(d int) bool { return d == i })
				}
			}
		}
	}
	return left, next
}

// summarize counts how a restore (or a chain start) of units went.
func summarize(units []*unit, results []result, total time.Duration) (wire.RestoreSummary, []wire.WakeComponent) {
	s := wire.RestoreSummary{DurationMS: total.Milliseconds()}
	cs := make([]wire.WakeComponent, 0, len(units))
	for i, u := range units {
		r := results[i]
		switch {
		case r.blocked:
			s.Skipped++
		case r.userWait:
			s.WaitingForUser++
		case r.state.IsReady():
			s.Ready++
		case r.state == trackers.StateFailed:
			s.Failed++
		default:
			s.TimedOut++
		}
		cs = append(cs, wire.WakeComponent{Name: u.name, State: string(r.state), DurationMS: r.dur.Milliseconds(), WaitedMS: r.waited.Milliseconds(), Error: r.err})
	}
	return s, cs
}

// heartbeat retries failed components with backoff and starts waiting
// ones whose dependencies became ready. It sleeps on its kick channel when
// there is nothing to do.
func (a *Agent) heartbeat(ctx context.Context) {
	var timer *time.Timer
	for {
		next := a.reconcile(ctx)
		var tc <-chan time.Time
		if !next.IsZero() {
			d := time.Until(next)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-a.kick:
		case <-tc:
		}
	}
}

// reconcile starts what is due and returns the earliest future retry.
func (a *Agent) reconcile(ctx context.Context) time.Time {
	// During a restore every active component is held by it, and its end
	// kicks the heartbeat again: nothing to do until then.
	a.mu.Lock()
	idle := a.asleep || !a.booted || a.waking
	a.mu.Unlock()
	if idle {
		return time.Time{}
	}
	now := time.Now()
	var next time.Time
	for _, u := range a.activeUnits() {
		u.mu.Lock()
		st, busy, due := u.state, u.op > 0 || u.run != nil, u.nextRetry
		limited := u.limited
		u.mu.Unlock()
		if busy || limited {
			continue
		}
		switch st {
		case trackers.StateFailed:
			if !due.IsZero() && due.After(now) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
				continue
			}
		case trackers.StateWaiting, trackers.StateDegraded:
		default:
			continue
		}
		if !a.depsReady(u) {
			continue
		}
		u.mu.Lock()
		u.op++
		u.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.bringUp(ctx, u, false)
			a.release(u)
		}()
	}
	return next
}

// release ends one bring-up's hold on u. The heartbeat skipped u while it
// was held, so it gets another look now.
func (a *Agent) release(u *unit) {
	u.mu.Lock()
	u.op--
	u.mu.Unlock()
	a.kickHeartbeat()
}

// depsReady reports whether every required dependency of u is ready.
func (a *Agent) depsReady(u *unit) bool {
	for _, d := range u.required {
		du := a.unit(d)
		if du == nil || !du.snapshot().state.IsReady() {
			return false
		}
	}
	return true
}
