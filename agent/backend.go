package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/scheduler"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// outputer is implemented by components that keep their child's last
// output lines (trackers/exec).
type outputer interface{ Output() []string }

// detailer is implemented by components with kind-specific detail for
// the API (the scheduler's next runs).
type detailer interface{ Detail() any }

func (a *Agent) service(u *unit) wire.Service {
	s := u.snapshot()
	ws := wire.Service{
		Name: u.name, Kind: u.kind, State: string(s.state), Since: s.since, Attempts: s.attempts,
		LastError: s.lastErr, DependsOn: append([]string{}, u.required...), Optional: u.optional,
		Required: u.counts, DeadlineMS: u.deadlineNow().Milliseconds(), NeedsNet: u.needsNet, Desired: "active",
	}
	u.mu.Lock()
	if u.learned != nil {
		c := *u.learned
		ws.DeadlineAuto = &c
	}
	u.mu.Unlock()
	if ws.DependsOn == nil {
		ws.DependsOn = []string{}
	}
	if s.stopped {
		ws.Desired = "stopped"
	}
	ws.Restarts, ws.LastExit, ws.Blocked, ws.StartLimited = s.restarts, s.lastExit, s.blocked, s.limited
	switch {
	case !s.nextRetry.IsZero() && s.state == trackers.StateFailed:
		t := s.nextRetry.Round(0).UTC()
		ws.NextRetryAt = &t
	case !s.childTry.IsZero() && !s.state.IsReady():
		t := s.childTry.Round(0).UTC()
		ws.NextRetryAt = &t
	}
	if !s.readyAt.IsZero() {
		t := s.readyAt
		ws.StartedAt = &t
	}
	if o, ok := u.comp.(outputer); ok {
		ws.Output = o.Output()
	}
	ws.StartsOnDemand = u.demand
	ws.Chains = a.chainsOf(u.name)
	if u.demand {
		a.mu.Lock()
		if t := a.cfg.Tracker(u.name); t != nil && t.OnDemand != nil {
			ws.OnDemand = t.OnDemand.Listen
		}
		a.mu.Unlock()
		if ws.OnDemand != "" {
			ws.OnDemandError = a.frontError(u.name)
		}
	}
	if d, ok := u.comp.(detailer); ok {
		ws.Detail = d.Detail()
	}
	ws.Health = u.healthView()
	return ws
}

// noComponent is the 404 for an unknown component name: it lists the
// names there are, and says what the store is, which status shows but
// which is not a component to start or stop.
func (a *Agent) noComponent(name string) error {
	var names []string
	for _, u := range a.allUnits() {
		names = append(names, u.name)
	}
	msg := fmt.Sprintf("no component named %q; the components are: %s", name, strings.Join(names, ", "))
	if name == "store" {
		msg = fmt.Sprintf("the store is not a component you can start or stop: it opens and closes with the agent (stop the agent instead); the components are: %s", strings.Join(names, ", "))
	}
	return api.Errorf(api.ErrNotFound, "%s", msg)
}

// Services lists every component in config order.
func (a *Agent) Services(ctx context.Context) []wire.Service {
	us := a.allUnits()
	out := make([]wire.Service, 0, len(us))
	for _, u := range us {
		out = append(out, a.service(u))
	}
	return out
}

// Service returns one component.
func (a *Agent) Service(ctx context.Context, name string) (wire.Service, error) {
	u := a.unit(name)
	if u == nil {
		return wire.Service{}, a.noComponent(name)
	}
	return a.service(u), nil
}

// Health is the overall picture.
func (a *Agent) Health(ctx context.Context) wire.Health {
	h := a.healthBase()
	h.Components = a.Services(ctx)
	var f statusFold
	for i := range h.Components {
		f.add(&h.Components[i])
	}
	h.Status = f.status(h)
	return h
}

