// Package container owns the container tracker kind: a component that is an
// existing Docker (or Podman) container, started, watched and stopped
// through the Engine API, so containers sit in the same dependency graph as
// exec tunnels and trackers and get the same wake machinery.
//
// Run finds the container (by name or id, or by docker compose's project
// and service labels), subscribes to the engine's event stream for it, and
// only then starts it when it is not running, so no event is missed. It is
// ready when Docker's own HEALTHCHECK says healthy (the default when the
// container has one), when a tcp, http or in-container exec check passes,
// or, with no check, once it runs. After that the event stream alone moves
// the component: a container that dies, is killed or turns unhealthy is
// reported not ready at once (no polling), and one that died is started
// again after a capped exponential backoff with full jitter — unless the
// engine's own restart policy brought it back first.
//
// rouse never creates, pulls or removes anything: a container that does not
// exist is an error naming it, and Run returns it so the component is
// failed and the heartbeat retries. An engine that does not answer (Docker
// Desktop not started yet after a wake, dockerd restarting) is a wait, not a
// failure: Run reports the component starting with the reason and tries the
// engine again every second, so the component starts the moment the engine
// answers.
//
// The component is a Resumer: a container survives a sleep in place, so a
// wake only checks it again (or restarts it with restart_on_wake). When the
// component stops (rouse stop, a config change, agent shutdown) the
// container is stopped with its own stop timeout, unless stop_on_stop is
// false.
//
// The Engine API client is rouse's own (internal/engine): the official
// one cost every user of rouse 1.66 MB of binary and 0.5 MB of allocations
// at package init for the dozen calls made here; that package's doc has
// the figures. It negotiates the API version with old engines (Debian's
// docker.io 20.10, Podman's compat socket) and new ones.
package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/internal/engine"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/probe"
)

// Kind is the container tracker kind.
var Kind = trackers.KindOf("container", false, DefaultOptions, New)

var (
	_ trackers.Component     = (*Tracker)(nil)
	_ trackers.Resumer       = (*Tracker)(nil)
	_ trackers.Checker       = (*Tracker)(nil)
	_ trackers.Restarter     = (*Tracker)(nil)
	_ trackers.HealthOptions = (*Options)(nil)
)

// Timing of the parts that are not options.
const (
	// engineRetry is how often an engine that does not answer is tried.
	engineRetry = time.Second
	// callTimeout bounds one Engine API call (start, inspect, exec).
	callTimeout = 30 * time.Second
	// stopSlack is added to the container's own stop timeout while
	// waiting for the engine to stop it.
	stopSlack = 5 * time.Second
	// defaultStopTimeout is the engine's default stop timeout (seconds).
	defaultStopTimeout = 10
)

// Tracker is one container component. Build it with New.
type Tracker struct {
	opts   Options
	name   string
	log    *slog.Logger
	engine string // the address, for messages
	cli    *engine.Client
	resume chan struct{} // 1-slot: wakes merge
	rand   func(n int64) int64
	http   *http.Client // the ready.http check's client

	mu sync.Mutex
	id string // the container's id once found
}

// New builds a container component from validated options. It does not
// talk to the engine: that is Run's job, which waits for it.
func New(o Options, deps trackers.Deps) (*Tracker, error) {
	if err := trackers.JoinFieldErrors(o.Validate()); err != nil {
		return nil, fmt.Errorf("container %s: %w", deps.Name, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default().With("component", deps.Name)
	}
	cli, err := engine.New(o.Engine)
	if err != nil {
		return nil, fmt.Errorf("container %s: engine: %w", deps.Name, err)
	}
	return &Tracker{
		opts:   o,
		name:   deps.Name,
		log:    log,
		engine: cli.Host(),
		cli:    cli,
		resume: make(chan struct{}, 1),
		rand:   rand.Int64N,
		http:   probe.NewHTTPClient(),
	}, nil
}

// ID is the container's id once Run found it, "" before.
func (t *Tracker) ID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.id
}

