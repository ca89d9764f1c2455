package agent

import (
	"context"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/ondemand"
	"github.com/rouse-dev/rouse/internal/backoff"
)

// fronts are the agent's on-demand entry points, one per tracker with an
// on_demand key (agent/ondemand.Front), by component name.
type fronts struct {
	mu   sync.Mutex
	on   bool // Run started them: config changes follow
	runs map[string]*frontRun
	// bound are entry points built and bound at boot, before the API
	// shows any component, so that a client who saw the agent up never
	// finds the port closed; syncFronts runs them (connections wait in
	// the listen backlog meanwhile).
	bound map[string]boundFront

	// errs is why an entry point does not listen (its address is taken),
	// by component; under errMu, not mu (syncFronts holds mu while it
	// waits for an entry point to stop, and the API must not wait).
	errMu sync.Mutex
	errs  map[string]string
}

// frontError is why name's entry point does not listen, "" when it does
// (or when name has none).
func (a *Agent) frontError(name string) string {
	a.fronts.errMu.Lock()
	defer a.fronts.errMu.Unlock()
	return a.fronts.errs[name]
}

// setFrontError records why name's entry point does not listen ("": it
// does) and refreshes the API's views when that changed.
func (a *Agent) setFrontError(name, why string) {
	a.fronts.errMu.Lock()
	prev := a.fronts.errs[name]
	if why == "" {
		delete(a.fronts.errs, name)
	} else {
		if a.fronts.errs == nil {
			a.fronts.errs = map[string]string{}
		}
		a.fronts.errs[name] = why
	}
	a.fronts.errMu.Unlock()
	if prev != why {
		a.refreshViews()
	}
}

// frontRun is one Front running under the agent.
type frontRun struct {
	opts   ondemand.Options
	cancel context.CancelFunc
	done   chan struct{}
}

// boundFront is an entry point bound at boot, not running yet.
type boundFront struct {
	opts  ondemand.Options
	front *ondemand.Front
	err   error // Listen's error: the retries begin when it runs
}

// bindFronts builds cfg's entry points and binds their addresses (boot
// step 3, before the gate opens); syncFronts runs them.
func (a *Agent) bindFronts(cfg *config.Config) {
	a.fronts.mu.Lock()
	defer a.fronts.mu.Unlock()
	for name, o := range a.frontOptions(cfg) {
		f, lerr, ok := a.newFront(name, o)
		if !ok {
			continue
		}
		if a.fronts.bound == nil {
			a.fronts.bound = map[string]boundFront{}
		}
		a.fronts.bound[name] = boundFront{opts: o, front: f, err: lerr}
	}
}

// dropBoundLocked closes the entry points bound at boot that no run took
// (a.fronts.mu held).
func (a *Agent) dropBoundLocked() {
	for name, b := range a.fronts.bound {
		_ = b.front.Close()
		delete(a.fronts.bound, name)
	}
}

// newFront builds name's entry point and binds its address; a bind error
// is logged and recorded (the caller retries). ok is false when the entry
// point cannot be built at all.
func (a *Agent) newFront(name string, o ondemand.Options) (f *ondemand.Front, lerr error, ok bool) {
	f, err := ondemand.New(o, a, a.log)
	if err != nil {
		a.log.Error("cannot build the on-demand entry point", "component", name, "err", err)
		a.setFrontError(name, err.Error())
		return nil, nil, false
	}
	if lerr = f.Listen(); lerr != nil {
		a.log.Error("cannot listen for the on-demand entry point; trying again, start the component by name meanwhile", "component", name, "listen", o.Listen, "err", lerr)
		a.setFrontError(name, lerr.Error())
	}
	return f, lerr, true
}

// frontOptions are the entry points cfg asks for: its on_demand keys.
func (a *Agent) frontOptions(cfg *config.Config) map[string]ondemand.Options {
	want := map[string]ondemand.Options{}
	for _, t := range cfg.Trackers {
		o := t.OnDemand
		if o == nil {
			continue
		}
		// Hold is only the upper bound: the Front holds a client for the
		// chain's deadline as the chain's view says it at the time
		// (learned deadlines change it), so a change of a member's
		// deadline does not rebuild the entry point and drop its clients.
		want[t.Name] = ondemand.Options{
			Name: t.Name, Listen: o.Listen, Upstream: o.Upstream, Mode: o.Mode,
			IdleStop: o.IdleStop, Hold: cfg.Deadlines.Wake,
		}
	}
	return want
}