// healthBase is Health without its components and status.
func (a *Agent) healthBase() wire.Health {
	h := wire.Health{
		Version: a.opts.Version, StartedAt: a.startedAt,
		Store: wire.StoreHealth{State: a.store.State(), Path: a.store.Path()},
	}
	if h.Store.State == wire.StoreOpen {
		if err := a.store.Verify(); err != nil {
			h.Store.State, h.Store.Error = wire.StoreError, err.Error()
		}
	}
	a.mu.Lock()
	h.Asleep, h.Waking = a.asleep, a.waking
	if a.lastWake != nil {
		h.LastWake = a.lastWake.Summary()
	}
	h.Config = wire.ConfigState{State: "ok", Path: a.opts.ConfigPath}
	if a.opts.ConfigPath == "" {
		h.Config.State = "default"
	}
	if a.configErr != "" {
		h.Config.State, h.Config.Error = "rejected", a.configErr
	}
	pm := a.power
	a.mu.Unlock()
	if a.net != nil {
		ns := a.net.Status()
		h.Network = &wire.Network{Online: ns.Online, Since: ns.At}
	}
	if pm != nil {
		ps := pm.Status()
		h.Power = &wire.Power{Sources: ps.Sources, Logind: ps.Logind, LockHeld: ps.LockHeld, LockError: ps.LockError, Error: ps.LastError}
	}
	return h
}

// statusFold folds components, one at a time, and then the store into
// one status (the zero value has seen no component).
type statusFold struct {
	starting bool // a component is starting, or waiting on one not stopped
	degraded bool // a required component failed, or cannot be reached
}

func (f *statusFold) add(c *wire.Service) {
	if c.OnDemandError != "" && c.Required {
		f.degraded = true // nobody can reach it through its entry point
		return
	}
	switch trackers.State(c.State) {
	case trackers.StateFailed, trackers.StateDegraded, trackers.StateUnhealthy:
		if c.Required {
			f.degraded = true
		}
	case trackers.StateWaiting:
		if c.Blocked == "" {
			f.starting = true
		}
	case trackers.StateStarting:
		f.starting = true
	}
}

// status is the overall status of h (its store and whether it wakes)
// with the components added.
func (f *statusFold) status(h wire.Health) string {
	switch {
	case h.Store.State == wire.StoreError:
		return wire.StatusError
	case h.Waking:
		return wire.StatusStarting
	case f.degraded:
		return wire.StatusDegraded
	case f.starting:
		return wire.StatusStarting
	}
	return wire.StatusOK
}

// Ready is /readyz: the store open and every required component ready.
// Without detail a reason is "NAME is STATE" only.
func (a *Agent) Ready(ctx context.Context, detail bool) wire.Ready {
	var reasons []string
	if st := a.store.State(); st != wire.StoreOpen {
		reasons = append(reasons, "store is "+st)
	} else if err := a.store.Verify(); err != nil {
		r := "store is error"
		if detail {
			r += ": " + err.Error()
		}
		reasons = append(reasons, r)
	}
	for _, u := range a.allUnits() {
		s := u.snapshot()
		if u.counts && u.demand && !s.stopped {
			if why := a.frontError(u.name); why != "" {
				r := u.name + "'s on-demand entry point is not listening"
				if detail {
					r += ": " + why
				}
				reasons = append(reasons, r)
			}
		}
		if !u.counts || s.stopped || s.state.IsReady() || s.state == stateIdle {
			continue // an idle on-demand component is as it should be
		}
		r := u.name + " is " + string(s.state)
		if detail && s.lastErr != "" {
			r += ": " + s.lastErr
		}
		reasons = append(reasons, r)
	}
	return wire.Ready{Ready: len(reasons) == 0, Reasons: reasons}
}

// Start starts a stopped component (or waits for a running one) and
// remembers that the user wants it active.
func (a *Agent) Start(ctx context.Context, name string) (string, error) {
	u := a.unit(name)
	if u == nil {
		return "", a.noComponent(name)
	}
	if err := a.store.SetDesired(ctx, name, true); err != nil {
		return "", unavailable(err)
	}
	if u.demand {
		return a.startChainNow(ctx, u)
	}
	a.metrics.startsBy.With(triggerManual).Inc()
	u.mu.Lock()
	u.stopped = false
	u.attempts, u.nextRetry = 0, time.Time{}
	u.unlimitLocked()
	u.op++
	u.mu.Unlock()
	defer func() {
		a.release(u)
		a.refreshViews() // the client that asked reads its own change
	}()
	bctx, cancel := a.boundCtx()
	defer cancel()
	r := a.bringUp(bctx, u, false)
	switch {
	case r.state.IsReady():
		return wire.ActionStarted, nil
	case r.state == trackers.StateFailed:
		return "", fmt.Errorf("%s failed to start: %s", name, r.err)
	default:
		return wire.ActionStartedWithTimeout, nil
	}
}