// Resume asks Run to check the container again after a wake (and restart
// it with restart_on_wake).
func (t *Tracker) Resume(context.Context) {
	select {
	case t.resume <- struct{}{}:
	default:
	}
}

// notFoundError is a container that does not exist: Run gives up on it.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// engineDownError is an engine that does not answer: a wait.
type engineDownError struct{ err error }

func (e *engineDownError) Error() string {
	return "waiting for the container engine: " + e.err.Error()
}
func (e *engineDownError) Unwrap() error { return e.err }

// Run starts and watches the container until ctx ends, then stops it
// (stop_on_stop). It returns an error only when the container does not
// exist.
func (t *Tracker) Run(ctx context.Context, h trackers.Host) error {
	defer t.cli.Close()
	defer t.http.CloseIdleConnections()
	b := backoff.Policy{Initial: t.opts.RestartBackoff.Initial, Max: t.opts.RestartBackoff.Max, Rand: t.rand}
	attempt := 0
	for {
		started := time.Now()
		err := t.session(ctx, h)
		if ctx.Err() != nil {
			t.stop()
			return nil
		}
		var nf *notFoundError
		if errors.As(err, &nf) {
			return err
		}
		h.Report(trackers.StateStarting, err)
		var wait time.Duration
		var down *engineDownError
		if errors.As(err, &down) {
			wait = engineRetry
		} else {
			if time.Since(started) > time.Minute {
				attempt = 0 // it ran a good while: start the backoff again
			}
			wait = b.Full(attempt)
			attempt++
		}
		select {
		case <-ctx.Done():
			t.stop()
			return nil
		case <-t.resume:
			attempt = 0 // a wake: try at once
		case <-time.After(wait):
		}
	}
}

// session is one stretch of watching: it returns when the container died,
// the engine went away, or ctx ended.
func (t *Tracker) session(ctx context.Context, h trackers.Host) error {
	if err := t.ping(ctx); err != nil {
		return &engineDownError{err: err}
	}
	id, err := t.find(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.id = id
	t.mu.Unlock()

	// Subscribe before starting: the start, the health changes and a quick
	// death all arrive on this stream.
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	ev, err := t.cli.Events(ectx, engine.Filters{"type": {"container"}, "container": {id}})
	if err != nil {
		return &engineDownError{err: err}
	}
	defer ev.Close()

	info, err := t.inspect(ctx, id)
	if err != nil {
		return err
	}
	health, err := t.healthMode(info)
	if err != nil {
		return &notFoundError{msg: err.Error()}
	}
	if !info.State.Running || info.State.Paused {
		if err := t.start(ctx, id, info); err != nil {
			return err
		}
		if info, err = t.inspect(ctx, id); err != nil {
			return err
		}
	}
	w := &watch{t: t, h: h, id: id, health: health, running: info.State.Running}
	w.rep.Set(trackers.StateStarting) // what Run reports before a session
	if health && info.State.Health != nil {
		w.healthy = info.State.Health.Status == engine.Healthy
	}
	return w.loop(ctx, ev)
}

// watch is the state of one session's event loop.
type watch struct {
	t       *Tracker
	h       trackers.Host
	id      string
	health  bool // Docker's HEALTHCHECK decides readiness
	running bool
	healthy bool
	rep     trackers.Reporter // what the host was last told
}

func (w *watch) loop(ctx context.Context, ev *engine.Events) error {
	t := w.t
	var tick <-chan time.Time // the tcp/http/exec check while not ready
	var timer *time.Timer
	// the check's pause: 10ms for tcp/http, ready_interval/4 for exec,
	// doubling to ready_interval
	pace := probe.NewPace(t.opts.ReadyInterval, len(t.opts.Ready.Exec) > 0)
	stopTimer := func() {
		if timer != nil {
			timer.Stop()
		}
		timer, tick = nil, nil
	}
	defer stopTimer()
	again := func() {
		if timer == nil {
			timer = time.NewTimer(pace.Next())
			tick = timer.C
		} else {
			timer.Reset(pace.Next())
		}
	}
	evaluate := func() {
		switch {
		case !w.running:
			w.report(false, errors.New("the container is not running"))
		case w.health:
			if w.healthy {
				w.report(true, nil)
			} else {
				w.report(false, nil)
			}
		case t.checkless():
			w.report(true, nil)
		default:
			if w.ready() {
				return
			}
			if err := t.check(ctx, w.id); err == nil {
				stopTimer()
				w.report(true, nil)
				return
			}
			if timer == nil {
				pace.Reset()
				again()
			}
		}
	}
	evaluate()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.resume:
			w.rep.Set(trackers.StateStarting) // the agent set it so
			if t.opts.RestartOnWake {
				w.h.Report(trackers.StateStarting, nil)
				if err := t.restart(ctx, w.id, "wake"); err != nil {
					return err
				}
			}
			info, err := t.inspect(ctx, w.id)
			if err != nil {
				return err
			}
			w.running = info.State.Running && !info.State.Paused
			if !w.running {
				return errors.New("the container was not running after the wake")
			}
			if w.health && info.State.Health != nil {
				w.healthy = info.State.Health.Status == engine.Healthy
			}
			w.h.Report(trackers.StateStarting, nil)
			stopTimer() // a wake starts the check's ramp over
			evaluate()
		case <-tick:
			// Ready, or not running: the next start or wake evaluates
			// again and starts the ramp over.
			if w.ready() || !w.running {
				stopTimer()
				continue
			}
			if err := t.check(ctx, w.id); err == nil {
				stopTimer()
				w.report(true, nil)
			} else {
				w.rep.Report(w.h, trackers.StateStarting, err)
				again()
			}
		case m, ok := <-ev.C:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &engineDownError{err: ev.Err()}
			}
			if err := w.event(ctx, m); err != nil {
				return err
			}
			if !w.ready() {
				evaluate()
			}
		}
	}
}

