package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/platform/power"
	"github.com/rouse-dev/rouse/trackers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// probe is a component with a known start latency; its behaviour is
// steered by the test. It stands in for the outside world a real tracker
// would wait on.
type probe struct {
	latency time.Duration
	failN   int32 // the first failN runs return an error at once
	never   bool  // never ready
	// crashing: Run supervises a child of its own that exits at once and
	// is started again a second later, reporting each exit as exec does.
	crashing bool
	children atomic.Int32
	resumer  bool
	runs     atomic.Int32
	resumes  atomic.Int32
	pauses   atomic.Int32
	readyAt  atomic.Int64 // unix nanos of the last ready report
	stopped  func(name string)
	name     string
	mu       sync.Mutex
	host     trackers.Host
	ready    chan struct{} // closed by the test to make a never-ready probe ready
	// waitUser: Run reports waiting for the user with this error first
	// (as a Roon extension not enabled yet does).
	waitUser string
	// check is its readiness check (trackers.Checker), the health check
	// of a spec with health; nil passes.
	check func(ctx context.Context) error
}

// Check runs the probe's check (trackers.Checker).
func (p *probe) Check(ctx context.Context) error {
	if p.check == nil {
		return nil
	}
	return p.check(ctx)
}

func (p *probe) Run(ctx context.Context, h trackers.Host) error {
	n := p.runs.Add(1)
	p.mu.Lock()
	p.host = h
	p.mu.Unlock()
	if n <= p.failN {
		return errors.New("refused")
	}
	if p.crashing {
		for {
			p.children.Add(1)
			h.Report(trackers.StateStarting, nil)
			h.Report(trackers.StateStarting, exitCoder{1})
			if x, ok := h.(trackers.ExitReporter); ok {
				x.Exited(exitCoder{1}, time.Second)
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
		}
	}
	defer func() {
		if p.stopped != nil {
			p.stopped(p.name)
		}
	}()
	if p.waitUser != "" {
		h.Report(trackers.StateWaiting, errors.New(p.waitUser))
	}
	if p.never {
		select {
		case <-p.ready:
			p.report(h)
		case <-ctx.Done():
			return nil
		}
	} else {
		select {
		case <-time.After(p.latency):
			p.report(h)
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func (p *probe) report(h trackers.Host) {
	p.readyAt.Store(time.Now().UnixNano())
	h.Report(trackers.StateReady, nil)
}

// resumingProbe survives sleep in place.
type resumingProbe struct{ *probe }

func (p resumingProbe) Resume(ctx context.Context) {
	p.resumes.Add(1)
	p.mu.Lock()
	h := p.host
	p.mu.Unlock()
	go func() {
		time.Sleep(p.latency)
		p.report(h)
	}()
}

func (p resumingProbe) Pause(ctx context.Context) { p.pauses.Add(1) }

// probeOptions carry the probe a test set up for one tracker.
type probeOptions struct{ p *probe }

// probeKind builds each tracker's component from the probe in its options;
// test agents are given it as their only kind.
var probeKind = trackers.Kind{
	Name:       "probe",
	NewOptions: func() any { return &probeOptions{} },
	New: func(opts any, d trackers.Deps) (trackers.Component, error) {
		o, ok := opts.(*probeOptions)
		if !ok || o.p == nil {
			return nil, errors.New("no probe set up for " + d.Name)
		}
		if o.p.resumer {
			return resumingProbe{o.p}, nil
		}
		return o.p, nil
	},
}

var probeKinds = trackers.NewKinds(probeKind)

// spec is one probe component for a test config.
type spec struct {
	name     string
	p        *probe
	requires []string
	optional []string
	deadline time.Duration
	auto     bool     // deadline: auto
	restart  []string // required dependencies with restart: true
	onDemand *config.OnDemand
	health   *config.Health
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// testAgent builds an agent the way Run does (boot: lock, config, real
// store, units) with the given probes, the scheduler off, and its loops
// (heartbeat, state writer) running — all of Run but the REST API, the OS
// watchers and the boot restore (tests run restores themselves), so it fits
// in a synctest bubble.
func testAgent(t testing.TB, dir string, specs []spec) (*Agent, func()) {
	t.Helper()
	// t.TempDir is 0755; boot refuses a data directory others can read.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	off := false
	cfg.Scheduler.Enabled = &off
	for _, s := range specs {
		s.p.name = s.name
		tr := config.Tracker{Name: s.name, Kind: "probe", Options: &probeOptions{s.p}, Deadline: s.deadline, DeadlineAuto: s.auto, Hash: s.name, OnDemand: s.onDemand, Health: s.health}
		for _, r := range s.requires {
			tr.DependsOn = append(tr.DependsOn, config.Dependency{Name: r, Restart: slices.Contains(s.restart, r)})
		}
		for _, o := range s.optional {
			tr.DependsOn = append(tr.DependsOn, config.Dependency{Name: o, Optional: true})
		}
		cfg.Trackers = append(cfg.Trackers, tr)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // a data directory is private (internal/perm)
		t.Fatal(err)
	}
	a, err := New(Options{Config: cfg, Kinds: probeKinds, DataDir: dir, Logger: discard, noAPI: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.startLoops()
	return a, a.stop
}

func (a *Agent) stateOf(name string) trackers.State { return a.unit(name).snapshot().state }

// restoreNow runs a whole restore and waits for it.
func restoreNow(t testing.TB, a *Agent, by string, resume bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := a.Subscribe(ctx, 0)
	w, err := a.startWake(by, time.Now(), 0, resume)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Wake != nil && ev.Wake.Phase == "done" && ev.Wake.Wake != nil && ev.Wake.Wake.ID == w.ID {
			return
		}
	}
	t.Fatal("the event stream ended before the restore was done")
}

func TestRestore(t *testing.T) {
	t.Run("StartsEachComponentTheMomentItsDependenciesAreReady", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			a0 := &probe{latency: 100 * time.Millisecond}
			b := &probe{latency: 200 * time.Millisecond}
			c := &probe{latency: 50 * time.Millisecond}
			d := &probe{latency: 10 * time.Millisecond}
			a, stop := testAgent(t, dir, []spec{
				{name: "a", p: a0},
				{name: "b", p: b, requires: []string{"a"}},
				{name: "c", p: c},
				{name: "d", p: d, requires: []string{"b", "c"}},
			})
			defer stop()
			t0 := time.Now()
			restoreNow(t, a, "boot", false)
			// Fake time: each component starts exactly when its last
			// required dependency is ready, so d is ready at a+b+d.
			if got := time.Duration(d.readyAt.Load() - t0.UnixNano()); got != 310*time.Millisecond {
				t.Fatalf("d ready after %v, want 310ms", got)
			}
			if got := time.Duration(c.readyAt.Load() - t0.UnixNano()); got != 50*time.Millisecond {
				t.Fatalf("c ready after %v, want 50ms: it depends on nothing", got)
			}
			w := *a.lastWake
			if w.Restore.Ready != 4 || w.Restore.DurationMS != 310 {
				t.Fatalf("summary = %+v", w.Restore)
			}
		})
	})
	t.Run("DegradesASlowComponentWithoutHoldingOthers", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			slow := &probe{never: true, ready: make(chan struct{})}
			dependent := &probe{latency: 5 * time.Millisecond}
			other := &probe{latency: 20 * time.Millisecond}
			opt := &probe{latency: 30 * time.Millisecond}
			a, stop := testAgent(t, dir, []spec{
				{name: "slow", p: slow, deadline: 2 * time.Second},
				{name: "dependent", p: dependent, requires: []string{"slow"}},
				{name: "other", p: other},
				{name: "opt", p: opt, optional: []string{"slow"}},
			})
			defer stop()
			t0 := time.Now()
			restoreNow(t, a, "boot", false)
			if got := time.Since(t0); got != 2*time.Second {
				t.Fatalf("restore took %v, want exactly the slow one's 2s deadline", got)
			}
			if s := a.stateOf("slow"); s != trackers.StateDegraded {
				t.Fatalf("slow is %s, want degraded", s)
			}
			if s := a.stateOf("other"); s != trackers.StateReady {
				t.Fatalf("other is %s, want ready", s)
			}
			if got := time.Duration(opt.readyAt.Load() - t0.UnixNano()); got != 30*time.Millisecond {
				t.Fatalf("an optional dependency held opt until %v", got)
			}
			if s := a.stateOf("dependent"); s != trackers.StateWaiting {
				t.Fatalf("dependent is %s, want waiting for slow", s)
			}
			w := *a.lastWake
			if w.Restore.Ready != 2 || w.Restore.TimedOut != 2 {
				t.Fatalf("summary = %+v", w.Restore)
			}
			// The degraded one goes on trying; the moment it is ready its
			// dependent starts (the heartbeat is kicked, no polling).
			close(slow.ready)
			synctest.Wait()
			if s := a.stateOf("slow"); s != trackers.StateReady {
				t.Fatalf("slow is %s after it became ready", s)
			}
			time.Sleep(5 * time.Millisecond)
			synctest.Wait()
			if s := a.stateOf("dependent"); s != trackers.StateReady {
				t.Fatalf("dependent is %s once slow is ready", s)
			}
		})
	})
	t.Run("RetriesAFailedComponentWithBackoffThenGoesIdle", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			flaky := &probe{latency: time.Millisecond, failN: 3}
			a, stop := testAgent(t, dir, []spec{{name: "flaky", p: flaky}})
			defer stop()
			restoreNow(t, a, "boot", false)
			if s := a.stateOf("flaky"); s != trackers.StateFailed {
				t.Fatalf("flaky is %s, want failed after its first run", s)
			}
			sn := a.unit("flaky").snapshot()
			if wait := time.Until(sn.nextRetry); wait < 0 || wait >= time.Second {
				t.Fatalf("first retry in %v, want within [0, 1s)", wait)
			}
			// Retries 2 and 3 fail with ceilings 2s and 4s; the 4th run works.
			time.Sleep(1*time.Second + 2*time.Second + 4*time.Second + 10*time.Millisecond)
			synctest.Wait()
			if s := a.stateOf("flaky"); s != trackers.StateReady {
				t.Fatalf("flaky is %s after its retries", s)
			}
			if n := flaky.runs.Load(); n != 4 {
				t.Fatalf("runs = %d, want 4", n)
			}
			// Idle: nothing wakes up any more (no polling).
			before := flaky.runs.Load()
			time.Sleep(time.Hour)
			synctest.Wait()
			if flaky.runs.Load() != before {
				t.Fatal("the heartbeat ran something while everything was ready")
			}
		})
	})
	t.Run("KeepsAStoppedComponentStoppedAcrossWakesAndRestarts", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			p := &probe{latency: time.Millisecond}
			a, stop := testAgent(t, dir, []spec{{name: "p", p: p}})
			restoreNow(t, a, "boot", false)
			if _, err := a.Stop(context.Background(), "p"); err != nil {
				t.Fatal(err)
			}
			restoreNow(t, a, "manual", true)
			if s := a.stateOf("p"); s != trackers.StateStopped {
				t.Fatalf("p is %s after a wake, want stopped", s)
			}
			if n := p.runs.Load(); n != 1 {
				t.Fatalf("runs = %d, want 1", n)
			}
			stop()
			// A new agent on the same store: still stopped.
			a, stop = testAgent(t, dir, []spec{{name: "p", p: p}})
			defer stop()
			restoreNow(t, a, "boot", false)
			if s := a.stateOf("p"); s != trackers.StateStopped {
				t.Fatalf("p is %s after a restart, want stopped", s)
			}
			if st, err := a.Start(context.Background(), "p"); err != nil || st != "started" {
				t.Fatalf("start = %q, %v", st, err)
			}
		})
	})
	t.Run("StartReportsStartedWithTimeoutAtTheDeadline", func(t *testing.T) {
		dir := t.TempDir()
		synctest.Test(t, func(t *testing.T) {
			p := &probe{never: true, ready: make(chan struct{})}
			a, stop := testAgent(t, dir, []spec{{name: "p", p: p, deadline: time.Second}})
			defer stop()
			restoreNow(t, a, "boot", false)
			st, err := a.Restart(context.Background(), "p")
			if err != nil || st != "started with timeout" {
				t.Fatalf("restart = %q, %v", st, err)
			}
			if s := a.stateOf("p"); s != trackers.StateDegraded {
				t.Fatalf("p is %s", s)
			}
		})
	})
}