// boundCtx detaches a request from its client (a start goes on when the
// client hangs up) but keeps the agent's lifetime and the global bound.
func (a *Agent) boundCtx() (context.Context, context.CancelFunc) {
	a.mu.Lock()
	bound := a.cfg.Deadlines.Wake
	a.mu.Unlock()
	return context.WithTimeout(a.runCtx, bound)
}

// Stop stops a component and keeps it stopped across wakes and restarts.
func (a *Agent) Stop(ctx context.Context, name string) (string, error) {
	u := a.unit(name)
	if u == nil {
		return "", a.noComponent(name)
	}
	if err := a.store.SetDesired(ctx, name, false); err != nil {
		return "", unavailable(err)
	}
	u.mu.Lock()
	u.stopped = true
	u.nextRetry = time.Time{}
	u.mu.Unlock()
	a.mu.Lock()
	timeout := a.cfg.ShutdownTimeout
	a.mu.Unlock()
	sctx, cancel := context.WithTimeout(a.runCtx, timeout)
	defer cancel()
	err := a.stopRun(sctx, u)
	a.setState(u, trackers.StateStopped, nil)
	a.blockDependents(name, string(trackers.StateStopped))
	if u.demand {
		// Its chain lets go of what it held: dependencies nobody else
		// needs stop too.
		a.stopChain(name, "stopped by the user", true)
	}
	a.refreshViews()
	if err != nil {
		return "", err
	}
	return wire.ActionStopped, nil
}

// startChainNow is Start for a component that starts on demand: its chain
// starts (trigger manual) and holds it until it is stopped, by the user or
// for being idle.
func (a *Agent) startChainNow(ctx context.Context, u *unit) (string, error) {
	name := u.name
	if err := a.store.SetDesired(ctx, name, true); err != nil {
		return "", unavailable(err)
	}
	u.mu.Lock()
	u.stopped = false
	u.unlimitLocked()
	u.mu.Unlock()
	done := a.startChain(name, triggerManual)
	bctx, cancel := a.boundCtx()
	defer cancel()
	defer a.refreshViews()
	select {
	case <-done:
	case <-bctx.Done():
	}
	s := u.snapshot()
	switch {
	case s.state.IsReady():
		return wire.ActionStarted, nil
	case s.state == trackers.StateFailed:
		return "", fmt.Errorf("%s failed to start: %s", name, s.lastErr)
	}
	if v := a.Chain(name); v.State == wire.ChainFailed {
		return "", fmt.Errorf("%s failed to start: %s", name, v.Reason)
	}
	return wire.ActionStartedWithTimeout, nil
}

// StartPlan is the dry run of starting name's chain: the plan of name and
// its dependencies (POST /api/v1/services/{name}/start?dry_run=true).
func (a *Agent) StartPlan(ctx context.Context, name string) (wire.Plan, error) {
	if a.unit(name) == nil {
		return wire.Plan{}, a.noComponent(name)
	}
	a.mu.Lock()
	g := a.graph
	a.mu.Unlock()
	members, _ := closure(g, name)
	in := map[string]bool{}
	for _, n := range members {
		in[n] = true
	}
	return a.plan(ctx, func(n string) bool { return in[n] })
}

// ChainView is GET /api/v1/services/{name}/chain.
func (a *Agent) ChainView(ctx context.Context, name string) (wire.Chain, error) {
	u := a.unit(name)
	if u == nil {
		return wire.Chain{}, a.noComponent(name)
	}
	if !u.demand {
		return wire.Chain{}, api.Errorf(api.ErrNotFound, "%s does not start on demand (it has no on_demand key, and components that run all the time need it)", name)
	}
	return a.Chain(name), nil
}