// event applies one engine event; an error ends the session.
func (w *watch) event(ctx context.Context, m engine.Event) error {
	t := w.t
	a := m.Action
	switch {
	case a == "start", a == "unpause":
		w.running = true
		w.healthy = false
		t.log.Debug("container started", "id", short(w.id))
	case a == "pause":
		w.running = false
		w.report(false, errors.New("the container was paused"))
	case a == "die":
		w.running = false
		code := m.Actor.Attributes["exitCode"]
		err := fmt.Errorf("the container exited with code %s", code)
		w.note("container_died", "exit code "+code)
		t.log.Info("container exited", "id", short(w.id), "exit_code", code)
		w.report(false, err)
		return err
	case a == "destroy":
		return &notFoundError{msg: fmt.Sprintf("%s was removed from %s", t.opts.target(), t.engine)}
	case strings.HasPrefix(a, "health_status"):
		status := strings.TrimSpace(strings.TrimPrefix(a, "health_status"))
		status = strings.TrimSpace(strings.TrimPrefix(status, ":"))
		if status == "" {
			status = m.Actor.Attributes["health_status"]
		}
		if !w.health {
			return nil
		}
		switch status {
		case engine.Healthy:
			w.healthy = true
			w.report(true, nil)
		case engine.Unhealthy:
			w.healthy = false
			reason := "its HEALTHCHECK failed"
			if info, err := t.inspect(ctx, w.id); err == nil && info.State.Health != nil {
				if n := len(info.State.Health.Log); n > 0 {
					if out := strings.TrimSpace(info.State.Health.Log[n-1].Output); out != "" {
						reason += ": " + lastLine(out)
					}
				}
			}
			w.note("container_unhealthy", reason)
			w.report(false, errors.New("the container is unhealthy: "+reason))
		}
	}
	return nil
}

// report tells the host, once per change of readiness.
func (w *watch) report(ready bool, err error) {
	s := trackers.StateStarting
	if ready {
		s, err = trackers.StateReady, nil
	}
	w.rep.Report(w.h, s, err)
}

