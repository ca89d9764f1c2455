// Package trackers owns the contract between the agent and the components it
// keeps alive: the Component interface and its optional capabilities, the
// states a component reports, the small storage interface trackers write
// through, and Kinds, the set of tracker kinds that config and agent look
// up.
//
// A component never imports the agent. The agent runs each component's Run
// in a goroutine it owns, and learns about readiness through the Host it
// passes in. Each kind's package exports its Kind as a value (exec.Kind,
// http.Kind, ...); a program assembles the set it offers with NewKinds and
// passes it to config and agent (cmd/rouse has the default set). Nothing
// registers itself: there is no global list of kinds.
package trackers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/platform/netwatch"
)

// State is a component's state as DESIGN.md names them.
type State string

// The component states. Components themselves report only StateStarting,
// StateReady, StateCatchingUp and StateWaiting (for the user, with an error
// saying what to do) through Host.Report; the agent sets the rest.
const (
	StateStopped    State = "stopped"     // stopped by the user; stays stopped across wakes and restarts
	StateWaiting    State = "waiting"     // waiting for a required dependency (or the network)
	StateStarting   State = "starting"    // Run is going, not ready yet
	StateReady      State = "ready"       // ready and serving
	StateCatchingUp State = "catching_up" // ready and serving, still backfilling what was missed
	StateDegraded   State = "degraded"    // its deadline passed before it was ready; it keeps trying
	StateFailed     State = "failed"      // the last attempt failed; the heartbeat retries it
	StatePaused     State = "paused"      // the machine is going to sleep
	// StateUnhealthy: it was ready, its health check failed retries times
	// in a row, and it is being restarted. Not ready: dependents wait.
	StateUnhealthy State = "unhealthy"
)

// IsReady reports whether a component in state s counts as ready for its
// dependents (ready or catching up).
func (s State) IsReady() bool { return s == StateReady || s == StateCatchingUp }

// Host is the agent's side of a running component. It is safe for
// concurrent use.
type Host interface {
	// Report tells the agent the component's state: StateReady or
	// StateCatchingUp once it serves, StateStarting when it lost readiness
	// (for example a stream reconnecting), StateWaiting when it waits for
	// the user (err says what to do; no deadline applies and it is not a
	// failure). err, when not nil, is recorded as the component's last
	// error whatever the state.
	Report(s State, err error)
	// Logger is the component's logger (component=name already attached).
	Logger() *slog.Logger
}

// Noter is implemented by hosts that record notable happenings that are
// not state changes — a stream's disconnect with its close code, say: the
// agent logs, stores and streams each as an event. Components check for it
// with a type assertion (a Host need not implement it).
type Noter interface {
	Note(event, detail string)
}

// ExitReporter is implemented by hosts that count restarts: a component
// that restarts what it supervises by itself (an exec child that exited)
// reports each exit and when it will try again, so the agent shows the
// restart count, the last exit and the next try. Components check for it
// with a type assertion.
type ExitReporter interface {
	Exited(err error, restartIn time.Duration)
}

// Component is anything the agent keeps alive. Run brings the component up,
// reports readiness through h, and keeps it up until ctx is cancelled. It
// returns nil after ctx is cancelled, or an error when the component gave
// up; the agent then marks it failed and its heartbeat calls Run again with
// backoff. Run must not return before every goroutine it started has ended.
type Component interface {
	Run(ctx context.Context, h Host) error
}

// Resumer is implemented by components that survive a sleep in place (an
// exec child process, a WebSocket stream). After a wake the agent sets the
// component to StateStarting and calls Resume while Run goes on; the
// component re-checks its outside world and reports StateReady again. Resume
// must return promptly. Components that are not Resumers are stopped before
// sleep and started again (a new Run) after the wake.
type Resumer interface {
	Resume(ctx context.Context)
}

// Pauser is implemented by Resumers that want to quiesce before the machine
// sleeps (stop polling, stop writing to the store). Pause must return within
// ctx's deadline. Run goes on; the next call is Resume.
type Pauser interface {
	Pause(ctx context.Context)
}

// Checker is implemented by components with a readiness check of their
// own (exec's ready:, a container's readiness). After the component is
// ready the agent runs Check every health interval, under the health
// timeout, as its health check unless the config names another: nil is
// healthy, an error says what failed (its text is shown and recorded, so
// it should carry the check's output, bounded). Check must be safe to call
// while Run goes on and must return when ctx ends.
type Checker interface {
	Check(ctx context.Context) error
}

// Restarter is implemented by components that restart what they watch in
// place (a container: docker restart) rather than through a new Run. After
// a failed health check the agent calls Restart while Run goes on, then
// waits for the component to report ready again; the others are restarted
// by ending their Run and starting a new one (an exec child's process
// group goes with its Run). Restart returns once the restart was asked
// for, or ctx ended.
type Restarter interface {
	Restart(ctx context.Context) error
}

// HealthOptions is implemented by a kind's option structs when the
// component can be a Checker. Config calls it to refuse a health: entry
// that cannot work: own says whether these options give the component a
// check of its own (the default health check); refuse, when not empty,
// says why health checks do not apply at all (an exec oneshot).
type HealthOptions interface {
	HealthCheck() (own bool, refuse string)
}

// Item is one thing a tracker saw: a scrobble, a stream message, a link
// change.
type Item struct {
	ID   string          // unique per tracker; the store deduplicates on (tracker, ID)
	Time time.Time       // when it happened (or when it arrived)
	Data json.RawMessage // the item as JSON
}