func TestSleepAndWake(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		plain := &probe{latency: 10 * time.Millisecond}
		res := &probe{latency: 20 * time.Millisecond, resumer: true}
		a, stop := testAgent(t, dir, []spec{{name: "plain", p: plain}, {name: "res", p: res}})
		defer stop()
		restoreNow(t, a, "boot", false)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		a.BeforeSleep(ctx, power.Event{Kind: power.Sleep, At: time.Now()})
		cancel()
		if a.store.State() != "closed" {
			t.Fatalf("store is %s before sleep, want closed", a.store.State())
		}
		for _, n := range []string{"plain", "res"} {
			if s := a.stateOf(n); s != trackers.StatePaused {
				t.Fatalf("%s is %s, want paused", n, s)
			}
		}
		if res.pauses.Load() != 1 {
			t.Fatal("the resumer was not paused")
		}
		time.Sleep(2 * time.Hour)
		restoreNow(t, a, "logind", true)
		if a.store.State() != "open" {
			t.Fatalf("store is %s after the wake", a.store.State())
		}
		for _, n := range []string{"plain", "res"} {
			if s := a.stateOf(n); s != trackers.StateReady {
				t.Fatalf("%s is %s after the wake", n, s)
			}
		}
		if plain.runs.Load() != 2 || res.runs.Load() != 1 || res.resumes.Load() != 1 {
			t.Fatalf("plain runs %d (want 2: restarted), res runs %d resumes %d (want 1, 1: resumed in place)",
				plain.runs.Load(), res.runs.Load(), res.resumes.Load())
		}
		ws, err := a.store.Wakes(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 2 || ws[0].DetectedBy != "logind" || ws[0].SleptAt == nil || ws[0].SleptSeconds < 7199 || !ws[0].Done {
			t.Fatalf("wakes = %+v", ws)
		}
	})
}

