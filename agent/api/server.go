// Package api owns rouse's local REST server: the route table, the security
// middleware (Host check against DNS rebinding, token or session auth,
// same-origin checks, media types, headers), the JSON error renderer, the
// Server-Sent Events stream, one-time login codes for the dashboard, and the
// API token file. It asks the agent for data only through Backend and knows
// nothing else about it.
//
// Decisions the issue left open, written down here:
//   - Check order: security headers are set on every response, then the Host
//     check, then Origin/Referer/Sec-Fetch-Site, then authentication (paths
//     other than /healthz, /readyz, /metrics and /login), then routing (404,
//     405), then media type (415) and body size (413).
//   - No cookie authorises anything: cookies are not port-scoped, so any
//     local program that gets the browser to load one of its pages would
//     receive them. The dashboard's session is a secret handed to the page
//     once, in the fragment of the redirect after login, kept in the tab's
//     sessionStorage (scoped to origin and port) and sent as X-Rouse-Session;
//     its event stream opens with a one-time 30 s ticket. Everything outside
//     /api/ (the page, its assets, /login, the probes) needs no credentials.
//   - A login link (GET /login?code=) only shows a page with a button; the
//     button's form POST uses the code up, so a HEAD or a prefetching GET
//     leaves it valid. Sessions end after 12 idle hours, 7 days after
//     login, at POST /api/v1/logout (with the token: every session) or when
//     the agent restarts (they live in memory).
//   - A session that is unknown or ended is 401 (log in again), a wrong
//     token is 403.
//   - A POST authenticated by the session must carry our own Origin (every
//     current browser sends one on POST): a second guard against
//     cross-site requests, on top of the custom header a foreign page cannot
//     send without a CORS preflight, which is always refused.
//   - Query parameters out of range (limit above 1000, say) are a 400 naming
//     the parameter, never silently clamped.
//   - When allow_non_loopback is set and listen names an IP address, that IP
//     is also accepted as Host (an IP literal cannot be DNS-rebound).
//   - Lists that grow with stored data (items, wakes, job runs) are
//     streamed from small store batches, and a page ends at 4 MiB of
//     elements (or at ?limit=) with next_cursor; at most 4 such answers are
//     produced at once, each within 60 s of writing. An item whose data
//     alone is over 4 MiB (stored before max_item_bytes existed) is listed
//     with data null and omitted_bytes. A store failure after the first
//     batch cuts the connection rather than end a short but valid answer.
//   - /readyz without credentials names each component that is not ready
//     and its state; the errors need the token (a wrong one is 403).
//   - Event streams are capped (max_event_streams, default 32; 503 beyond)
//     and each holds a 64-event buffer: a reader that falls further behind
//     is dropped and resumes from the backlog with Last-Event-ID, and a
//     write that cannot go out for 30 s ends the stream. The cap follows
//     config reloads (open streams stay).
//   - listen: localhost:P is resolved once at start and bound by address;
//     any non-loopback answer (/etc/hosts saying 0.0.0.0 localhost) is
//     refused like a non-loopback address.
//   - The CSP allows same-origin scripts, styles, images (and data: images)
//     and connections only: the dashboard must not use inline scripts or
//     style attributes.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/rouse-dev/rouse/internal/hostcheck"
	"github.com/rouse-dev/rouse/wire"
)

// Options configure a Server. The zero value of every field but Listen is
// usable.
type Options struct {
	// Listen is the address to bind (default wire.DefaultListen).
	Listen string
	// AllowNonLoopback lets Listen name a non-loopback address (default
	// false: refused). It is the config key allow_non_loopback.
	AllowNonLoopback bool
	// Token is the API token (hex), see LoadOrCreateToken. Required.
	Token string
	// Metrics is served at /metrics, followed by the process's go_* and
	// process_* metrics (nil: those alone).
	Metrics MetricsWriter
	// Dashboard serves GET / and its assets, behind the session cookie
	// (default: a tiny placeholder page).
	Dashboard http.Handler
	// Logger receives request errors (default slog.Default()).
	Logger *slog.Logger
	// MaxEventStreams caps concurrent GET /api/v1/events streams; more
	// are refused with 503 (default 32, the config key max_event_streams).
	MaxEventStreams int
	// Version is reported by /healthz and fills Health.Version when the
	// backend leaves it empty.
	Version string
}

// MetricsWriter writes metrics in the Prometheus text format
// (*promreg.Registry).
type MetricsWriter interface {
	WritePrometheus(w io.Writer)
}

// Server timeouts. None of them bounds how long a response may be written,
// so Server-Sent Events streams are not cut off.
var (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second // cleared by the SSE handler for its stream
	idleTimeout       = 120 * time.Second
	shutdownGrace     = 5 * time.Second
)

const maxBodyBytes = 1 << 20 // 1 MiB

// Server is the REST server. Create it with New, bind with Listen, run with
// Serve.
type Server struct {
	b      Backend
	o      Options
	log    *slog.Logger
	now    func() time.Time
	router http.Handler
	hosts  hostcheck.Policy

	auth *authState

	mu   sync.Mutex
	ln   net.Listener
	port string // our port, for the Host check

	closing   chan struct{} // closed when shutdown begins: SSE streams end
	closeOnce sync.Once

	inflight inflight // handlers running under Serve

	streams streamCap     // open event streams against MaxEventStreams
	lists   chan struct{} // one token per list answer being produced, cap maxLists
}