// followFronts is syncFronts after a config change, once Run started the
// entry points.
func (a *Agent) followFronts(cfg *config.Config) {
	a.fronts.mu.Lock()
	on := a.fronts.on
	a.fronts.mu.Unlock()
	if on {
		a.syncFronts(cfg)
	}
}

// syncFronts makes the running entry points those of cfg: an entry point
// whose options changed is rebuilt, one no longer configured stops (its
// chain keeps running until stopped otherwise), a new one starts, and one
// whose options did not change keeps running, its connections with it.
//
// An address that cannot be bound (another program has the port) is one
// error line in the log, the component's on_demand_error in the API and
// `rouse status`, a reason of /readyz and a degraded overall status when
// the component counts; the component stays idle and can still be started
// by name; and the entry point tries to bind again with the heartbeat's
// backoff until it can (the program holding the port may go away) or the
// config changes.
func (a *Agent) syncFronts(cfg *config.Config) {
	want := a.frontOptions(cfg)
	a.fronts.mu.Lock()
	defer a.fronts.mu.Unlock()
	a.fronts.on = true
	for name, fr := range a.fronts.runs {
		if o, ok := want[name]; ok && o == fr.opts {
			continue
		}
		fr.cancel()
		<-fr.done
		delete(a.fronts.runs, name)
		a.setFrontError(name, "")
	}
	a.fronts.errMu.Lock()
	var stale []string
	for name := range a.fronts.errs {
		if _, ok := want[name]; !ok {
			stale = append(stale, name)
		}
	}
	a.fronts.errMu.Unlock()
	for _, name := range stale {
		a.setFrontError(name, "")
	}
	a.mu.Lock()
	closing := a.closing
	a.mu.Unlock()
	if closing {
		a.dropBoundLocked()
		return
	}
	defer a.dropBoundLocked()
	for name, o := range want {
		if _, ok := a.fronts.runs[name]; ok {
			continue
		}
		// Bound at boot, or built and bound now (so the error is there
		// when syncFronts returns); the retries in the entry point's
		// goroutine.
		var f *ondemand.Front
		var lerr error
		if b, ok := a.fronts.bound[name]; ok && b.opts == o {
			f, lerr = b.front, b.err
			delete(a.fronts.bound, name)
		} else if f, lerr, ok = a.newFront(name, o); !ok {
			continue
		}
		ctx, cancel := context.WithCancel(a.runCtx)
		fr := &frontRun{opts: o, cancel: cancel, done: make(chan struct{})}
		if a.fronts.runs == nil {
			a.fronts.runs = map[string]*frontRun{}
		}
		a.fronts.runs[name] = fr
		a.goRun(func() {
			defer close(fr.done)
			if lerr != nil && !a.listenAgain(ctx, name, f) {
				return
			}
			if err := f.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("on-demand entry point stopped", "component", name, "err", err)
				a.setFrontError(name, err.Error())
			}
		})
	}
}

// listenAgain tries to bind f's address with the heartbeat's backoff
// (equal jitter: never at once) until it can, true, or ctx ends, false.
func (a *Agent) listenAgain(ctx context.Context, name string, f *ondemand.Front) bool {
	a.mu.Lock()
	p := backoff.Policy{Initial: a.cfg.Heartbeat.Initial, Max: a.cfg.Heartbeat.Max}
	a.mu.Unlock()
	t := time.NewTimer(p.Equal(0))
	defer t.Stop()
	for try := 1; ; try++ {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		err := f.Listen()
		if err == nil {
			a.log.Info("on-demand entry point can listen now", "component", name, "listen", f.Addr().String(), "tries", try+1)
			a.setFrontError(name, "")
			return true
		}
		a.log.Debug("still cannot listen for the on-demand entry point", "component", name, "err", err)
		a.setFrontError(name, err.Error())
		t.Reset(p.Equal(try))
	}
}

// stopFronts stops every entry point and waits for them (the shutdown,
// before the components stop: no demand arrives meanwhile).
func (a *Agent) stopFronts() {
	a.fronts.mu.Lock()
	defer a.fronts.mu.Unlock()
	for name, fr := range a.fronts.runs {
		fr.cancel()
		<-fr.done
		delete(a.fronts.runs, name)
		a.setFrontError(name, "")
	}
	a.dropBoundLocked()
}
