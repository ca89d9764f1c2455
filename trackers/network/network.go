// Package network owns the network tracker kind: a component that records
// every online/offline transition of the machine and, for every wake, how
// long the network took to come back. It is part of rouse's embedded
// default config, so a fresh install already answers "was I offline, and
// how long does my Wi-Fi take after a resume?".
//
// Items (trackers.Store.SaveItems), with an ID made of the event time in
// zero-padded Unix nanoseconds and the event name, so IDs sort by time:
//
//	{"event":"online"|"offline","online":bool,"reason":"...","addresses":[...]}
//	{"event":"wake_network","after_ms":N,"already_online":bool,"woke_at":"...","reason":"..."}
//
// addresses appears only with record_addresses: true (default false:
// addresses tell where the machine was). The tracker's cursor is the last
// recorded state ("online" or "offline"), so a restart of the agent records
// the current state only when it differs from the last one stored.
//
// Where the status comes from: the kind's constructor takes the agent's
// network watch from trackers.Deps.Network; NewTracker takes a Source
// explicitly (tests, embedders). A tracker with no source (an agent that
// watches no network) fails its Run with an error saying so.
//
// Wake timing: the tracker is a Resumer. Resume notes the wake time; if the
// network is online at that moment the wake is recorded at once with
// after_ms 0 and already_online true, else the next online transition
// records after_ms = its time minus the wake time. The clock starts when
// the agent calls Resume (after it reopened the store), not at the kernel's
// resume, which the Resumer contract does not carry; and a status that
// still says "online" from before the sleep (the watcher has not yet seen
// the link drop) counts as already online. A second wake before the network
// came back replaces the first.
//
// Metrics (when deps.Metrics is set), labelled tracker=<name>:
// rouse_network_online (gauge, 1 online) and
// rouse_network_after_wake_seconds (histogram of the wake measure).
//
// Pause holds writes: transitions seen while the machine goes to sleep are
// kept in memory (at most maxPending) and written after Resume. A failed
// write is kept and retried after retryDelay, or with the next event.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/platform/netwatch"
	"github.com/rouse-dev/rouse/trackers"
)

// Kind is the network tracker kind; its source is the agent's network
// watch (trackers.Deps.Network).
var Kind = trackers.KindOf("network", false, DefaultOptions, func(o Options, d trackers.Deps) (*Tracker, error) {
	return NewTracker(o, d.Network, d), nil
})

var (
	_ trackers.Component = (*Tracker)(nil)
	_ trackers.Resumer   = (*Tracker)(nil)
	_ trackers.Pauser    = (*Tracker)(nil)
	_ trackers.Validator = (*Options)(nil)
	_ Source             = (*netwatch.Watcher)(nil)
)

// Options are the kind's YAML options.
type Options struct {
	// RecordAddresses adds the usable addresses to each transition item.
	// Default false.
	RecordAddresses bool `yaml:"record_addresses"`
}

// DefaultOptions returns the defaults.
func DefaultOptions() *Options { return &Options{} }

// Validate implements trackers.Validator; every value is valid.
func (o *Options) Validate() []trackers.FieldError { return nil }

// Source is where the tracker reads the network status; *netwatch.Watcher
// satisfies it.
type Source = trackers.NetworkSource

// Tuning.
const (
	maxPending = 1000            // items held while paused or failing; the oldest are dropped
	retryDelay = 5 * time.Second // after a failed write
)

// Tracker records network transitions. Build it with NewTracker.
type Tracker struct {
	name  string
	opts  Options
	src   Source // nil: Run fails (no network watch)
	store trackers.Store
	log   *slog.Logger

	wake chan time.Time // 1 slot, the latest wake wins

	online    *promreg.Gauge     // nil without a registry
	wakeDelay *promreg.Histogram // nil without a registry

	// sem is held while writing; Pause takes it so that no write is in
	// flight when it returns.
	sem    chan struct{}
	mu     sync.Mutex
	paused bool
}

