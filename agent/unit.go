package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// unit is the agent's record of one component: its config, its state and
// the Run currently going, if any.
type unit struct {
	name      string
	kind      string
	comp      trackers.Component
	required  []string
	optional  []string
	restartOn []string      // required dependencies with restart: true
	deadline  time.Duration // the configured one; with autoDeadline, the fallback
	// autoDeadline: `deadline: auto`, learned (learned, under mu) from the
	// wake history before each restore (deadline.go).
	autoDeadline bool
	needsNet     bool
	counts       bool // counts for /readyz
	// demand: it starts on demand (on_demand, or only on-demand
	// components need it): not at boot nor by a wake unless a chain
	// holds it (chains.go).
	demand bool
	hash   string // config hash: a reload restarts only changed units
	log    *slog.Logger

	mu        sync.Mutex
	state     trackers.State
	since     time.Time
	attempts  int
	lastErr   string
	nextRetry time.Time // zero: no retry scheduled
	readyAt   time.Time
	changed   chan struct{} // closed and replaced on every state change
	run       *run          // the Run going, nil when none
	op        int           // bring-ups in progress (restore, start or heartbeat)
	stopped   bool          // stopped by the user
	// userWait: the component itself reported StateWaiting (for the
	// user, e.g. to enable an extension); cleared by any state change.
	userWait bool
	launched bool            // its Run was started at least once
	restarts int             // Runs (or exec children) started again since the agent started
	lastExit *wire.Exit      // how the last Run (or exec child) ended
	childTry time.Time       // when a component's own supervisor restarts its child
	blocked  string          // why it waits for a dependency that will not come (a stopped one)
	holders  map[string]bool // with demand: the chains (by component) that hold it

	// The start limit (config start_limit in start_window): recent
	// failures, at most startLimit of them, and whether the limit was
	// hit (failed, no retry until a wake, a config change or a start).
	startLimit  int
	startWindow time.Duration
	fails       []time.Time
	limited     bool
	learned     *wire.AutoDeadline // with autoDeadline: the last choice, nil before the first

	// Following a dependency (follow.go): heldFor is the required
	// dependency whose leaving ready made this ready component wait (""
	// when not held); held is the state its own Run reported since, to
	// return to; heldRestart: a restart: true dependency left meanwhile.
	heldFor     string
	held        trackers.State
	heldRestart bool

	health *healthSetup // the health check (health.go); nil: none
	hs     healthState  // its record, under mu
}

// failedLocked records a failure at now (u.mu held) and reports whether
// it makes startLimit failures within startWindow.
func (u *unit) failedLocked(now time.Time) bool {
	if u.startLimit <= 0 {
		return false
	}
	cut := now.Add(-u.startWindow)
	keep := u.fails[:0]
	for _, t := range u.fails {
		if t.After(cut) {
			keep = append(keep, t)
		}
	}
	u.fails = append(keep, now)
	if len(u.fails) > u.startLimit {
		u.fails = u.fails[len(u.fails)-u.startLimit:]
	}
	return len(u.fails) >= u.startLimit
}

// unlimitLocked clears the start limit's hold and history (a wake, a
// config change, a manual start): the component gets startLimit tries
// again.
func (u *unit) unlimitLocked() {
	u.limited, u.fails = false, nil
}

// limitError is the error of a component that hit its start limit.
func (u *unit) limitError(last string) error {
	return fmt.Errorf("start limit hit: %d failures within %s, not retried until a wake, a config change or a start (last: %s)", u.startLimit, u.startWindow, last)
}

// run is one call of the component's Run.
type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
	// sick: it failed its health check and is being restarted; what it
	// reports no longer counts (under unit.mu).
	sick bool
}

// host is what a component's Run reports through; reports from an old run
// are ignored.
type host struct {
	a *Agent
	u *unit
	r *run
}

func (h host) Logger() *slog.Logger { return h.u.log }

// Note streams and stores something the component noted (trackers.Noter).
// It is stored with the component's state history, in its current state.
func (h host) Note(event, detail string) {
	h.u.mu.Lock()
	stale, st := h.u.run != h.r, h.u.state
	h.u.mu.Unlock()
	if stale {
		return
	}
	at := time.Now().Round(0).UTC()
	h.a.events.publish(wire.Event{Type: wire.EventNote, At: at, Note: &wire.NoteEvent{Name: h.u.name, Event: event, Detail: detail}})
	select {
	case h.a.stateQ <- store.StateEvent{Component: h.u.name, State: string(st), Previous: string(st), Error: event + ": " + detail, At: at}:
	default:
		h.a.metrics.droppedEvents.Inc()
	}
}

var _ trackers.Noter = host{}

