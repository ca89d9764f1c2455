package agent

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/wire"
)

// gate is the REST API's Backend from boot step 0, when only /healthz can
// be answered for real. Until boot step 3 opens it, /readyz and
// /api/v1/health answer at once that the agent is starting (and what the
// boot is doing); every other call waits for the boot — at most
// bootWait, or until the request ends or the boot fails — and then goes to
// the agent, or is a 503 naming the boot step. So a client that finds
// /healthz up never gets a half-booted agent. Once open, the check is one
// atomic load.
type gate struct {
	a     *Agent
	up    atomic.Bool
	phase atomic.Pointer[string]

	once   sync.Once
	opened chan struct{} // closed by openUp or shut
}

// bootWait bounds how long a call waits for the boot.
const bootWait = 10 * time.Second

func newGate(a *Agent) *gate { return &gate{a: a, opened: make(chan struct{})} }

func (g *gate) setPhase(p string) { g.phase.Store(&p) }

// openUp hands every call to the agent from now on (boot step 3 done).
func (g *gate) openUp() {
	g.up.Store(true)
	g.once.Do(func() { close(g.opened) })
}

// shut releases the waiting calls of a boot that failed.
func (g *gate) shut() {
	g.setPhase("stopped: the boot failed")
	g.once.Do(func() { close(g.opened) })
}

func (g *gate) starting() string {
	if p := g.phase.Load(); p != nil {
		return "starting: " + *p
	}
	return "starting"
}

// wait waits for the boot; nil once the agent serves the call itself.
func (g *gate) wait(ctx context.Context) error {
	if g.up.Load() {
		return nil
	}
	t := time.NewTimer(bootWait)
	defer t.Stop()
	select {
	case <-g.opened:
	case <-ctx.Done():
	case <-t.C:
	}
	if g.up.Load() {
		return nil
	}
	return api.Errorf(api.ErrUnavailable, "the agent is %s", g.starting())
}

func (g *gate) Health(ctx context.Context) wire.Health {
	if g.up.Load() {
		return g.a.Health(ctx)
	}
	return wire.Health{
		Status: wire.StatusStarting, Version: g.a.opts.Version, StartedAt: g.a.startedAt,
		Store: wire.StoreHealth{State: wire.StoreClosed, Path: StorePath(g.a.opts.DataDir)}, Components: []wire.Service{},
		Config: wire.ConfigState{State: "loading", Path: g.a.opts.ConfigPath},
	}
}

func (g *gate) Ready(ctx context.Context, detail bool) wire.Ready {
	if g.up.Load() {
		return g.a.Ready(ctx, detail)
	}
	return wire.Ready{Ready: false, Reasons: []string{g.starting()}}
}

// HealthJSON and ServicesJSON serve the agent's rendered views once it is
// up (api.Snapshotter).
func (g *gate) HealthJSON(ctx context.Context) []byte {
	if g.up.Load() {
		return g.a.HealthJSON(ctx)
	}
	return marshalView(g.Health(ctx))
}

func (g *gate) ServicesJSON(ctx context.Context) []byte {
	if g.wait(ctx) == nil {
		return g.a.ServicesJSON(ctx)
	}
	return marshalView(wire.Services{Services: []wire.Service{}})
}

// HealthGzip and ServicesGzip serve the agent's gzipped views once it is
// up (api.GzipSnapshotter); before, nil: the plain answer above.
func (g *gate) HealthGzip(ctx context.Context) []byte {
	if g.up.Load() {
		return g.a.HealthGzip(ctx)
	}
	return nil
}

func (g *gate) ServicesGzip(ctx context.Context) []byte {
	if g.up.Load() {
		return g.a.ServicesGzip(ctx)
	}
	return nil
}

func marshalView(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("{}\n")
	}
	return append(b, '\n')
}

func (g *gate) Services(ctx context.Context) []wire.Service {
	if g.wait(ctx) == nil {
		return g.a.Services(ctx)
	}
	return []wire.Service{}
}

func (g *gate) Service(ctx context.Context, name string) (wire.Service, error) {
	if err := g.wait(ctx); err != nil {
		return wire.Service{}, err
	}
	return g.a.Service(ctx, name)
}

func (g *gate) Start(ctx context.Context, name string) (string, error) {
	if err := g.wait(ctx); err != nil {
		return "", err
	}
	return g.a.Start(ctx, name)
}

func (g *gate) Stop(ctx context.Context, name string) (string, error) {
	if err := g.wait(ctx); err != nil {
		return "", err
	}
	return g.a.Stop(ctx, name)
}

func (g *gate) Restart(ctx context.Context, name string) (string, error) {
	if err := g.wait(ctx); err != nil {
		return "", err
	}
	return g.a.Restart(ctx, name)
}

func (g *gate) Wake(ctx context.Context) (wire.Wake, error) {
	if err := g.wait(ctx); err != nil {
		return wire.Wake{}, err
	}
	return g.a.Wake(ctx)
}

func (g *gate) WakePlan(ctx context.Context) (wire.Plan, error) {
	if err := g.wait(ctx); err != nil {
		return wire.Plan{}, err
	}
	return g.a.WakePlan(ctx)
}

func (g *gate) StartPlan(ctx context.Context, name string) (wire.Plan, error) {
	if err := g.wait(ctx); err != nil {
		return wire.Plan{}, err
	}
	return g.a.StartPlan(ctx, name)
}

func (g *gate) ChainView(ctx context.Context, name string) (wire.Chain, error) {
	if err := g.wait(ctx); err != nil {
		return wire.Chain{}, err
	}
	return g.a.ChainView(ctx, name)
}

func (g *gate) Wakes(ctx context.Context, limit int, before int64) ([]wire.Wake, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	return g.a.Wakes(ctx, limit, before)
}

func (g *gate) WakeByID(ctx context.Context, id int64) (wire.Wake, error) {
	if err := g.wait(ctx); err != nil {
		return wire.Wake{}, err
	}
	return g.a.WakeByID(ctx, id)
}

// Subscribe waits for the boot; when it does not finish in time the stream
// ends at once and the client reconnects (an EventSource does so by
// itself).
func (g *gate) Subscribe(ctx context.Context, lastID int64) <-chan wire.Event {
	if g.wait(ctx) == nil {
		return g.a.Subscribe(ctx, lastID)
	}
	ch := make(chan wire.Event)
	close(ch)
	return ch
}

func (g *gate) Items(ctx context.Context, tracker string, q api.ItemQuery) ([]api.Item, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	return g.a.Items(ctx, tracker, q)
}

func (g *gate) Jobs(ctx context.Context) ([]wire.Job, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	return g.a.Jobs(ctx)
}

func (g *gate) RunJob(ctx context.Context, name string) (wire.JobRun, error) {
	if err := g.wait(ctx); err != nil {
		return wire.JobRun{}, err
	}
	return g.a.RunJob(ctx, name)
}

func (g *gate) JobRuns(ctx context.Context, name string, limit int, before int64) ([]wire.JobRun, error) {
	if err := g.wait(ctx); err != nil {
		return nil, err
	}
	return g.a.JobRuns(ctx, name, limit, before)
}

var (
	_ api.Backend         = (*gate)(nil)
	_ api.ChainBackend    = (*gate)(nil)
	_ api.Snapshotter     = (*gate)(nil)
	_ api.GzipSnapshotter = (*gate)(nil)
)
