package ondemand

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rouse-dev/rouse/internal/hostcheck"
	"github.com/rouse-dev/rouse/wire"
)

// Timeouts of the listener and of the way to the upstream.
var (
	readHeaderTimeout = 10 * time.Second
	idleConnTimeout   = 120 * time.Second // a client's idle keep-alive connection
	dialTimeout       = 10 * time.Second  // to the upstream
	shutdownGrace     = 5 * time.Second
	keepAliveEvery    = 25 * time.Second // an SSE comment, so a dead watcher is noticed
	sseWriteTimeout   = 10 * time.Second // per event
)

// Front is one on-demand entry point: it listens on Options.Listen, starts
// the chain through Chains when a client arrives, and forwards to
// Options.Upstream once the chain is ready. Create it with New, run it
// with Run.
type Front struct {
	o        Options
	chains   Chains
	log      *slog.Logger
	hosts    hostcheck.Policy
	upstream *url.URL

	transport *http.Transport
	proxy     *httputil.ReverseProxy
	dial      func(ctx context.Context) (net.Conn, error) // to the upstream (tcp mode)

	held chan struct{} // a slot per waiting client, cap MaxHeld

	kick chan struct{} // 1 slot: activity changed, for the idle loop

	// ready caches "the chain is ready", kept by follow: a request that
	// finds it set goes straight to the upstream without building the
	// chain's view. Unset, the view decides.
	ready atomic.Bool

	mu       sync.Mutex
	ln       net.Listener
	port     string    // our port, for the Host check
	active   int       // open connections (tcp) or requests in flight (http)
	seq      uint64    // bumped on every begin and end of activity
	lastEnd  time.Time // when the last activity ended
	running  bool
	demanded string // the view (state, start, idle period) the last Demand was made on
	// The chain's state as last seen by any of the Front's goroutines,
	// and how many times it was seen going back to idle: an idle view
	// shows no start, so this tells one idle period from the next.
	lastSeen string
	idles    uint64
	// An idle stop asked for the start of the chain that began at
	// stopStart, and not yet seen taking effect: until the view leaves
	// ready, that start takes no new request (readyFor).
	stopAsked bool
	stopStart time.Time
	handlers  sync.WaitGroup // http handlers, hijacked ones included
}

// New checks opts and returns a Front for the chain of opts.Name. It does
// not listen yet (Listen or Run does).
func New(opts Options, chains Chains, log *slog.Logger) (*Front, error) {
	if chains == nil {
		return nil, errors.New("ondemand: no Chains")
	}
	if opts.Name == "" {
		return nil, errors.New("ondemand: the entry point has no component name")
	}
	if opts.Mode == "" {
		opts.Mode = ModeHTTP
	}
	if opts.Mode != ModeHTTP && opts.Mode != ModeTCP {
		return nil, fmt.Errorf("ondemand: %s: mode %q: want %q or %q", opts.Name, opts.Mode, ModeHTTP, ModeTCP)
	}
	listenHost, _, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("ondemand: %s: listen address %q: %w (want host:port, e.g. 127.0.0.1:8080)", opts.Name, opts.Listen, err)
	}
	uh, up, err := net.SplitHostPort(opts.Upstream)
	if err != nil || uh == "" || up == "" {
		if err == nil {
			err = errors.New("missing host or port")
		}
		return nil, fmt.Errorf("ondemand: %s: upstream %q: %w (want host:port, e.g. 127.0.0.1:9002)", opts.Name, opts.Upstream, err)
	}
	if opts.IdleStop < 0 {
		return nil, fmt.Errorf("ondemand: %s: idle_stop %s is negative (0 means never)", opts.Name, opts.IdleStop)
	}
	if opts.Hold < 0 {
		return nil, fmt.Errorf("ondemand: %s: hold %s is negative", opts.Name, opts.Hold)
	}
	if opts.Hold == 0 {
		opts.Hold = DefaultHold
	}
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = DefaultMaxHeld
	}
	if log == nil {
		log = slog.Default()
	}
	f := &Front{
		o:        opts,
		chains:   chains,
		log:      log.With("component", opts.Name, "on_demand", opts.Listen),
		hosts:    hostcheck.New(listenHost, true),
		upstream: &url.URL{Scheme: "http", Host: opts.Upstream},
		held:     make(chan struct{}, opts.MaxHeld),
		kick:     make(chan struct{}, 1),
	}
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	f.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", opts.Upstream) }
	if opts.Mode == ModeHTTP {
		f.transport = &http.Transport{
			Proxy:                 nil, // the upstream is local: never an HTTP_PROXY
			DialContext:           func(ctx context.Context, _, _ string) (net.Conn, error) { return f.dial(ctx) },
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
		f.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(f.upstream)
				pr.Out.Host = pr.In.Host // the app sees the address the client used
				pr.SetXForwarded()
			},
			Transport:    f.transport,
			BufferPool:   bufferPool{},
			ErrorHandler: f.proxyError,
			ErrorLog:     slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		}
	}
	return f, nil
}

