package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/internal/dirlock"
	"github.com/rouse-dev/rouse/internal/perm"
	"github.com/rouse-dev/rouse/platform/clockwatch"
	"github.com/rouse-dev/rouse/platform/netwatch"
	"github.com/rouse-dev/rouse/platform/notify"
	"github.com/rouse-dev/rouse/platform/power"
	"github.com/rouse-dev/rouse/scheduler"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// Options configure an Agent.
type Options struct {
	// Config is the config to run. Nil: LoadConfig reads it at boot step 1,
	// after the data directory is locked and /healthz answers.
	Config *config.Config
	// Kinds are the tracker kinds the config may name, the same set it is
	// parsed against; config reloads are parsed against it too.
	Kinds trackers.Kinds
	// LoadConfig reads and validates the config when Config is nil; its
	// error makes Run fail with ExitBadConfig.
	LoadConfig func() (*config.Config, error)
	ConfigPath string // watched for live edits; "" runs the embedded default unwatched
	DataDir    string // the lock, the store, the API token (required)
	// Listen is the REST API's address. Boot step 0 binds it before the
	// config is read, so it is taken from here, else from Config, else
	// wire.DefaultListen; AllowNonLoopback and MaxEventStreams likewise.
	Listen           string
	AllowNonLoopback bool
	MaxEventStreams  int
	Logger           *slog.Logger // nil: slog.Default()
	Version          string
	// Power watches sleep and wake (logind on Linux, the clock fallback,
	// Windows power events) with PowerOptions (start from
	// power.DefaultOptions()). Off only in tests that drive wakes by hand.
	Power        bool
	PowerOptions power.Options
	// Network watches the network (netlink on Linux); off: always online.
	Network   bool
	Dashboard http.Handler // served at GET /

	// noAPI leaves the REST API out: tests in a synctest bubble, where a
	// listening socket would stop the fake clock.
	noAPI bool
}

// ExitBadConfig is the exit code of a bad config: 78, EX_CONFIG from
// sysexits.h. Not 2, which the Go runtime uses for a panic, a fatal error
// and SIGABRT (systemd's watchdog signal) — those must be restarted, a bad
// config must not.
const ExitBadConfig = 78

// ExitError carries the exit code the CLI should use.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// New prepares an agent; Run starts it.
func New(o Options) (*Agent, error) {
	if o.Config == nil && o.LoadConfig == nil {
		return nil, errors.New("agent: no config")
	}
	if o.DataDir == "" {
		return nil, errors.New("agent: no data directory")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a := &Agent{
		opts:    o,
		log:     o.Logger,
		cfg:     o.Config,
		events:  newBus(),
		metrics: newMetrics(),
		kick:    make(chan struct{}, 1),
		stateQ:  make(chan store.StateEvent, 4096),
		flushQ:  make(chan chan struct{}),
	}
	a.gate = newGate(a)
	return a, nil
}

// StorePath is where the agent keeps its SQLite store.
func StorePath(dataDir string) string { return filepath.Join(dataDir, "rouse.db") }

// Run boots the agent (boot), starts its loops and the boot restore, and
// runs until ctx is done; then it shuts down: components in reverse
// dependency order, the API, the store, the lock. An *ExitError says which
// exit code fits.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.boot(ctx); err != nil {
		if ctx.Err() != nil {
			// Told to stop while booting (systemctl stop during start):
			// a clean stop, not a failure.
			a.log.Info("stopped while booting", "err", err)
			return nil
		}
		return err
	}
	a.startLoops()
	// 4. Restore what the user had active, concurrently.
	if _, err := a.startWake("boot", time.Now().Round(0).UTC(), 0, false); err != nil {
		a.log.Error("cannot record the boot restore", "err", err)
	}
	// The on-demand entry points, once the components are built.
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	a.syncFronts(cfg)
	<-ctx.Done()
	a.stop()
	return nil
}