// ready says whether the host was last told the container is ready.
func (w *watch) ready() bool { return w.rep.Last() == trackers.StateReady }

// note records a happening that is not a state change, when the host
// takes notes.
func (w *watch) note(event, detail string) {
	if n, ok := w.h.(trackers.Noter); ok {
		n.Note(event, detail)
	}
}

func (t *Tracker) checkless() bool {
	r := t.opts.Ready
	return r.TCP == "" && r.HTTP == "" && len(r.Exec) == 0
}

// healthMode says whether Docker's HEALTHCHECK decides readiness.
func (t *Tracker) healthMode(info engine.Container) (bool, error) {
	has := info.Config != nil && info.Config.Healthcheck != nil &&
		len(info.Config.Healthcheck.Test) > 0 && info.Config.Healthcheck.Test[0] != "NONE"
	want := t.opts.Ready.Health
	switch {
	case want == nil:
		return has && t.checkless(), nil
	case *want && !has:
		return false, fmt.Errorf("%s has no HEALTHCHECK, but ready.health is true: add one (docker run --health-cmd …) or use ready.tcp, ready.http or ready.exec", t.opts.target())
	default:
		return *want, nil
	}
}

func (t *Tracker) ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := t.cli.Ping(cctx); err != nil {
		return fmt.Errorf("%s does not answer: %w", t.engine, err)
	}
	return nil
}

// find returns the container's id.
func (t *Tracker) find(ctx context.Context) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if t.opts.Container != "" {
		r, err := t.cli.Inspect(cctx, t.opts.Container)
		if err != nil {
			if errors.Is(err, engine.ErrNotFound) {
				return "", &notFoundError{msg: fmt.Sprintf("%s does not exist on %s: rouse starts existing containers, create it first (docker create --name %s …)", t.opts.target(), t.engine, t.opts.Container)}
			}
			return "", fmt.Errorf("inspect %s: %w", t.opts.target(), err)
		}
		return r.ID, nil
	}
	items, err := t.cli.List(cctx, true, engine.Filters{"label": {
		"com.docker.compose.project=" + t.opts.Compose.Project,
		"com.docker.compose.service=" + t.opts.Compose.Service,
	}})
	if err != nil {
		return "", fmt.Errorf("list containers of %s: %w", t.opts.target(), err)
	}
	switch len(items) {
	case 0:
		return "", &notFoundError{msg: fmt.Sprintf("%s has no container on %s: create it first (docker compose -p %s create %s)", t.opts.target(), t.engine, t.opts.Compose.Project, t.opts.Compose.Service)}
	case 1:
		return items[0].ID, nil
	default:
		return "", &notFoundError{msg: fmt.Sprintf("%s has %d containers on %s (scaled?): name one with container:", t.opts.target(), len(items), t.engine)}
	}
}

func (t *Tracker) inspect(ctx context.Context, id string) (engine.Container, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := t.cli.Inspect(cctx, id)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return engine.Container{}, &notFoundError{msg: fmt.Sprintf("%s was removed from %s", t.opts.target(), t.engine)}
		}
		return engine.Container{}, fmt.Errorf("inspect %s: %w", t.opts.target(), err)
	}
	return r, nil
}

func (t *Tracker) start(ctx context.Context, id string, info engine.Container) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if info.State.Paused {
		if err := t.cli.Unpause(cctx, id); err != nil {
			return fmt.Errorf("unpause %s: %w", t.opts.target(), err)
		}
		return nil
	}
	t.log.Info("starting container", "id", short(id))
	if err := t.cli.Start(cctx, id); err != nil {
		return fmt.Errorf("start %s: %w", t.opts.target(), err)
	}
	return nil
}

func (t *Tracker) restart(ctx context.Context, id, why string) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout+time.Duration(defaultStopTimeout)*time.Second)
	defer cancel()
	t.log.Info("restarting container", "id", short(id), "why", why)
	if err := t.cli.Restart(cctx, id, -1); err != nil {
		return fmt.Errorf("restart %s: %w", t.opts.target(), err)
	}
	return nil
}