func TestShutdownStopsDependentsFirst(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		rec := func(n string) { mu.Lock(); order = append(order, n); mu.Unlock() }
		base := &probe{latency: time.Millisecond, stopped: rec}
		mid := &probe{latency: time.Millisecond, stopped: rec}
		top := &probe{latency: time.Millisecond, stopped: rec}
		a, stop := testAgent(t, dir, []spec{
			{name: "top", p: top, requires: []string{"mid"}},
			{name: "mid", p: mid, requires: []string{"base"}},
			{name: "base", p: base},
		})
		restoreNow(t, a, "boot", false)
		stop()
		if len(order) != 3 || order[0] != "top" || order[1] != "mid" || order[2] != "base" {
			t.Fatalf("stop order = %v, want top mid base", order)
		}
	})
}

func TestConfigReloadRestartsOnlyWhatChanged(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		keep := &probe{latency: time.Millisecond}
		change := &probe{latency: time.Millisecond}
		var dropStopped atomic.Bool
		drop := &probe{latency: time.Millisecond, stopped: func(string) { dropStopped.Store(true) }}
		a, stop := testAgent(t, dir, []spec{{name: "keep", p: keep}, {name: "change", p: change}, {name: "drop", p: drop}})
		defer stop()
		restoreNow(t, a, "boot", false)

		changed := &probe{latency: time.Millisecond}
		added := &probe{latency: time.Millisecond}
		cfg := config.Default()
		off := false
		cfg.Scheduler.Enabled = &off
		for _, tr := range []config.Tracker{
			{Name: "keep", Hash: "keep", Options: &probeOptions{keep}},
			{Name: "change", Hash: "change-v2", Options: &probeOptions{changed}},
			{Name: "added", Hash: "added", Options: &probeOptions{added}},
		} {
			tr.Kind = "probe"
			cfg.Trackers = append(cfg.Trackers, tr)
		}
		a.onConfig(cfg, nil)
		synctest.Wait()
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		if keep.runs.Load() != 1 {
			t.Fatalf("an unchanged component was restarted (%d runs)", keep.runs.Load())
		}
		if changed.runs.Load() != 1 || a.stateOf("change") != trackers.StateReady {
			t.Fatalf("the changed component: %d runs, %s", changed.runs.Load(), a.stateOf("change"))
		}
		if added.runs.Load() != 1 || a.stateOf("added") != trackers.StateReady {
			t.Fatalf("the added component: %d runs, %s", added.runs.Load(), a.stateOf("added"))
		}
		if a.unit("drop") != nil {
			t.Fatal("the removed component is still there")
		}
		if drop.runs.Load() != 1 || !dropStopped.Load() {
			t.Fatalf("drop ran %d times, stopped %v: want its one run stopped", drop.runs.Load(), dropStopped.Load())
		}
		if a.Health(context.Background()).Config.State == "rejected" {
			t.Fatal("a valid edit was reported as rejected")
		}

		// An invalid edit is rejected and shown; the running config stays.
		a.onConfig(nil, errors.New("rouse.yaml:3: trackers[0].kind: unknown kind"))
		h := a.Health(context.Background())
		if h.Config.State != "rejected" || h.Config.Error == "" {
			t.Fatalf("config state = %+v", h.Config)
		}
		if len(h.Components) != 3 {
			t.Fatalf("components = %d, want the running 3", len(h.Components))
		}
	})
}