// Listen binds the listen address now, so the agent learns at once that
// the port is taken. Run calls it when it was not called.
func (f *Front) Listen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", f.o.Listen)
	if err != nil {
		return fmt.Errorf("ondemand: %s: listen on %s: %w (is another program using this port? change on_demand.listen)", f.o.Name, f.o.Listen, err)
	}
	f.setListener(ln)
	return nil
}

// setListener takes ln as the listener (tests pass their own); f.mu held.
func (f *Front) setListener(ln net.Listener) {
	f.ln = ln
	if _, p, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		f.port = p
	}
}

// Close releases the address of a Front that was bound (Listen) but
// never Run; a running Front closes its listener when Run's context ends.
func (f *Front) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running || f.ln == nil {
		return nil
	}
	err := f.ln.Close()
	f.ln = nil
	return err
}

// Addr is the address the Front listens on (after Listen), or nil.
func (f *Front) Addr() net.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln == nil {
		return nil
	}
	return f.ln.Addr()
}

// Run listens (unless Listen did) and serves until ctx ends; then it closes
// the listener and every connection it accepted, waits for every goroutine
// it started, and returns nil. A listen or accept failure is returned.
// Run may be called once.
func (f *Front) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("ondemand: Run called twice")
	}
	f.running = true
	f.mu.Unlock()
	if err := f.Listen(); err != nil {
		return err
	}
	f.log.Info("on-demand entry point listening", "addr", f.Addr().String(), "upstream", f.o.Upstream, "mode", f.o.Mode, "idle_stop", f.o.IdleStop)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	followed := make(chan struct{})
	wg.Go(func() { f.follow(ctx, followed) })
	<-followed
	if f.o.IdleStop > 0 {
		wg.Go(func() { f.idleLoop(ctx) })
	}
	var err error
	if f.o.Mode == ModeTCP {
		err = f.serveTCP(ctx)
	} else {
		err = f.serveHTTP(ctx)
	}
	cancel()
	wg.Wait()
	return err
}

// serveHTTP runs the http server until ctx ends or the listener fails.
func (f *Front) serveHTTP(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           f,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleConnTimeout,
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
		// Requests live inside Run: when it ends, held requests, event
		// streams and proxied WebSockets end with it.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(f.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("ondemand: %s: serving %s: %w", f.o.Name, f.o.Listen, err)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	scancel()
	if err == nil {
		<-errc // http.ErrServerClosed
	}
	f.handlers.Wait()
	f.transport.CloseIdleConnections()
	return err
}

// follow keeps f.ready up to date with the chain until ctx ends; it
// closes started once the first view is read.
func (f *Front) follow(ctx context.Context, started chan<- struct{}) {
	changed, stop := f.chains.Watch(f.o.Name)
	defer stop()
	defer f.ready.Store(false)
	for {
		v := f.chains.Chain(f.o.Name)
		f.saw(v.State)
		f.ready.Store(f.readyFor(v))
		if started != nil {
			close(started)
			started = nil
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changed:
			if !ok { // no more news: leave every request to the view
				f.ready.Store(false)
				<-ctx.Done()
				return
			}
		}
	}
}

// begin and end count activity: an open tcp connection or an http request
// in flight (an idle keep-alive connection is not activity: a browser keeps
// one open for minutes).
func (f *Front) begin() {
	f.mu.Lock()
	f.active++
	f.seq++
	f.mu.Unlock()
	f.kickIdle()
}