// DefaultMaxEventStreams is used when Options.MaxEventStreams is 0.
const DefaultMaxEventStreams = 32

// streamCap counts open event streams against a limit that a config
// reload may change (streams already open stay open).
type streamCap struct {
	mu      sync.Mutex
	open    int
	max     int
	refused int // since the last log line
	logged  time.Time
}

// take opens a place; false when all are taken. warn is set, at most
// once a minute, with how many were refused since the last warning.
func (c *streamCap) take(now time.Time) (ok bool, warn int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open >= c.max {
		c.refused++
		if now.Sub(c.logged) >= time.Minute {
			warn, c.refused, c.logged = c.refused, 0, now
		}
		return false, warn
	}
	c.open++
	return true, 0
}

func (c *streamCap) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
}

func (c *streamCap) limit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

// SetMaxEventStreams changes the cap on concurrent event streams (the
// config key max_event_streams; n <= 0 means the default).
func (s *Server) SetMaxEventStreams(n int) {
	if n <= 0 {
		n = DefaultMaxEventStreams
	}
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	s.streams.max = n
}

// inflight counts running handlers so Serve can wait for the last one,
// even after http.Server.Close (which does not wait for handlers).
type inflight struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n      int
	closed bool
}

// enter registers a handler; false once Serve is finishing.
func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.cond != nil {
		f.cond.Broadcast()
	}
}

// closeAndWait refuses new handlers and waits for the running ones.
func (f *inflight) closeAndWait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.cond == nil {
		f.cond = sync.NewCond(&f.mu)
	}
	for f.n > 0 {
		f.cond.Wait()
	}
}

// New builds a Server. It does not bind: call Listen (or Serve).
func New(b Backend, o Options) (*Server, error) {
	if b == nil {
		return nil, errors.New("api: nil Backend")
	}
	if o.Listen == "" {
		o.Listen = wire.DefaultListen
	}
	if o.Token == "" {
		return nil, errors.New("api: empty API token")
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("api: listen address %q: %w (want host:port, e.g. %s)", o.Listen, err, wire.DefaultListen)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxEventStreams <= 0 {
		o.MaxEventStreams = DefaultMaxEventStreams
	}
	s := &Server{
		b:       b,
		o:       o,
		log:     o.Logger.With("component", "api"),
		now:     time.Now,
		port:    port,
		closing: make(chan struct{}),
		streams: streamCap{max: o.MaxEventStreams},
		lists:   make(chan struct{}, maxLists),
	}
	s.hosts = hostcheck.New(host, o.AllowNonLoopback)
	s.auth = newAuthState(o.Token, func() time.Time { return s.now() })
	s.router = s.routes()
	return s, nil
}

// Listen binds the listen address now, so the agent knows the port is ours
// before it starts any component. It refuses a non-loopback address unless
// AllowNonLoopback is set. Calling it twice is an error.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("api: already listening")
	}
	addr := s.o.Listen
	if !s.o.AllowNonLoopback {
		var err error
		if addr, err = loopbackAddr(s.o.Listen); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("api: listen on %s: the port is already in use (is another rouse running? change listen in the config or pass --listen): %w", s.o.Listen, err)
		}
		return fmt.Errorf("api: listen on %s: %w", s.o.Listen, err)
	}
	s.ln = ln
	if _, p, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		s.port = p
	}
	return nil
}

// Addr is the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Handler is the whole server as an http.Handler (middleware included), for
// tests and embedding.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

// Serve serves until ctx is done, then shuts down gracefully: event streams
// end, in-flight requests get a short grace (then their contexts are
// cancelled), and Serve returns once every connection, handler and
// goroutine it started has ended. It calls Listen if that was not done. A
// Server serves once.
func (s *Server) Serve(ctx context.Context) error {
	if s.Addr() == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()

	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	h := s.Handler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !s.inflight.enter() {
				setSecurityHeaders(w.Header())
				s.writeError(w, r, errf(http.StatusServiceUnavailable, wire.CodeUnavailable, "the agent is shutting down"))
				return
			}
			defer s.inflight.leave()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}

	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		errc <- srv.Serve(ln)
	})
	s.log.Info("api listening", "addr", ln.Addr().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		// Serve failed on its own (the listener died): still clean up.
	}
	s.closeOnce.Do(func() { close(s.closing) })
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	err := srv.Shutdown(sctx)
	cancel()
	if err != nil {
		s.log.Warn("api shutdown grace passed, closing connections", "err", err)
		cancelBase()
		_ = srv.Close()
	}
	wg.Wait()
	// Close does not wait for handlers; their contexts are cancelled, so
	// the stragglers end promptly.
	s.inflight.closeAndWait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", serveErr)
	}
	s.log.Info("api stopped")
	return nil
}

// loopbackAddr checks that listen binds loopback only and returns the
// address to bind, by hostcheck.LoopbackBind: the rule `rouse config
// check` applies too.
func loopbackAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("api: listen address %q: %w", listen, err)
	}
	bind, err := hostcheck.LoopbackBind(context.Background(), host)
	if err != nil {
		return "", fmt.Errorf("api: refusing to listen on %q: %v; use 127.0.0.1:%s or [::1]:%s, or set allow_non_loopback: true in the config to expose the API beyond this machine", listen, err, port, port)
	}
	return net.JoinHostPort(bind.String(), port), nil
}