func TestBuiltInJobsCanBeTurnedOff(t *testing.T) {
	cfg, err := config.Parse("rouse.yaml", []byte("maintenance: {quick_check: \"off\"}\n"), probeKinds)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Config: cfg, Kinds: probeKinds, DataDir: t.TempDir(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range a.jobs(cfg) {
		names = append(names, j.Name)
	}
	if len(names) != 1 || names[0] != jobMaintenance {
		t.Fatalf("jobs = %v, want only %s", names, jobMaintenance)
	}
}

func TestANoteIsStreamedAndStored(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		p := &probe{latency: time.Millisecond}
		a, stop := testAgent(t, dir, []spec{{name: "stream", p: p}})
		defer stop()
		restoreNow(t, a, "boot", false)
		// The restore's done event can overtake the component's own ready
		// event on its way to the stream and the store: let it land first.
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		events := a.Subscribe(ctx, 0)
		p.mu.Lock()
		h := p.host
		p.mu.Unlock()
		h.(trackers.Noter).Note("disconnect", "code 1006: abnormal closure")
		ev := <-events
		if ev.Type != "note" || ev.Note == nil || ev.Note.Name != "stream" || ev.Note.Detail != "code 1006: abnormal closure" {
			t.Fatalf("event = %+v", ev)
		}
		time.Sleep(time.Second) // the state writer's batch window
		synctest.Wait()
		evs, err := a.store.StateEvents(context.Background(), "stream", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 || evs[0].Error != "disconnect: code 1006: abnormal closure" || evs[0].State != "ready" {
			t.Fatalf("stored events = %+v", evs)
		}
	})
}

