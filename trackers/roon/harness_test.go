package roon

import (
	"context"
	"errors"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
	"github.com/rouse-dev/rouse/trackers/roon/fakecore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeListener hands net.Pipe ends to the fake core's server; down
// refuses dials.
type pipeListener struct {
	mu     sync.Mutex
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	down   bool
	dials  int
	refuse map[string]bool // addresses that refuse dials
	addrs  []string        // every address dialled
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

func (l *pipeListener) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	l.mu.Lock()
	l.dials++
	l.addrs = append(l.addrs, addr)
	down := l.down || l.refuse[addr]
	l.mu.Unlock()
	if down {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
	case <-ctx.Done():
	}
	a.Close()
	b.Close()
	return nil, errors.New("dial: the core went away")
}

func (l *pipeListener) setDown(d bool) {
	l.mu.Lock()
	l.down = d
	l.mu.Unlock()
}

func (l *pipeListener) dialCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dials
}

// rig is a tracker, its host, a real store and a fake core on pipes, all
// inside the caller's synctest bubble.
type rig struct {
	t      *testing.T
	core   *fakecore.Core
	ln     *pipeListener
	st     *teststore.Store
	host   *fakehost.Host
	tr     *Tracker
	client *nethttp.Client
	cancel context.CancelFunc
	done   chan error
	stopC  context.CancelFunc
	coreWG sync.WaitGroup
}

const kitchen = "zone-kitchen"

func newRig(t *testing.T, opts func(*Options)) *rig {
	r := &rig{t: t, core: fakecore.New("core-1", "Living Room Core"), ln: newPipeListener(), st: teststore.Open(t)}
	r.core.SetZones(&fakecore.Zone{ID: kitchen, Name: "Kitchen", State: "playing",
		Track: &fakecore.Track{Title: "So What", Artist: "Miles Davis", Album: "Kind of Blue", Length: 562}, Seek: 30})
	ctx, cancel := context.WithCancel(context.Background())
	r.stopC = cancel
	r.coreWG.Go(func() { r.core.Serve(ctx, r.ln) })
	r.client = &nethttp.Client{Transport: &nethttp.Transport{DialContext: r.ln.dial}}
	t.Cleanup(r.close)
	r.tr = r.newTracker(opts)
	return r
}

func (r *rig) newTracker(opts func(*Options)) *Tracker {
	o := DefaultOptions()
	o.Core = "core.test:9330"
	if opts != nil {
		opts(o)
	}
	tr, err := New(*o, trackers.Deps{Name: "roon", Store: r.st})
	if err != nil {
		r.t.Fatal(err)
	}
	tr.httpClient = r.client
	tr.rand = func(n int64) int64 { return n - 1 }
	return tr
}

func (r *rig) start() {
	r.host = fakehost.New()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	tr, h := r.tr, r.host
	go func() { r.done <- tr.Run(ctx, h) }()
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Run returned %v", err)
	}
	r.cancel = nil
}

func (r *rig) close() {
	r.stop()
	r.stopC()
	r.coreWG.Wait()
	r.client.CloseIdleConnections()
}

// until waits (in fake time, bounded) for cond.
func (r *rig) until(what string, within time.Duration, cond func() bool) {
	r.t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			r.t.Fatalf("after %v: still not %s; states %v, last %+v", within, what, r.host.States(), r.host.Last())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) state() trackers.State { return r.host.Last().State }

func (r *rig) waitState(s trackers.State, within time.Duration) {
	r.t.Helper()
	r.until("in state "+string(s), within, func() bool { return r.state() == s })
}

// pair runs the first pairing: waiting, then Enable, then ready.
func (r *rig) pair() {
	r.t.Helper()
	r.start()
	r.waitState(trackers.StateWaiting, 5*time.Second)
	r.enable()
	r.waitState(trackers.StateReady, 5*time.Second)
}

func (r *rig) items() int { return r.st.Len("roon") }

func (r *rig) noCoreErrors() {
	r.t.Helper()
	if errs := r.core.Errors(); len(errs) > 0 {
		r.t.Errorf("the core saw protocol errors: %s", strings.Join(errs, "; "))
	}
}

// enable is the user clicking Enable once the extension shows in Roon.
func (r *rig) enable() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.core.WaitHeld(ctx); err != nil {
		r.t.Fatalf("no registration to enable: %v", err)
	}
	r.core.Enable()
}
