package agent

import (
	"context"
	"sync"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/agent/ondemand"
)

// fronts are the agent's on-demand entry points, one per tracker with an
// on_demand key (agent/ondemand.Front), by component name.
type fronts struct {
	mu   sync.Mutex
	on   bool // Run started them: config changes follow
	runs map[string]*frontRun
}

// frontRun is one Front running under the agent.
type frontRun struct {
	opts   ondemand.Options
	cancel context.CancelFunc
	done   chan struct{}
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
// chain keeps running until stopped otherwise), a new one starts. An
// address that cannot be bound is logged; the component stays idle and can
// still be started by name.
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
	}
	a.mu.Lock()
	closing := a.closing
	a.mu.Unlock()
	if closing {
		return
	}
	for name, o := range want {
		if _, ok := a.fronts.runs[name]; ok {
			continue
		}
		f, err := ondemand.New(o, a, a.log)
		if err != nil {
			a.log.Error("cannot build the on-demand entry point", "component", name, "err", err)
			continue
		}
		if err := f.Listen(); err != nil {
			a.log.Error("cannot listen for the on-demand entry point; start the component by name meanwhile", "component", name, "listen", o.Listen, "err", err)
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
			if err := f.Run(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("on-demand entry point stopped", "component", name, "err", err)
			}
		})
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
	}
}