func TestAComponentWaitingForTheUserIsNotDegraded(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		p := &probe{never: true, ready: make(chan struct{})}
		dep := &probe{latency: 10 * time.Millisecond}
		a, stop := testAgent(t, dir, []spec{{name: "roon", p: p, deadline: time.Second}, {name: "after", p: dep, requires: []string{"roon"}}})
		defer stop()
		go func() {
			for p.runs.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			p.mu.Lock()
			h := p.host
			p.mu.Unlock()
			h.Report(trackers.StateWaiting, errors.New("waiting for you to enable 'rouse' in Roon → Settings → Extensions"))
		}()
		restoreNow(t, a, "boot", false)
		time.Sleep(time.Minute) // far past the deadline
		if st := a.stateOf("roon"); st != trackers.StateWaiting {
			t.Fatalf("state = %s, want waiting (no deadline while the user is asked)", st)
		}
		if e := a.unit("roon").snapshot().lastErr; !strings.Contains(e, "enable 'rouse'") {
			t.Errorf("last error = %q", e)
		}
		if r := p.runs.Load(); r != 1 {
			t.Errorf("runs = %d: the wait burned retries", r)
		}
		close(p.ready)
		for a.stateOf("after") != trackers.StateReady {
			time.Sleep(10 * time.Millisecond)
		}
		if st := a.stateOf("roon"); st != trackers.StateReady {
			t.Errorf("state after enable = %s", st)
		}
	})
}
