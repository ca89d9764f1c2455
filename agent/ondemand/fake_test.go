package ondemand

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/internal/fanout"
	"github.com/rouse-dev/rouse/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeChains is the agent's side, scripted by the test.
type fakeChains struct {
	mu        sync.Mutex
	view      wire.Chain
	demands   int
	idleStops int
	// onDemand, when set, runs (without the lock) on every Demand; the
	// default turns an idle or failed chain into a new start.
	onDemand func(c *fakeChains)
	// onIdleStop, when set, runs on IdleStop; the default makes it idle.
	onIdleStop func(c *fakeChains)
	// chainHook, when set, may replace the view Chain returns.
	chainHook func(n int, v wire.Chain) wire.Chain
	calls     int
	hub       fanout.Hub[struct{}]
	watches   atomic.Int64
	base      int64 // the watches a running Front holds itself
}

func newFake(name, state string, comps ...wire.ChainComponent) *fakeChains {
	return &fakeChains{view: wire.Chain{Name: name, State: state, Components: comps, DeadlineMS: 300000}}
}

var _ Chains = (*fakeChains)(nil)

func (c *fakeChains) Demand(string) {
	c.mu.Lock()
	c.demands++
	fn := c.onDemand
	c.mu.Unlock()
	if fn != nil {
		fn(c)
		return
	}
	c.update(func(v *wire.Chain) {
		if v.State == wire.ChainIdle || v.State == wire.ChainFailed {
			now := time.Now()
			v.State, v.StartedAt, v.Reason, v.Trigger = wire.ChainStarting, &now, "", "demand"
		}
	})
}

func (c *fakeChains) Chain(string) wire.Chain {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	v := c.view
	v.Components = append([]wire.ChainComponent(nil), v.Components...)
	if c.chainHook != nil {
		v = c.chainHook(c.calls, v)
	}
	return v
}

func (c *fakeChains) Watch(string) (<-chan struct{}, func()) {
	c.watches.Add(1)
	ch, stop := c.hub.Subscribe()
	var once sync.Once
	return ch, func() { once.Do(func() { c.watches.Add(-1); stop() }) }
}

func (c *fakeChains) IdleStop(string) {
	c.mu.Lock()
	c.idleStops++
	fn := c.onIdleStop
	c.mu.Unlock()
	if fn != nil {
		fn(c)
		return
	}
	// As the agent's view: an idle chain shows no start (so two idle
	// periods read the same).
	c.update(func(v *wire.Chain) { v.State, v.Reason, v.StartedAt = wire.ChainIdle, "idle", nil })
}

// update changes the view and tells the watchers.
func (c *fakeChains) update(fn func(v *wire.Chain)) {
	c.mu.Lock()
	fn(&c.view)
	c.mu.Unlock()
	c.hub.Publish(struct{}{})
}

func (c *fakeChains) setState(state, reason string) {
	c.update(func(v *wire.Chain) { v.State, v.Reason = state, reason })
}

func (c *fakeChains) setComponent(name, state, errText string) {
	c.update(func(v *wire.Chain) {
		for i := range v.Components {
			if v.Components[i].Name == name {
				v.Components[i].State, v.Components[i].Error = state, errText
			}
		}
	})
}

func (c *fakeChains) counts() (demands, idleStops int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.demands, c.idleStops
}

// waitWatches waits until n clients watch the chain (are held, or follow
// the waiting page's stream), besides the Front's own watches.
func (c *fakeChains) waitWatches(t testing.TB, n int64) {
	t.Helper()
	c.waitWatchesExactly(t, c.base+n, false)
}

func (c *fakeChains) waitWatchesExactly(t testing.TB, n int64, exactly bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w := c.watches.Load(); w < n || exactly && w != n; w = c.watches.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d watches open, want %d", w, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runFront starts a Front on a free loopback port and stops it (checking
// Run's result) when the test ends.
func runFront(t testing.TB, o Options, c Chains) *Front {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	f, err := New(o, c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	if fc, ok := c.(*fakeChains); ok { // the Front follows the chain, and idles
		fc.base = 1
		if o.IdleStop > 0 {
			fc.base++
		}
		fc.waitWatchesExactly(t, fc.base, true)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return f
}

// pipeListener is a net.Listener over net.Pipe, for tests in a synctest
// bubble (real sockets stop its clock).
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }

func (l *pipeListener) Dial(context.Context, string, string) (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
		return nil, errors.New("pipe listener closed")
	}
}

// pipeFront builds a Front on a pipeListener whose upstream is up (a
// net.Pipe served by serve, in the caller's bubble), runs it, and returns
// it with a stop func that ends Run and waits for it.
func pipeFront(t *testing.T, o Options, c Chains, serve func(net.Conn)) (*Front, *pipeListener, func()) {
	t.Helper()
	o.Listen = "127.0.0.1:8080"
	f, err := New(o, c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ln := newPipeListener()
	f.setListener(ln)
	var ups sync.WaitGroup
	f.dial = func(ctx context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		ups.Go(func() { serve(b) })
		return a, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	return f, ln, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		ups.Wait()
	}
}