// Check checks the container once (trackers.Checker), the default health
// check: its ready.tcp, ready.http or ready.exec check when it has one;
// otherwise it must be running and, when Docker's HEALTHCHECK decides its
// readiness, healthy.
func (t *Tracker) Check(ctx context.Context) error {
	id := t.ID()
	if id == "" {
		return errors.New("no container found yet")
	}
	if !t.checkless() {
		return t.check(ctx, id)
	}
	info, err := t.inspect(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case !info.State.Running:
		return fmt.Errorf("%s is not running (%s)", t.opts.target(), info.State.Status)
	case info.State.Paused:
		return fmt.Errorf("%s is paused", t.opts.target())
	}
	health, err := t.healthMode(info)
	if err != nil {
		return err
	}
	if health && info.State.Health != nil && info.State.Health.Status != engine.Healthy {
		msg := fmt.Sprintf("%s is %s", t.opts.target(), info.State.Health.Status)
		if n := len(info.State.Health.Log); n > 0 {
			if out := lastLine(info.State.Health.Log[n-1].Output); out != "" {
				msg += ": " + out
			}
		}
		return errors.New(msg)
	}
	return nil
}

// Restart restarts the container through the Engine API (docker
// restart), the agent's answer to a failed health check
// (trackers.Restarter); Run sees it die and start on the event stream and
// reports it ready again.
func (t *Tracker) Restart(ctx context.Context) error {
	id := t.ID()
	if id == "" {
		return errors.New("no container found yet")
	}
	return t.restart(ctx, id, "health check failed")
}

// stop stops the container with its own stop timeout (stop_on_stop).
func (t *Tracker) stop() {
	id := t.ID()
	if id == "" || !t.opts.stopOnStop() {
		return
	}
	secs := defaultStopTimeout
	ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
	r, err := t.cli.Inspect(ictx, id)
	icancel()
	if err != nil || !r.State.Running {
		return
	}
	if r.Config != nil && r.Config.StopTimeout != nil {
		secs = *r.Config.StopTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+stopSlack)
	defer cancel()
	t.log.Info("stopping container", "id", short(id))
	if err := t.cli.Stop(ctx, id, -1); err != nil {
		t.log.Warn("cannot stop the container", "id", short(id), "err", err)
	}
}

// check runs the tcp, http or exec readiness check once.
func (t *Tracker) check(ctx context.Context, id string) error {
	cctx, cancel := context.WithTimeout(ctx, t.opts.ReadyTimeout)
	defer cancel()
	r := t.opts.Ready
	switch {
	case r.TCP != "":
		if err := probe.TCP(cctx, r.TCP); err != nil {
			return fmt.Errorf("ready.tcp: %w", err)
		}
		return nil
	case r.HTTP != "":
		if err := probe.HTTP(cctx, t.http, r.HTTP); err != nil {
			return fmt.Errorf("ready.http: %w", err)
		}
		return nil
	case len(r.Exec) > 0:
		return t.execCheck(cctx, id)
	}
	return nil
}

// execCheck runs ready.exec inside the container, attached (as `docker
// exec` does: Podman's compat API does not report the end of a detached
// exec), reads its output to the end and then asks for its exit code.
func (t *Tracker) execCheck(ctx context.Context, id string) error {
	var out bytes.Buffer
	lw := &limitedWriter{w: &out, n: 4096}
	code, err := t.cli.Exec(ctx, id, t.opts.Ready.Exec, lw, lw)
	if err != nil {
		return fmt.Errorf("ready.exec: %w", err)
	}
	if code != 0 {
		if last := lastLine(out.String()); last != "" {
			return fmt.Errorf("ready.exec: %s exited with code %d: %s", t.opts.Ready.Exec[0], code, last)
		}
		return fmt.Errorf("ready.exec: %s exited with code %d", t.opts.Ready.Exec[0], code)
	}
	return nil
}

// limitedWriter keeps at most n bytes and drops the rest: a check's output
// is for its error message, never held in full.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