// boot runs boot steps 0 to 3, everything that can fail, before any
// component or loop runs:
//
//  0. lock the data directory (one agent per directory: exit 1), then
//     answer /healthz at once (/readyz and the rest say "starting");
//  1. the config (exit 78);
//  2. the store (exit 1);
//  3. the units and the scheduler (exit 78), then the whole REST API.
//
// When a step fails it undoes what the earlier ones did, in reverse (the
// API stops, the store closes, the lock is released: start with rollback)
// and returns an *ExitError. On success stop undoes them at the end. Tests
// build their agents through boot too.
func (a *Agent) boot(ctx context.Context) (err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			return
		}
		a.undo = undo
	}()
	fail := func(code int, err error) error { return &ExitError{Code: code, Err: err} }
	a.startedAt = time.Now().Round(0).UTC()

	// 0. The data directory (0700, ours: internal/perm) and its lock,
	// before anything is opened, swept or killed.
	if err := perm.Dir(a.opts.DataDir); err != nil {
		return fail(1, fmt.Errorf("data directory: %w", err))
	}
	lock, err := dirlock.Acquire(a.opts.DataDir)
	if err != nil {
		return fail(1, err)
	}
	undo = append(undo, func() {
		if err := lock.Release(); err != nil {
			a.log.Warn("cannot release the data directory's lock", "err", err)
		}
	})
	// Long-lived goroutines run under runCtx, which outlives ctx until the
	// components have stopped in order.
	runCtx, runCancel := context.WithCancel(context.WithoutCancel(ctx))
	a.runCtx, a.cancelRun = runCtx, runCancel
	undo = append(undo, runCancel)
	if !a.opts.noAPI {
		stopAPI, err := a.serveAPI(ctx)
		if err != nil {
			return err
		}
		a.stopAPI = stopAPI
		undo = append(undo, stopAPI, a.gate.shut) // (undone in reverse: calls waiting for the boot end first)
	}

	// 1. The config.
	if a.cfg == nil {
		a.gate.setPhase("reading the config")
		cfg, err := loadAtBoot(a.opts.LoadConfig)
		if err != nil {
			return fail(ExitBadConfig, err)
		}
		a.mu.Lock()
		a.cfg = cfg
		a.mu.Unlock()
	}
	a.setStreamCap(a.cfg)

	// 2. The store. Failing here is fatal.
	a.gate.setPhase("opening the store")
	a.store, err = store.Open(ctx, StorePath(a.opts.DataDir), store.Options{Logger: a.log})
	if err != nil {
		return fail(1, fmt.Errorf("cannot open the store: %w", err))
	}
	undo = append(undo, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.store.Close(cctx); err != nil && !errors.Is(err, store.ErrClosed) {
			a.log.Error("cannot close the store", "err", err)
		}
	})
	a.unclean = a.store.UncleanShutdown()
	desired, err := a.store.Desired(ctx)
	if err != nil {
		return fail(1, fmt.Errorf("cannot read the components' desired state: %w", err))
	}

	// 3. The parts components need, the components, then the whole API.
	a.gate.setPhase("building the components")
	if a.opts.Network {
		w := netwatch.New(netwatch.Options{Logger: a.log.With("component", "netwatch")})
		a.net, a.netw = w, w
	}
	if err := a.newScheduler(a.cfg); err != nil {
		return fail(ExitBadConfig, err)
	}
	units, names, g, err := a.buildUnits(a.cfg, nil, desired)
	if err != nil {
		return fail(ExitBadConfig, err)
	}
	a.mu.Lock()
	a.units, a.names, a.graph = units, names, g
	a.mu.Unlock()
	// The on-demand entry points' addresses, bound before anyone can see
	// the components (Run serves them once the boot restore began).
	a.bindFronts(a.cfg)
	a.gate.openUp()
	return nil
}