// NewTracker builds a tracker reading src (nil: its Run fails, saying
// there is no network source).
func NewTracker(opts Options, src Source, deps trackers.Deps) *Tracker {
	log := deps.Logger
	if log == nil {
		log = slog.Default().With("component", deps.Name)
	}
	t := &Tracker{
		name:  deps.Name,
		opts:  opts,
		src:   src,
		store: deps.Store,
		log:   log,
		wake:  make(chan time.Time, 1),
		sem:   make(chan struct{}, 1),
	}
	if deps.Metrics != nil {
		// A registration error leaves the metric unexported; the tracker
		// works the same.
		online, _ := deps.Metrics.GaugeVec("rouse_network_online",
			"1 when the network tracker last saw the machine online, else 0.", "tracker")
		t.online = online.With(deps.Name)
		wakeDelay, _ := deps.Metrics.HistogramVec("rouse_network_after_wake_seconds",
			"How long the network took to come back after each wake (0 when already online).",
			[]float64{0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300}, "tracker")
		t.wakeDelay = wakeDelay.With(deps.Name)
	}
	return t
}

// NewWithSource builds a tracker named name (overriding deps.Name when not
// empty) with default options, reading src.
func NewWithSource(name string, src Source, deps trackers.Deps) *Tracker {
	if name != "" {
		deps.Name = name
	}
	return NewTracker(*DefaultOptions(), src, deps)
}

// Resume notes a wake; the Run loop measures from now.
func (t *Tracker) Resume(ctx context.Context) {
	now := time.Now()
	t.mu.Lock()
	t.paused = false
	select { // replace an unhandled earlier wake
	case <-t.wake:
	default:
	}
	t.wake <- now
	t.mu.Unlock()
}

// Pause stops writing until Resume; it waits for a write in flight, up to
// ctx's deadline.
func (t *Tracker) Pause(ctx context.Context) {
	select {
	case t.sem <- struct{}{}:
		t.mu.Lock()
		t.paused = true
		t.mu.Unlock()
		<-t.sem
	case <-ctx.Done():
		// A write is stuck; flag the pause anyway so no new one starts.
		t.mu.Lock()
		t.paused = true
		t.mu.Unlock()
	}
}

// run is the state of one Run.
type run struct {
	t          *Tracker
	src        Source
	log        *slog.Logger
	recorded   string // "online", "offline" or "" (nothing recorded yet)
	pending    []trackers.Item
	pendCursor string // cursor to write with pending
	wokeAt     time.Time
	waiting    bool // a wake waits for the network
}

// Run records transitions until ctx is done.
func (t *Tracker) Run(ctx context.Context, h trackers.Host) error {
	src := t.src
	if src == nil {
		return errors.New("network tracker: no network source (the agent watches no network)")
	}
	if t.store == nil {
		return errors.New("network tracker: no store")
	}
	log := t.log
	if hl := h.Logger(); hl != nil {
		log = hl
	}
	cursor, err := t.store.Cursor(ctx, t.name)
	if err != nil {
		return fmt.Errorf("network tracker: read cursor: %w", err)
	}
	r := &run{t: t, src: src, log: log, recorded: cursor}

	ch, unsub := src.Subscribe()
	defer unsub()
	if st := src.Status(); st.Known() {
		r.observe(st)
	}
	h.Report(trackers.StateReady, r.flush(ctx))

	retry := time.NewTimer(retryDelay)
	retry.Stop()
	defer retry.Stop()
	armed := false
	afterWrite := func(err error) {
		if err != nil {
			log.Warn("saving network items failed, will retry", "pending", len(r.pending), "err", err)
		}
		if len(r.pending) > 0 && !t.isPaused() && !armed {
			retry.Reset(retryDelay)
			armed = true
		}
	}
	afterWrite(nil)

	for {
		select {
		case <-ctx.Done():
			// Best effort: what is pending would be lost otherwise.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := r.flush(fctx); err != nil || len(r.pending) > 0 {
				log.Warn("network items lost at stop", "count", len(r.pending), "err", err)
			}
			cancel()
			return nil
		case st, ok := <-ch:
			if !ok {
				return errors.New("network tracker: the network source ended the subscription")
			}
			r.observe(st)
			afterWrite(r.flush(ctx))
		case at := <-t.wake:
			r.woke(at)
			err := r.flush(ctx)
			h.Report(trackers.StateReady, err)
			afterWrite(err)
		case <-retry.C:
			armed = false
			afterWrite(r.flush(ctx))
		}
	}
}