// Restart stops then starts a component.
func (a *Agent) Restart(ctx context.Context, name string) (string, error) {
	u := a.unit(name)
	if u == nil {
		return "", a.noComponent(name)
	}
	a.mu.Lock()
	timeout := a.cfg.ShutdownTimeout
	a.mu.Unlock()
	sctx, cancel := context.WithTimeout(a.runCtx, timeout)
	err := a.stopRun(sctx, u)
	cancel()
	if err != nil {
		return "", err
	}
	return a.Start(ctx, name)
}

func unavailable(err error) error {
	if errors.Is(err, scheduler.ErrNotRunning) {
		return api.Errorf(api.ErrUnavailable, "the scheduler is not running (asleep, or stopped by the user)")
	}
	if errors.Is(err, store.ErrClosed) {
		return api.Errorf(api.ErrUnavailable, "the store is closed (the machine is going to sleep or waking)")
	}
	return err
}

// Wake runs a manual recovery.
func (a *Agent) Wake(ctx context.Context) (wire.Wake, error) {
	a.mu.Lock()
	asleep := a.asleep
	a.mu.Unlock()
	if asleep {
		return wire.Wake{}, api.Errorf(api.ErrConflict, "the machine is going to sleep")
	}
	w, err := a.startWake("manual", time.Now().Round(0).UTC(), 0, true)
	a.refreshViews()
	return w, err
}

// defaultEstimate is the dry run's guess for a component with no history.
const defaultEstimate = time.Second

// WakePlan is the dry run.
func (a *Agent) WakePlan(ctx context.Context) (wire.Plan, error) {
	return a.plan(ctx, nil)
}

// plan is the dry run over the components in only (nil: a wake's, every
// component; an idle on-demand one is not planned).
func (a *Agent) plan(ctx context.Context, only func(string) bool) (wire.Plan, error) {
	a.mu.Lock()
	g := a.graph
	lo, hi := a.cfg.Deadlines.AutoMin, a.cfg.Deadlines.AutoMax
	a.mu.Unlock()
	samples := map[string]int{}
	est := map[string]time.Duration{}
	atLeast := map[string]bool{}
	auto := map[string]*wire.AutoDeadline{}
	for _, n := range g.order {
		if only != nil && !only(n) {
			continue
		}
		rs, err := a.store.ComponentRestores(ctx, n, historyLen)
		if err != nil {
			return wire.Plan{}, unavailable(err)
		}
		samples[n] = len(rs)
		d, al, ok := estimate(rs)
		if !ok {
			d = defaultEstimate
		}
		est[n], atLeast[n] = d, al
		if u := a.unit(n); u.autoDeadline {
			c := chooseDeadline(rs, lo, hi, u.deadline)
			auto[n] = &c
		}
	}
	// A stopped component is not planned, nor is what needs it: it would
	// wait for the user.
	why := map[string]string{}
	for _, n := range g.order {
		if only != nil && !only(n) {
			continue
		}
		s := a.unit(n).snapshot()
		if s.stopped {
			why[n] = "stopped"
			continue
		}
		if only == nil && s.state == stateIdle {
			why[n] = "idle: starts on demand"
			continue
		}
		for _, d := range g.nodes[n].required {
			if w := why[d]; w != "" {
				why[n] = "blocked: " + d + " is " + w
				if w != "stopped" {
					why[n] = "blocked: " + d + " is blocked"
				}
				break
			}
		}
	}
	skipped := func(n string) bool { return why[n] != "" }
	steps, total, path := g.planIn(func(n string) time.Duration { return est[n] }, skipped, only)
	p := wire.Plan{EstimatedTotalMS: total.Milliseconds(), CriticalPath: path, Components: []wire.PlanStep{}}
	for _, n := range g.order {
		if only != nil && !only(n) {
			continue
		}
		if why[n] != "" {
			p.NotPlanned = append(p.NotPlanned, wire.PlanSkip{Name: n, Reason: why[n]})
		}
	}
	for _, s := range steps {
		if s.skipped {
			continue
		}
		u := a.unit(s.name)
		wf := s.waitsFor
		if wf == nil {
			wf = []string{}
		}
		ps := wire.PlanStep{
			Name: s.name, WaitsFor: wf, EstimatedMS: s.dur.Milliseconds(), Samples: samples[s.name],
			StartAtMS: s.start.Milliseconds(), DeadlineMS: u.deadline.Milliseconds(),
			EstimateAtLeast: atLeast[s.name], DeadlineAuto: auto[s.name],
		}
		if c := auto[s.name]; c != nil {
			ps.DeadlineMS = c.DeadlineMS
		}
		p.Components = append(p.Components, ps)
	}
	return p, nil
}