// serveAPI is boot step 0's API: it binds the address and serves through
// the gate, which answers "starting" until boot step 3. It returns the
// function that stops it and waits.
func (a *Agent) serveAPI(ctx context.Context) (stop func(), err error) {
	token, err := api.LoadOrCreateToken(a.opts.DataDir)
	if err != nil {
		return nil, &ExitError{Code: 1, Err: err}
	}
	listen, allow, streams := a.opts.Listen, a.opts.AllowNonLoopback, a.opts.MaxEventStreams
	if a.cfg != nil {
		if listen == "" {
			listen, allow = a.cfg.Listen, a.cfg.AllowNonLoopback
		}
		if streams == 0 {
			streams = a.cfg.MaxEventStreams
		}
	}
	srv, err := api.New(a.gate, api.Options{
		Listen: listen, AllowNonLoopback: allow, Token: token,
		Metrics: a.metrics.reg, Dashboard: a.opts.Dashboard, Logger: a.log, Version: a.opts.Version,
		MaxEventStreams: streams,
	})
	if err != nil {
		return nil, &ExitError{Code: ExitBadConfig, Err: err}
	}
	if err := srv.Listen(); err != nil {
		return nil, &ExitError{Code: 1, Err: err}
	}
	a.apiAddr = srv.Addr().String()
	a.apiSrv = srv
	apiCtx, apiCancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(apiCtx); err != nil && apiCtx.Err() == nil {
			a.log.Error("REST API stopped", "err", err)
		}
	})
	return sync.OnceFunc(func() { apiCancel(); wg.Wait() }), nil
}

// startLoops starts what runs for the agent's whole life: the service
// manager's watchdog, the state writer, the heartbeat, and the watchers
// (network, config, sleep and wake, wall clock). Nothing here can fail.
func (a *Agent) startLoops() {
	runCtx := a.runCtx
	a.log.Info("rouse is up", "version", a.opts.Version, "listen", a.apiAddr, "data", a.opts.DataDir,
		"config", a.cfg.Source, "components", len(a.allUnits()), "unclean_shutdown", a.unclean)
	if err := notify.Ready(); err != nil {
		a.log.Warn("cannot notify the service manager", "err", err)
	}
	a.goRun(func() { notify.Watchdog(runCtx) })
	a.goRun(func() { a.stateWriter(runCtx) })
	a.goRun(func() { a.renderViews(runCtx) })
	a.goRun(func() { a.heartbeat(runCtx) })
	if a.unclean {
		a.goRun(func() { a.checkAfterUncleanShutdown(runCtx) })
	}
	if w := a.netw; w != nil {
		a.watch("network watch", w.Run)
		ch, unsub := w.Subscribe()
		forward(a, ch, unsub, func(s netwatch.Status) {
			a.log.Info("network changed", "online", s.Online, "reason", s.Reason)
			if s.Online {
				a.kickHeartbeat()
			}
		})
	}
	if a.opts.ConfigPath != "" {
		w := config.NewWatcher(a.opts.ConfigPath, a.opts.Kinds, a.log.With("component", "config"), a.onConfig)
		w.Loaded(a.cfg)
		a.watch("config watch", w.Run)
	}
	if a.opts.Power {
		po := a.opts.PowerOptions
		if po.Logger == nil {
			po.Logger = a.log
		}
		if po.Budget == 0 {
			po.Budget = a.cfg.Sleep.Budget
		}
		m := power.New(po)
		a.mu.Lock()
		a.power = m
		a.mu.Unlock()
		a.watch("sleep and wake watch", func(ctx context.Context) error { return m.Run(ctx, a) })
		// Wall-clock sets re-arm the scheduler at once (a notification on
		// Linux), so its loop need not poll the clock.
		cw := clockwatch.New(a.log)
		clockCh, unsubClock := cw.Subscribe()
		a.watch("wall-clock watch", cw.Run)
		forward(a, clockCh, unsubClock, func(struct{}) {
			if a.sched != nil {
				a.sched.ClockChanged()
			}
		})
	}
}

// stop ends what Run started: components in reverse dependency order,
// every loop, then what boot set up (the API, the store, the lock), in
// reverse.
func (a *Agent) stop() {
	a.shutdown()
	a.cancelRun()
	a.wg.Wait()
	_ = notify.Stopping()
	if a.stopAPI != nil {
		a.stopAPI() // before the store closes under its handlers
	}
	for i := len(a.undo) - 1; i >= 0; i-- {
		a.undo[i]()
	}
	a.undo = nil
}

// watch runs one of the agent's watchers (network, power, clock, config)
// until the agent stops, logging if it gives up early.
func (a *Agent) watch(what string, run func(context.Context) error) {
	ctx := a.runCtx
	a.goRun(func() {
		if err := run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error(what+" stopped", "err", err)
		}
	})
}