func (f *Front) end() {
	f.mu.Lock()
	f.active--
	f.seq++
	f.lastEnd = time.Now()
	f.mu.Unlock()
	f.kickIdle()
}

func (f *Front) kickIdle() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// idleLoop asks Chains to stop the chain once nothing used it for
// IdleStop: no open connection, no request, and no new start of the chain
// (a start by wake or by hand counts as use), counted from the end of the
// last activity or from when the chain became ready; never while it
// starts. It asks once per quiet period; the next connection demands the
// chain again.
//
// Its timer runs on Go's clock, which stands still while the machine
// sleeps: time asleep does not count as idle.
func (f *Front) idleLoop(ctx context.Context) {
	changed, stop := f.chains.Watch(f.o.Name)
	defer stop()
	timer := time.NewTimer(f.o.IdleStop)
	defer timer.Stop()
	since := time.Now() // start of the current quiet period
	settled := false    // this quiet period was dealt with
	first := f.chains.Chain(f.o.Name)
	lastStart, lastState := startOf(first), first.State
	var seenSeq uint64
	for {
		f.mu.Lock()
		active, seq, lastEnd := f.active, f.seq, f.lastEnd
		f.mu.Unlock()
		if seq != seenSeq {
			seenSeq = seq
			settled = false
			if lastEnd.After(since) {
				since = lastEnd
			}
		}
		var due <-chan time.Time
		if active == 0 && !settled {
			if d := time.Until(since.Add(f.o.IdleStop)); d > 0 {
				timer.Reset(d)
				due = timer.C
			} else {
				settled = true
				switch v := f.chains.Chain(f.o.Name); v.State {
				case wire.ChainIdle, wire.ChainStopping:
				case wire.ChainStarting, wire.ChainWaiting:
					// Not while it starts or waits for a dependency (a
					// waiting page may be watching): the quiet period
					// restarts when it is ready.
				default:
					if !f.askStop(seenSeq, v) {
						continue // a client came meanwhile: a new quiet period
					}
					f.log.Info("on-demand chain idle: stopping it", "idle_stop", f.o.IdleStop, "state", v.State)
					f.chains.IdleStop(f.o.Name)
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-due:
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			v := f.chains.Chain(f.o.Name)
			s := startOf(v)
			newStart := (v.State == wire.ChainStarting || v.State == wire.ChainReady) && !s.Equal(lastStart)
			if newStart || v.State == wire.ChainReady && lastState != wire.ChainReady {
				since = time.Now()
				settled = false
			}
			if newStart {
				lastStart = s
			}
			lastState = v.State
		}
	}
}

// askStop marks an idle stop as asked for the chain's start in v, unless a
// connection or request began since the idle loop read seq. From then on
// no request or connection is sent to that start (readyFor) while the
// stop takes effect: each waits for the chain like one that found it
// idle, instead of reaching an upstream that is being stopped (a request
// with a body could not be sent again).
func (f *Front) askStop(seq uint64, v wire.Chain) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active != 0 || f.seq != seq {
		return false
	}
	f.stopAsked, f.stopStart = true, startOf(v)
	f.ready.Store(false)
	return true
}

// readyFor reports whether a client may go to the upstream of the chain
// whose view is v: it is ready, and it is not the start an idle stop was
// just asked for.
func (f *Front) readyFor(v wire.Chain) bool {
	if v.State != wire.ChainReady {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.stopAsked || !startOf(v).Equal(f.stopStart)
}

// startOf is when the chain's current start began (zero if unknown).
func startOf(v wire.Chain) time.Time {
	if v.StartedAt == nil {
		return time.Time{}
	}
	return *v.StartedAt
}

// acquire takes a waiting slot; false when MaxHeld clients already wait.
func (f *Front) acquire() bool {
	select {
	case f.held <- struct{}{}:
		return true
	default:
		return false
	}
}

func (f *Front) release() { <-f.held }

// demand asks for the chain, logging when a client wakes an idle or failed
// one. Demand returns before the chain's view changes; until it does, the
// clients that arrive meanwhile (and find the same view) do not ask again:
// a second Demand queued behind a start that fails would start the chain
// again at once.
func (f *Front) demand(v wire.Chain, via string) {
	f.mu.Lock()
	f.sawLocked(v.State)
	key := fmt.Sprint(v.State, " ", startOf(v), " ", f.idles)
	if f.demanded == key {
		f.mu.Unlock()
		return
	}
	f.demanded = key
	f.mu.Unlock()
	if v.State == wire.ChainIdle || v.State == wire.ChainFailed || v.State == "" {
		f.log.Info("on-demand chain demanded", "via", via, "state", v.State)
	}
	f.chains.Demand(f.o.Name)
}

// saw records a state of the chain's view that one of f's goroutines read.
func (f *Front) saw(state string) {
	f.mu.Lock()
	f.sawLocked(state)
	f.mu.Unlock()
}

func (f *Front) sawLocked(state string) {
	if state == wire.ChainIdle && f.lastSeen != "" && f.lastSeen != wire.ChainIdle {
		f.idles++
	}
	if state != wire.ChainReady {
		f.stopAsked = false // the stop took effect (or a start superseded it)
	}
	f.lastSeen = state
}

// outcome is how waiting for the chain ended.
type outcome int

const (
	outReady   outcome = iota
	outFailed          // the chain failed (after the client arrived)
	outTimeout         // Hold ran out
	outGone            // the client or the Front went away
)

// holdFor is how long a client is held for the chain whose view is v: its
// deadline now, at most Options.Hold.
func (f *Front) holdFor(v wire.Chain) time.Duration {
	if d := time.Duration(v.DeadlineMS) * time.Millisecond; d > 0 && d < f.o.Hold {
		return d
	}
	return f.o.Hold
}

// await waits, up to the hold (holdFor, from the client's arrival, following
// the view's deadline as it changes), until the chain is ready or fails.
// entry is the view when the client arrived: a failure already in it is
// the previous start's, which the client's Demand retries, so only a
// failure of another start counts. A chain that goes idle after being
// busy (a stop that swallowed the demand) is demanded again.
func (f *Front) await(ctx context.Context, entry wire.Chain) (wire.Chain, outcome) {
	changed, stop := f.chains.Watch(f.o.Name)
	defer stop()
	arrived := time.Now()
	hold := f.holdFor(entry)
	timer := time.NewTimer(hold)
	defer timer.Stop()
	busy := false
	for {
		v := f.chains.Chain(f.o.Name)
		f.saw(v.State)
		if h := f.holdFor(v); h != hold {
			hold = h
			timer.Reset(max(time.Until(arrived.Add(h)), 0))
		}
		switch v.State {
		case wire.ChainReady:
			if f.readyFor(v) {
				return v, outReady
			}
			busy = true // an idle stop of this start is on its way
		case wire.ChainFailed:
			if entry.State != wire.ChainFailed || !startOf(v).Equal(startOf(entry)) {
				return v, outFailed
			}
		case wire.ChainStarting, wire.ChainWaiting, wire.ChainStopping:
			busy = true
		case wire.ChainIdle:
			if busy {
				busy = false
				f.demand(v, "retry")
			}
		}
		select {
		case <-ctx.Done():
			return v, outGone
		case <-timer.C:
			return f.chains.Chain(f.o.Name), outTimeout
		case _, ok := <-changed:
			if !ok { // the watch ended: nothing more will tell us
				select {
				case <-ctx.Done():
					return v, outGone
				case <-timer.C:
					return f.chains.Chain(f.o.Name), outTimeout
				}
			}
		}
	}
}

// failure says why a failed chain failed, naming the dependency.
func failure(v wire.Chain) string {
	if v.Reason != "" {
		return v.Reason
	}
	for _, c := range v.Components {
		if c.Error != "" {
			return c.Name + ": " + c.Error
		}
	}
	return "a required dependency failed"
}

// retryAfter estimates in whole seconds when the chain should be ready:
// the longest remaining estimate of its components, at least 1, 5 when
// nothing is known.
func retryAfter(v wire.Chain) int {
	var left int64
	for _, c := range v.Components {
		if componentUp(c.State) || c.EstimatedMS <= 0 {
			continue
		}
		left = max(left, c.EstimatedMS-c.ElapsedMS)
	}
	if left <= 0 {
		return 5
	}
	return int(max((left+999)/1000, 1))
}

// componentUp reports whether a component state counts as started.
func componentUp(state string) bool { return state == "ready" || state == "catching_up" }

// bufferPool lends the proxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