// Wakes lists past wakes, newest first.
func (a *Agent) Wakes(ctx context.Context, limit int, before int64) ([]wire.Wake, error) {
	ws, err := a.store.WakesBefore(ctx, limit, before)
	if err != nil {
		return nil, unavailable(err)
	}
	return ws, nil
}

// WakeByID returns one wake.
func (a *Agent) WakeByID(ctx context.Context, id int64) (wire.Wake, error) {
	w, err := a.store.Wake(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return w, api.Errorf(api.ErrNotFound, "no wake %d", id)
	}
	return w, unavailable(err)
}

// Subscribe streams events.
func (a *Agent) Subscribe(ctx context.Context, lastID int64) <-chan wire.Event {
	return a.events.subscribe(ctx, lastID)
}

// Items reads one batch of a tracker's items.
func (a *Agent) Items(ctx context.Context, tracker string, q api.ItemQuery) ([]api.Item, error) {
	if a.unit(tracker) == nil || tracker == "scheduler" {
		return nil, api.Errorf(api.ErrNotFound, "no tracker named %q", tracker)
	}
	sq := store.ItemQuery{Limit: q.Limit, Oldest: q.Oldest, MaxBytes: q.MaxBytes, OmitAbove: q.OmitAbove}
	if q.Since != "" {
		t, err := parseSince(q.Since)
		if err != nil {
			return nil, api.Errorf(api.ErrBadRequest, "since: %v", err)
		}
		sq.Since = t
	}
	if q.Cursor != "" {
		seq, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || seq < 0 {
			return nil, api.Errorf(api.ErrBadRequest, "cursor: not a cursor from a previous page")
		}
		if q.Oldest {
			sq.AfterSeq = seq
		} else {
			sq.BeforeSeq = seq
		}
	}
	items, err := a.store.Items(ctx, tracker, sq)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]api.Item, len(items))
	for i, it := range items {
		out[i] = api.Item{Seq: it.Seq, ID: it.ID, Time: it.Time, Data: it.Data, Size: it.Size}
	}
	return out, nil
}

func parseSince(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("want RFC 3339 or Unix seconds")
	}
	return t, nil
}

func (a *Agent) scheduler() (*scheduler.Scheduler, error) {
	if a.sched == nil {
		return nil, api.Errorf(api.ErrNotFound, "the scheduler is disabled in the config")
	}
	return a.sched, nil
}

// Jobs lists the jobs.
func (a *Agent) Jobs(ctx context.Context) ([]wire.Job, error) {
	s, err := a.scheduler()
	if err != nil {
		return []wire.Job{}, nil
	}
	return s.Jobs(ctx), nil
}

// RunJob runs a job now.
func (a *Agent) RunJob(ctx context.Context, name string) (wire.JobRun, error) {
	s, err := a.scheduler()
	if err != nil {
		return wire.JobRun{}, err
	}
	r, err := s.RunNow(ctx, name)
	if errors.Is(err, scheduler.ErrUnknownJob) {
		return r, api.Errorf(api.ErrNotFound, "no job named %q", name)
	}
	return r, unavailable(err)
}

// JobRuns lists a job's runs.
func (a *Agent) JobRuns(ctx context.Context, name string, limit int, before int64) ([]wire.JobRun, error) {
	s, err := a.scheduler()
	if err != nil {
		return nil, err
	}
	rs, err := s.RunsBefore(ctx, name, limit, before)
	if errors.Is(err, scheduler.ErrUnknownJob) {
		return nil, api.Errorf(api.ErrNotFound, "no job named %q", name)
	}
	return rs, unavailable(err)
}