// forward calls f for each value a watcher's subscription delivers, until
// the agent stops; then it unsubscribes.
func forward[T any](a *Agent, ch <-chan T, unsub func(), f func(T)) {
	ctx := a.runCtx
	a.goRun(func() {
		defer unsub()
		for {
			select {
			case <-ctx.Done():
				return
			case v, ok := <-ch:
				if !ok {
					return
				}
				f(v)
			}
		}
	})
}

// goRun starts an agent-owned goroutine.
func (a *Agent) goRun(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// buildUnits builds the units of cfg. Units in old whose config did not
// change are kept as they are (same component, same Run).
func (a *Agent) buildUnits(cfg *config.Config, old map[string]*unit, desired map[string]bool) (map[string]*unit, []string, *graph, error) {
	units := map[string]*unit{}
	managed := cfg.OnDemandManaged()
	var names []string
	var nodes []node
	add := func(u *unit) {
		units[u.name] = u
		names = append(names, u.name)
		nodes = append(nodes, node{name: u.name, required: u.required, optional: u.optional})
	}
	for _, t := range cfg.Trackers {
		var req, opt, restartOn []string
		for _, d := range t.DependsOn {
			switch {
			case d.Optional:
				opt = append(opt, d.Name)
			case d.Restart:
				restartOn = append(restartOn, d.Name)
				fallthrough
			default:
				req = append(req, d.Name)
			}
		}
		k, ok := a.opts.Kinds.Lookup(t.Kind)
		if !ok {
			return nil, nil, nil, fmt.Errorf("%s: tracker %q: unknown kind %q", cfg.Source, t.Name, t.Kind)
		}
		deadline := t.Deadline
		if deadline == 0 {
			deadline = cfg.Deadlines.Tracker
		}
		needsNet := k.NeedsNetwork
		if t.NeedsNetwork != nil {
			needsNet = *t.NeedsNetwork
		}
		counts := t.Required == nil || *t.Required
		demand := managed[t.Name]
		hash := fmt.Sprintf("%s|%s|%v|%v|%v|%v", t.Hash, deadline, t.DeadlineAuto, needsNet, counts, demand)
		if ou, ok := old[t.Name]; ok && ou.hash == hash {
			add(ou)
			continue
		}
		log := a.log.With("component", t.Name)
		deps := trackers.Deps{Name: t.Name, Store: a.store, Logger: log, Metrics: a.metrics.reg,
			StateDir: filepath.Join(a.opts.DataDir, "run", t.Name)}
		if a.net != nil {
			deps.Network = a.net
		}
		comp, err := k.New(t.Options, deps)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s:%d: trackers %q: %w", cfg.Source, t.Line, t.Name, err)
		}
		hc, err := newHealth(&t, comp)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s:%d: trackers %q: %w", cfg.Source, t.Line, t.Name, err)
		}
		nu := a.newUnit(t.Name, t.Kind, comp, req, opt, deadline, needsNet, counts, hash, log, desired)
		if demand {
			// Started by its chain, not at boot: idle until then (unless
			// the user stopped it).
			nu.demand = true
			if !nu.stopped {
				a.metrics.state(nu.name, nu.state, stateIdle)
				nu.state = stateIdle
			}
		}
		nu.health = hc
		nu.startLimit, nu.startWindow = t.Limits()
		nu.autoDeadline = t.DeadlineAuto
		nu.restartOn = restartOn
		add(nu)
	}
	if a.sched != nil {
		deadline := cfg.Scheduler.Deadline
		if deadline == 0 {
			deadline = cfg.Deadlines.Scheduler
		}
		hash := fmt.Sprintf("scheduler|%s", deadline)
		if ou, ok := old["scheduler"]; ok && ou.hash == hash {
			add(ou)
		} else {
			nu := a.newUnit("scheduler", "scheduler", a.sched, nil, nil, deadline, false, true, hash, a.log.With("component", "scheduler"), desired)
			nu.startLimit, nu.startWindow = config.DefaultStartLimit, config.DefaultStartWindow
			add(nu)
		}
	}
	g, err := newGraph(nodes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", cfg.Source, err)
	}
	return units, names, g, nil
}