// Store is the storage a tracker writes through; agent/store satisfies it.
type Store interface {
	// SaveItems stores items, skipping IDs the tracker already has, and sets
	// the tracker's cursor, all in one transaction: the cursor never moves
	// past an uncommitted item. cursor "" leaves the cursor unchanged.
	SaveItems(ctx context.Context, tracker string, items []Item, cursor string) (added int, err error)
	// Cursor returns the tracker's cursor, "" when it has none.
	Cursor(ctx context.Context, tracker string) (string, error)
}

// Deps is what the agent hands a kind's constructor.
type Deps struct {
	Name    string            // the component's name
	Store   Store             // where items and cursors go
	Logger  *slog.Logger      // component=name attached
	Metrics *promreg.Registry // nil-safe: constructors must accept nil
	// StateDir is a directory the component may keep small state files in;
	// empty: none (nothing is persisted). It may not exist yet: the
	// component creates it (0700) when it first writes there.
	StateDir string
	// Network is the agent's view of the machine's network; nil when the
	// agent watches no network.
	Network NetworkSource
}

// NetworkSource is the machine's network status as the agent watches it;
// *netwatch.Watcher satisfies it.
type NetworkSource interface {
	Status() netwatch.Status
	// Subscribe returns a channel holding the latest status (1 slot,
	// coalesced) and an unsubscribe func.
	Subscribe() (<-chan netwatch.Status, func())
}

// FieldError is one invalid option, named by its YAML key relative to the
// tracker's entry (e.g. "ready.tcp").
type FieldError struct {
	Key string
	Msg string
}

func (e FieldError) Error() string { return e.Key + ": " + e.Msg }

// JoinFieldErrors joins fe into one error (errors.Join); nil when fe is
// empty. Constructors use it to refuse options that fail Validate.
func JoinFieldErrors(fe []FieldError) error {
	errs := make([]error, len(fe))
	for i, e := range fe {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// ScalarShorthand is implemented by an option type that may also be
// written as one value, like http's "paging: none". Config calls SetScalar
// with the value's text; a mapping is decoded field by field like any
// other, so a misspelt key in it is still an error. Kinds use this hook,
// never yaml.Unmarshaler, whose decoding would escape config's unknown-key
// check.
type ScalarShorthand interface {
	SetScalar(s string) error
}

// Validator is implemented by option structs that check themselves; config
// turns each FieldError into a file:line:key error.
type Validator interface {
	Validate() []FieldError
}

// Kind describes one tracker kind.
type Kind struct {
	Name string
	// NeedsNetwork is the default of the tracker's needs_network setting.
	NeedsNetwork bool
	// NewOptions returns a pointer to a fresh options struct with yaml tags
	// and defaults filled in; config decodes the entry's kind-specific keys
	// into it (unknown keys are errors).
	NewOptions func() any
	// New builds the component from decoded, validated options.
	New func(opts any, deps Deps) (Component, error)
}

// KindOf builds a Kind from a kind's typed pieces: defaults returns a fresh
// options struct with its defaults, build makes the component from decoded
// options. It saves every kind the same type assertion.
func KindOf[O any, C Component](name string, needsNetwork bool, defaults func() *O, build func(O, Deps) (C, error)) Kind {
	return Kind{
		Name:         name,
		NeedsNetwork: needsNetwork,
		NewOptions:   func() any { return defaults() },
		New: func(opts any, d Deps) (Component, error) {
			o, ok := opts.(*O)
			if !ok {
				return nil, fmt.Errorf("%s: options are %T, want %T", name, opts, o)
			}
			return build(*o, d)
		},
	}
}

// Kinds is a set of tracker kinds by name: the ones a program offers its
// config and agent. The zero value holds no kind. Build it with NewKinds;
// it is not changed afterwards, so it is safe for concurrent use.
type Kinds struct {
	byName map[string]Kind
}

// NewKinds returns the set of ks. It panics on an empty or duplicate name:
// the set is assembled in code, and such a set is a programming error.
func NewKinds(ks ...Kind) Kinds {
	m := make(map[string]Kind, len(ks))
	for _, k := range ks {
		if k.Name == "" {
			panic("trackers: a kind without a name")
		}
		if _, dup := m[k.Name]; dup {
			panic(fmt.Sprintf("trackers: kind %q given twice", k.Name))
		}
		m[k.Name] = k
	}
	return Kinds{byName: m}
}

// Lookup returns the kind named name.
func (ks Kinds) Lookup(name string) (Kind, bool) {
	k, ok := ks.byName[name]
	return k, ok
}

// Names returns the kinds' names, sorted.
func (ks Kinds) Names() []string {
	names := make([]string, 0, len(ks.byName))
	for n := range ks.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Reporter tells a host a component's state once per change — a report
// that carries an error always goes through — the drop-repeats rule the
// tracker kinds share. The zero value is ready to use.
type Reporter struct {
	mu   sync.Mutex
	last State
}

// Report passes s and err to h unless s repeats the last state and err is
// nil.
func (r *Reporter) Report(h Host, s State, err error) {
	r.mu.Lock()
	changed := r.last != s
	r.last = s
	r.mu.Unlock()
	if changed || err != nil {
		h.Report(s, err)
	}
}

// Set records s as the state the host already has (the agent set it: a
// Run begins, a wake began) without reporting it.
func (r *Reporter) Set(s State) {
	r.mu.Lock()
	r.last = s
	r.mu.Unlock()
}

// Last is the state last reported or set.
func (r *Reporter) Last() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}