func (t *Tracker) isPaused() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paused
}

// observe turns a status into items: a transition when the state differs
// from the last one recorded, and the wake measure when a wake waits for
// the network.
func (r *run) observe(st netwatch.Status) {
	state := "offline"
	if st.Online {
		state = "online"
	}
	if state != r.recorded {
		d := transitionData{Event: state, Online: st.Online, Reason: st.Reason}
		if r.t.opts.RecordAddresses {
			d.Addresses = st.Addresses
			if d.Addresses == nil {
				d.Addresses = []string{}
			}
		}
		r.add(st.At, state, d)
		r.recorded = state
		r.pendCursor = state
	}
	if r.t.online != nil {
		v := 0.0
		if st.Online {
			v = 1
		}
		r.t.online.Set(v)
	}
	if st.Online && r.waiting {
		after := max(st.At.Sub(r.wokeAt), 0)
		r.addWake(st.At, after, false, st.Reason)
	}
}

// woke notes a wake and records it at once when already online.
func (r *run) woke(at time.Time) {
	if r.waiting {
		r.log.Info("another wake before the network came back", "previous_wake", r.wokeAt)
	}
	r.wokeAt, r.waiting = at, true
	if st := r.src.Status(); st.Online {
		r.addWake(at, 0, true, st.Reason)
	}
}

func (r *run) addWake(at time.Time, after time.Duration, already bool, reason string) {
	r.waiting = false
	r.log.Info("network after wake", "after", after, "already_online", already)
	if r.t.wakeDelay != nil {
		r.t.wakeDelay.Update(after.Seconds())
	}
	r.add(at, "wake_network", wakeData{
		Event:         "wake_network",
		AfterMS:       after.Milliseconds(),
		AlreadyOnline: already,
		WokeAt:        r.wokeAt.Round(0).UTC(),
		Reason:        reason,
	})
}

type transitionData struct {
	Event     string   `json:"event"`
	Online    bool     `json:"online"`
	Reason    string   `json:"reason"`
	Addresses []string `json:"addresses,omitempty"`
}

type wakeData struct {
	Event         string    `json:"event"`
	AfterMS       int64     `json:"after_ms"`
	AlreadyOnline bool      `json:"already_online"`
	WokeAt        time.Time `json:"woke_at"`
	Reason        string    `json:"reason,omitempty"`
}

// add queues one item.
func (r *run) add(at time.Time, event string, data any) {
	if at.IsZero() {
		at = time.Now()
	}
	at = at.Round(0).UTC()
	raw, err := json.Marshal(data)
	if err != nil { // our own plain structs: cannot happen
		r.log.Error("encoding a network item failed", "err", err)
		return
	}
	// Unique: transitions alternate, and a transition and a wake measure
	// at the same instant differ by their event name.
	id := fmt.Sprintf("%020d-%s", at.UnixNano(), event)
	if len(r.pending) >= maxPending {
		r.log.Warn("too many unsaved network items, dropping the oldest", "max", maxPending)
		r.pending = r.pending[1:]
	}
	r.pending = append(r.pending, trackers.Item{ID: id, Time: at, Data: raw})
}

// flush writes the pending items unless the tracker is paused.
func (r *run) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	select {
	case r.t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.t.sem }()
	if r.t.isPaused() {
		return nil // written after Resume
	}
	if _, err := r.t.store.SaveItems(ctx, r.t.name, r.pending, r.pendCursor); err != nil {
		return fmt.Errorf("save network items: %w", err)
	}
	r.pending, r.pendCursor = nil, ""
	return nil
}