// Exited counts a restart the component does by itself (an exec child
// that exited and is started again after restartIn).
// When the exit makes the start limit, the component is failed and its
// Run is cancelled: the child is not started again.
func (h host) Exited(err error, restartIn time.Duration) {
	h.u.mu.Lock()
	if h.u.run != h.r || h.u.limited {
		h.u.mu.Unlock()
		return
	}
	now := time.Now()
	h.u.lastExit = newExit(now, err)
	if err == nil {
		err = errors.New("exited")
	}
	if !h.u.failedLocked(now) {
		h.u.restarts++
		h.u.childTry = now.Add(restartIn)
		h.u.mu.Unlock()
		return
	}
	h.u.limited = true
	h.u.childTry, h.u.nextRetry = time.Time{}, time.Time{}
	lerr := h.u.limitError(err.Error())
	h.u.lastErr = lerr.Error()
	c := h.a.setStateLocked(h.u, trackers.StateFailed, lerr)
	h.u.mu.Unlock()
	h.r.cancel() // the Run ends: its goroutine sees the limit and keeps the state
	h.u.log.Warn("start limit hit", "failures", h.u.startLimit, "window", h.u.startWindow)
	h.a.metrics.failures.With(h.u.name, "start_limit").Inc()
	h.a.afterChange(c)
}

var _ trackers.ExitReporter = host{}

// newExit records an end at at; err nil is a stop that was asked for.
func newExit(at time.Time, err error) *wire.Exit {
	e := &wire.Exit{At: at.Round(0).UTC()}
	if err == nil {
		return e
	}
	e.Error = err.Error()
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) && ec.ExitCode() >= 0 {
		c := ec.ExitCode()
		e.Code = &c
	}
	return e
}

func (h host) Report(s trackers.State, err error) {
	h.u.mu.Lock()
	if h.u.run != h.r || h.r.sick {
		h.u.mu.Unlock()
		return
	}
	if err != nil {
		h.u.lastErr = err.Error()
	}
	switch s {
	case trackers.StateReady, trackers.StateCatchingUp, trackers.StateStarting, trackers.StateWaiting:
	default:
		h.u.mu.Unlock()
		h.u.log.Warn("component reported a state it may not set", "state", s)
		return
	}
	if h.u.state == trackers.StatePaused || h.u.state == trackers.StateStopped || h.u.limited {
		h.u.mu.Unlock()
		return
	}
	if h.u.heldFor != "" {
		// Waiting for a dependency: what it says now is where it goes
		// back to when the dependency is ready again.
		h.u.held = s
		h.u.mu.Unlock()
		return
	}
	// A component that is degraded stays degraded until it is ready again.
	if s == trackers.StateStarting && h.u.state == trackers.StateDegraded {
		h.u.mu.Unlock()
		return
	}
	ch := h.a.setStateLocked(h.u, s, err)
	h.u.userWait = s == trackers.StateWaiting
	h.u.mu.Unlock()
	h.a.afterChange(ch)
}

// snapshot is a consistent copy of a unit's mutable fields.
type snapshot struct {
	state     trackers.State
	since     time.Time
	attempts  int
	lastErr   string
	nextRetry time.Time
	readyAt   time.Time
	running   bool
	stopped   bool
	restarts  int
	lastExit  *wire.Exit
	childTry  time.Time
	blocked   string
	limited   bool
}

func (u *unit) snapshot() snapshot {
	u.mu.Lock()
	defer u.mu.Unlock()
	return snapshot{u.state, u.since, u.attempts, u.lastErr, u.nextRetry, u.readyAt, u.run != nil, u.stopped,
		u.restarts, u.lastExit, u.childTry, u.blocked, u.limited}
}

// wait returns the channel closed at the next state change, and the state now.
func (u *unit) wait() (<-chan struct{}, trackers.State) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.changed, u.state
}

// errDeadline marks a bring-up whose deadline passed before the component
// was ready. It is the component's own deadline, not the agent shutting
// down, so callers must not take it for cancellation.
var errDeadline = errors.New("deadline passed before the component was ready")

// errUserWait: the component waits for the user (it reported
// StateWaiting); its deadline does not apply.
var errUserWait = errors.New("waiting for the user")

// waitReady waits until u is ready (nil), its Run ended with an error, the
// component waits for the user, or ctx is done.
func (u *unit) waitReady(ctx context.Context) error {
	for {
		ch, st := u.wait()
		if st.IsReady() {
			return nil
		}
		if st == trackers.StateFailed {
			u.mu.Lock()
			msg := u.lastErr
			u.mu.Unlock()
			return fmt.Errorf("failed: %s", msg)
		}
		if st == trackers.StateStopped {
			return errors.New("stopped")
		}
		u.mu.Lock()
		userWait, msg := u.userWait && u.run != nil, u.lastErr
		u.mu.Unlock()
		if userWait {
			// Waiting for the user is not slowness: no deadline applies.
			return fmt.Errorf("%w: %s", errUserWait, msg)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