func (a *Agent) newUnit(name, kind string, comp trackers.Component, req, opt []string, deadline time.Duration, needsNet, counts bool, hash string, log *slog.Logger, desired map[string]bool) *unit {
	u := &unit{
		name: name, kind: kind, comp: comp, required: req, optional: opt, deadline: deadline,
		needsNet: needsNet, counts: counts, hash: hash, log: log,
		state: trackers.StateWaiting, since: time.Now().Round(0).UTC(), changed: make(chan struct{}),
	}
	if active, ok := desired[name]; ok && !active {
		u.stopped = true
		u.state = trackers.StateStopped
	}
	a.metrics.state(name, "", u.state)
	return u
}

// startWake records a wake and starts its restore in the background; it
// returns the recorded wake. A restore under way is cancelled first: the
// new wake supersedes it.
func (a *Agent) startWake(detectedBy string, at time.Time, slept time.Duration, resume bool) (wire.Wake, error) {
	a.mu.Lock()
	if a.restoreEnd != nil {
		a.restoreEnd()
	}
	a.mu.Unlock()
	a.supersedeChains(triggerWake, at)
	a.restoreMu.Lock()
	ctx, cancel := context.WithCancel(a.runCtx)
	a.mu.Lock()
	sleptAt := a.sleptAt
	a.asleep, a.waking, a.restoreEnd = false, true, cancel
	a.mu.Unlock()
	a.metrics.wakes.With(detectedBy).Inc()
	if a.net != nil {
		a.net.Recheck()
	}
	w := wire.Wake{DetectedBy: detectedBy, WokeAt: at, SleptSeconds: slept.Seconds()}
	if !sleptAt.IsZero() && detectedBy != "boot" {
		sa := sleptAt
		w.SleptAt = &sa
		if slept == 0 && at.After(sleptAt) {
			w.SleptSeconds = at.Sub(sleptAt).Seconds()
		}
	}
	pub := w // subscribers encode the event later: never hand them w, which changes below
	a.events.publish(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: wire.PhaseWaking, Wake: &pub}})
	a.reopenStore(ctx)
	id, err := a.store.CreateWake(ctx, w)
	if err != nil {
		a.log.Error("cannot record the wake", "err", err)
	}
	w.ID = id
	a.mu.Lock()
	a.sleptAt = time.Time{}
	sleepRuns := a.sleepRuns
	a.sleepRuns = nil
	a.mu.Unlock()
	if a.sched != nil && detectedBy != "boot" && id != 0 {
		// The @sleep hooks' runs belong to this wake; the @wake hooks run
		// now, beside the restore, each waiting for the network if it
		// needs it.
		if err := a.store.SetJobRunsWake(ctx, id, sleepRuns); err != nil {
			a.log.Warn("cannot record the wake of the @sleep jobs' runs", "wake", id, "err", err)
		}
		runCtx := a.runCtx
		a.goRun(func() { a.sched.RunHooks(runCtx, scheduler.ScheduleWake, id) })
	}
	a.log.Info("waking", "wake", w.ID, "detected_by", detectedBy, "slept", time.Duration(w.SleptSeconds*float64(time.Second)).Round(time.Second))
	a.learnDeadlines(ctx, a.activeUnits())
	units := a.prepareRestore(resume)
	rw := w // the restore fills in its own copy
	a.goRun(func() {
		defer a.restoreMu.Unlock()
		defer cancel()
		a.restore(ctx, &rw, units, resume)
	})
	return w, err
}

// reopenStore reopens the store when it is closed or no longer the file
// on disk, retrying under its own deadline; the API answers meanwhile.
func (a *Agent) reopenStore(ctx context.Context) {
	if a.store.State() == wire.StoreOpen && a.store.Verify() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	wait := backoff.Retry{Policy: backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}}
	for attempt := 1; ; attempt++ {
		err := a.store.Reopen(ctx)
		if err == nil {
			if attempt > 1 {
				a.log.Info("store reopened", "attempts", attempt)
			}
			return
		}
		a.log.Warn("cannot reopen the store", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			a.log.Error("gave up reopening the store; components that need it will fail and be retried", "err", err)
			return
		case <-time.After(wait.Next()):
		}
	}
}

// BeforeSleep is the pre-sleep work (power.Handler): pause components
// under a short grace, make committed rows durable, close the store.
func (a *Agent) BeforeSleep(ctx context.Context, ev power.Event) {
	t0 := time.Now()
	a.mu.Lock()
	if a.asleep {
		a.mu.Unlock()
		return
	}
	a.asleep = true
	a.sleptAt = ev.At
	if a.sleptAt.IsZero() {
		a.sleptAt = time.Now().Round(0).UTC()
	}
	if a.restoreEnd != nil {
		a.restoreEnd()
	}
	grace := a.cfg.Sleep.PauseGrace
	a.mu.Unlock()
	a.supersedeChains("", time.Time{})
	a.events.publish(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: wire.PhaseSleeping}})
	if a.sched != nil {
		// @sleep hooks first, inside the budget less what the pause and
		// the store need after them; a run still going then is killed.
		hctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok {
			hctx, cancel = context.WithDeadline(ctx, dl.Add(-grace-sleepStoreReserve))
		}
		ids := a.sched.RunHooks(hctx, scheduler.ScheduleSleep, 0)
		cancel()
		a.mu.Lock()
		a.sleepRuns = ids
		a.mu.Unlock()
	}
	pctx, cancel := context.WithTimeout(ctx, grace)
	var wg sync.WaitGroup
	for _, u := range a.allUnits() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.pauseUnit(pctx, u)
		}()
	}
	wg.Wait()
	cancel()
	paused := time.Since(t0)
	a.flushStateEvents(ctx)
	t1 := time.Now()
	if err := a.store.Checkpoint(ctx, "FULL"); err != nil {
		a.log.Warn("cannot checkpoint the store before sleep", "err", err)
	}
	checkpointed := time.Since(t1)
	if err := a.store.Close(ctx); err != nil {
		a.log.Warn("cannot close the store before sleep", "err", err)
	}
	d := time.Since(t0)
	a.metrics.preSleepDur.Update(d.Seconds())
	a.log.Info("ready for sleep", "duration", d.Round(time.Millisecond), "pause", paused.Round(time.Millisecond),
		"checkpoint", checkpointed.Round(time.Millisecond), "budget_left", budgetLeft(ctx))
	a.events.publish(wire.Event{Type: wire.EventWake, Wake: &wire.WakeEvent{Phase: wire.PhaseAsleep}})
}

// sleepStoreReserve is the part of the sleep budget kept, after the
// @sleep hooks and the pause, for writing the state and closing the store.
const sleepStoreReserve = 500 * time.Millisecond

func budgetLeft(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl).Round(time.Millisecond)
	}
	return 0
}

// pauseUnit quiesces one component before sleep.
func (a *Agent) pauseUnit(ctx context.Context, u *unit) {
	u.mu.Lock()
	r, stopped := u.run, u.stopped || u.parkedLocked() // an idle chain member stays idle
	u.mu.Unlock()
	if stopped {
		return
	}
	if r != nil {
		if _, ok := u.comp.(trackers.Resumer); ok {
			if p, ok := u.comp.(trackers.Pauser); ok {
				p.Pause(ctx)
			}
		} else if err := a.stopRun(ctx, u); err != nil {
			u.log.Warn("did not pause in time", "err", err)
		}
	}
	a.setState(u, trackers.StatePaused, nil)
}

// AfterWake is called once per resume (power.Handler).
func (a *Agent) AfterWake(ev power.Event) {
	at := ev.At
	if at.IsZero() {
		at = time.Now().Round(0).UTC()
	}
	a.goRun(func() {
		if _, err := a.startWake(ev.DetectedBy, at, ev.Slept, true); err != nil {
			a.log.Error("wake", "err", err)
		}
	})
}

// shutdown stops components in reverse dependency order under the
// shutdown timeout: a component stops once everything that requires it
// has stopped.
func (a *Agent) shutdown() {
	a.mu.Lock()
	a.closing = true
	if a.restoreEnd != nil {
		a.restoreEnd()
	}
	timeout := a.cfg.ShutdownTimeout
	g := a.graph
	a.mu.Unlock()
	a.stopFronts() // no demand arrives while the components stop
	a.supersedeChains("", time.Time{})
	a.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := map[string]chan struct{}{}
	for _, n := range g.order {
		done[n] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, n := range g.order {
		u := a.unit(n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[n])
			for _, d := range g.dependents[n] {
				select {
				case <-done[d]:
				case <-ctx.Done():
				}
			}
			if err := a.stopRun(ctx, u); err != nil {
				u.log.Warn("did not stop in time", "err", err)
			}
		}()
	}
	wg.Wait()
	a.events.closeAll()
}

// onConfig applies a valid edit or records why an edit was rejected.
func (a *Agent) onConfig(cfg *config.Config, err error) {
	if err != nil {
		a.mu.Lock()
		a.configErr = err.Error()
		a.mu.Unlock()
		a.log.Error("config edit rejected; the running config stays", "err", err)
		a.events.publish(wire.Event{Type: wire.EventConfig, Config: &wire.ConfigState{State: "rejected", Path: a.opts.ConfigPath, Error: err.Error()}})
		return
	}
	if err := a.applyConfig(cfg); err != nil {
		a.mu.Lock()
		a.configErr = err.Error()
		a.mu.Unlock()
		a.log.Error("config edit rejected; the running config stays", "err", err)
		a.events.publish(wire.Event{Type: wire.EventConfig, Config: &wire.ConfigState{State: "rejected", Path: a.opts.ConfigPath, Error: err.Error()}})
		return
	}
	a.mu.Lock()
	a.configErr = ""
	a.mu.Unlock()
	a.events.publish(wire.Event{Type: wire.EventConfig, Config: &wire.ConfigState{State: "ok", Path: a.opts.ConfigPath}})
}

// applyConfig switches to cfg, restarting only the components whose
// config changed.
// setStreamCap applies max_event_streams to the API, unless Options set it.
func (a *Agent) setStreamCap(cfg *config.Config) {
	if a.apiSrv != nil && cfg != nil && a.opts.MaxEventStreams == 0 {
		a.apiSrv.SetMaxEventStreams(cfg.MaxEventStreams)
	}
}

func (a *Agent) applyConfig(cfg *config.Config) error {
	a.setStreamCap(cfg)
	desired, err := a.store.Desired(a.runCtx)
	if err != nil {
		return fmt.Errorf("cannot read desired state: %w", err)
	}
	a.mu.Lock()
	old := a.units
	a.mu.Unlock()
	if a.sched != nil {
		if err := a.sched.SetJobs(a.jobs(cfg)); err != nil {
			return err
		}
	}
	units, names, g, err := a.buildUnits(cfg, old, desired)
	if err != nil {
		return err
	}
	var gone, fresh []*unit
	for n, ou := range old {
		if units[n] != ou {
			gone = append(gone, ou)
		}
	}
	for n, u := range units {
		if old[n] != u {
			fresh = append(fresh, u)
			if ou := old[n]; ou != nil {
				// The same component under a changed config: starting it
				// again is a restart, and its history stays.
				prev := ou.snapshot()
				ou.mu.Lock()
				holders := maps.Clone(ou.holders)
				ou.mu.Unlock()
				u.mu.Lock()
				u.launched, u.restarts, u.lastExit = true, prev.restarts, prev.lastExit
				if u.demand && len(holders) > 0 {
					// Held by a running chain: it comes back up with the
					// new config (sweepHolds drops holds that no longer fit).
					u.holders = holders
					c := a.setStateLocked(u, trackers.StateWaiting, nil)
					u.mu.Unlock()
					a.afterChange(c)
				} else {
					u.mu.Unlock()
				}
			}
		}
	}
	a.mu.Lock()
	a.cfg, a.units, a.names, a.graph = cfg, units, names, g
	a.mu.Unlock()
	// A config change gives every component that hit its start limit
	// another go (the kept ones; fresh ones start with none).
	for _, u := range units {
		u.mu.Lock()
		u.unlimitLocked()
		u.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(a.runCtx, cfg.ShutdownTimeout)
	defer cancel()
	for _, u := range gone {
		if err := a.stopRun(ctx, u); err != nil {
			u.log.Warn("did not stop in time", "err", err)
		}
		if _, still := units[u.name]; !still {
			a.metrics.forget(u.name)
		}
	}
	removed := 0
	for n := range old {
		if _, ok := units[n]; !ok {
			removed++
		}
	}
	a.log.Info("config applied", "started", len(fresh), "removed", removed, "components", len(names))
	a.reshapeChains()
	a.sweepHolds()
	a.followFronts(cfg)
	a.learnDeadlines(ctx, fresh)
	for _, u := range fresh {
		u.mu.Lock()
		skip := u.stopped || u.parkedLocked()
		u.mu.Unlock()
		if skip {
			continue
		}
		u.mu.Lock()
		u.op++
		u.mu.Unlock()
		a.goRun(func() {
			bctx, cancel := context.WithTimeout(a.runCtx, cfg.Deadlines.Wake)
			defer cancel()
			a.bringUp(bctx, u, false)
			a.release(u)
		})
	}
	a.kickHeartbeat()
	return nil
}

// stateBatchWindow is how long the state writer gathers a burst.
const stateBatchWindow = 50 * time.Millisecond

// stateWriter stores state events off the hot path, a burst in one
// transaction: the first event of a burst opens a short window, and what
// arrives meanwhile is written with it. While the store is closed (asleep)
// events wait in memory, bounded. A flush request (before sleep) writes at
// once and answers when done.
func (a *Agent) stateWriter(ctx context.Context) {
	const maxPending = 10000
	var pending []store.StateEvent
	var window *time.Timer
	write := func() {
		if window != nil {
			window.Stop()
			window = nil
		}
		if len(pending) > maxPending {
			a.metrics.droppedEvents.Add(len(pending) - maxPending)
			pending = pending[len(pending)-maxPending:]
		}
		err := a.store.AddStateEvents(context.WithoutCancel(ctx), pending)
		switch {
		case err == nil:
			pending = pending[:0]
		case errors.Is(err, store.ErrClosed):
			// Kept for after the wake.
		default:
			a.log.Warn("cannot store state events", "count", len(pending), "err", err)
			pending = pending[:0]
		}
	}
	for {
		var windowEnd <-chan time.Time
		if window != nil {
			windowEnd = window.C
		}
		select {
		case <-ctx.Done():
			if window != nil {
				window.Stop()
			}
			return
		case ev := <-a.stateQ:
			pending = append(pending, ev)
			if len(pending) >= maxPending {
				write()
			} else if window == nil {
				window = time.NewTimer(stateBatchWindow)
			}
		case <-windowEnd:
			window = nil
			write()
		case done := <-a.flushQ:
		drain:
			for {
				select {
				case ev := <-a.stateQ:
					pending = append(pending, ev)
				default:
					break drain
				}
			}
			write()
			close(done)
		}
	}
}

// flushStateEvents has the state writer store what it holds now, waiting
// at most until ctx is done (the pre-sleep budget) and 200 ms.
func (a *Agent) flushStateEvents(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	select {
	case a.flushQ <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// checkAfterUncleanShutdown runs quick_check in the background after the
// API listens, never on the boot path.
func (a *Agent) checkAfterUncleanShutdown(ctx context.Context) {
	t0 := time.Now()
	if err := a.store.QuickCheck(ctx); err != nil {
		a.log.Error("store check after an unclean shutdown failed", "err", err, "duration", time.Since(t0).Round(time.Millisecond))
		return
	}
	a.log.Info("store checked after an unclean shutdown", "result", "ok", "duration", time.Since(t0).Round(time.Millisecond))
}

var _ power.Handler = (*Agent)(nil)
var _ api.Backend = (*Agent)(nil)

// bootGCPercent is the GC percent while the config is read at boot.
const bootGCPercent = 200

// loadAtBoot calls load with the GC percent raised to bootGCPercent (unless
// it is already higher, or off) and restores it after. Parsing a config
// allocates a few times the file's size in short-lived YAML nodes, and a
// fresh process starts with a 4 MB heap goal: at the default 100 the GC
// ran twice during the load of a 1,000-entry config (185 KB), which took
// 30.0 ms (median of 25 fresh processes, load average 3); at 200 it did
// not run and the load took 26.6 ms, for 0.6 MB more peak RSS. The higher
// percent is bounded: the heap may reach three times what is live, for
// the one call.
func loadAtBoot(load func() (*config.Config, error)) (*config.Config, error) {
	prev := debug.SetGCPercent(bootGCPercent)
	if prev < 0 || prev > bootGCPercent {
		debug.SetGCPercent(prev)
	} else {
		defer debug.SetGCPercent(prev)
	}
	return load()
}
