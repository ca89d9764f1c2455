// Package netwatch owns rouse's view of whether the machine is online. It
// watches the operating system for network changes (route, link and address
// events from netlink on Linux; a polling fallback elsewhere), re-evaluates
// after each burst of changes, and publishes online/offline transitions to
// subscribers.
//
// "Online" means a default route (IPv4 or IPv6) over a link that is up, and
// a usable address (not loopback, not link-local, not tentative) on a link
// that is up. It says nothing about whether a given server is reachable; it
// is the cheap, local signal the agent uses to hold back components that
// need the network after a wake and to retry them the instant it returns.
//
// Design decisions:
//   - Status changes only on a transition (online to offline or back); At is
//     the time of that transition and Reason says why. A change that keeps
//     the machine online (a second interface, a new address) is not
//     published.
//   - Kernel events arrive in bursts (a Wi-Fi reassociation produces a dozen
//     messages). They are merged through a 1-slot channel and a short
//     debounce, so one burst costs one evaluation.
//   - Nothing polls while the OS can tell us about changes: an idle watcher
//     sleeps in a blocking read. The PollInterval only applies where no
//     change notification exists (non-Linux systems, or when the netlink
//     socket cannot be opened).
//   - Run opens its OS handles on the calling goroutine before it starts any
//     other goroutine. On Linux this means a caller that locked its OS
//     thread into another network namespace watches that namespace (the
//     tests use this).
package netwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/fanout"
)

// Status is the network state at a transition.
type Status struct {
	Online bool
	// At is when the watcher saw this state begin (the zero time before
	// the first evaluation).
	At time.Time
	// Reason says why, for example "default route via eth0 (10.0.0.1),
	// address 10.0.0.2 on eth0" or "no default route".
	Reason string
	// Addresses lists the usable addresses at the transition (empty when
	// offline); shared between subscribers, do not modify.
	Addresses []string
}

// Known reports whether the status comes from an evaluation (false before
// the watcher's first look at the system).
func (s Status) Known() bool { return !s.At.IsZero() }

// Options configure a Watcher. The zero value is usable.
type Options struct {
	// Logger receives transitions and errors; default slog.Default().
	Logger *slog.Logger
	// PollInterval is how often the fallback re-evaluates where the OS
	// offers no change notification; default 5s.
	PollInterval time.Duration
	// Debounce is how long a burst of change events is gathered before one
	// evaluation; default 150ms.
	Debounce time.Duration
	// Probe, when set, replaces the OS evaluation (tests inject it). It
	// returns whether the machine is online and why.
	Probe func() (online bool, reason string)
}

// Default option values.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultDebounce     = 150 * time.Millisecond
)

// osMon is one operating system's change notifier. Receive blocks until
// something may have changed (it returns nil) or the monitor is closed or
// broken (it returns an error). Close unblocks Receive; it is called once,
// from another goroutine.
type osMon interface {
	Receive() error
	Close() error
	// probe evaluates the current state with the monitor's own handles.
	probe() (snapshot, error)
}

// errPollOnly is returned by newOSMon where no change notification exists.
var errPollOnly = errors.New("netwatch: no change notification on this system")

// Watcher watches the network. Create it with New, then call Run once;
// the other methods are safe for concurrent use, before, during and after
// Run.
type Watcher struct {
	log          *slog.Logger
	pollInterval time.Duration
	debounce     time.Duration
	userProbe    func() (bool, string)

	// newMon opens the OS monitor; tests replace it.
	newMon func() (osMon, error)

	kick chan struct{} // 1 slot: Recheck requests merge

	mu     sync.Mutex // guards status; taken before subs' own lock
	status Status
	subs   fanout.Hub[Status]
}

// New returns a watcher; it does nothing until Run.
func New(o Options) *Watcher {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	return &Watcher{
		log:          o.Logger,
		pollInterval: o.PollInterval,
		debounce:     o.Debounce,
		userProbe:    o.Probe,
		newMon:       newOSMon,
		kick:         make(chan struct{}, 1),
		status:       Status{Reason: "not evaluated yet"},
	}
}

// Status returns the current status.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Subscribe returns a channel that always holds the latest status: it has
// one slot, and a newer status replaces one the subscriber has not read
// yet, so a slow reader sees the latest state, never a backlog. When the
// status is already known the channel starts with it. The returned func
// unsubscribes and closes the channel; it is safe to call more than once.
func (w *Watcher) Subscribe() (<-chan Status, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status.Known() {
		return w.subs.SubscribeWith(w.status)
	}
	return w.subs.Subscribe()
}

// Recheck asks Run for a fresh evaluation soon (after the debounce with
// change notification, at once when polling), without waiting for it. The
// agent calls it after a wake: on systems that poll, the status would
// otherwise be up to PollInterval old.
func (w *Watcher) Recheck() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// WaitOnline returns nil at once when the machine is online, else when it
// comes online, or ctx's error when ctx is done first.
func (w *Watcher) WaitOnline(ctx context.Context) error {
	if w.Status().Online {
		return nil
	}
	ch, unsub := w.Subscribe()
	defer unsub()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case s := <-ch:
			if s.Online {
				return nil
			}
		}
	}
}

// set records the result of an evaluation and publishes a transition.
func (w *Watcher) set(online bool, reason string, addrs []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status.Known() && w.status.Online == online {
		return
	}
	first := !w.status.Known()
	w.status = Status{Online: online, At: time.Now(), Reason: reason, Addresses: addrs}
	if first {
		w.log.Info("network status", "online", online, "reason", reason)
	} else {
		w.log.Info("network status changed", "online", online, "reason", reason)
	}
	w.subs.Publish(w.status)
}

// Run watches until ctx is done and returns nil then; every goroutine it
// started has ended when it returns. It never gives up: when the OS change
// notification cannot be opened, or breaks, it polls instead (logged).
func (w *Watcher) Run(ctx context.Context) error {
	var mon osMon
	if m, err := w.newMon(); err == nil {
		mon = m
	} else if !errors.Is(err, errPollOnly) {
		w.log.Warn("network change notification unavailable, polling", "interval", w.pollInterval, "err", err)
	}

	// check evaluates the system now and publishes a transition.
	check := func() {
		if w.userProbe != nil {
			online, reason := w.userProbe()
			w.set(online, reason, nil)
			return
		}
		var (
			snap snapshot
			err  error
		)
		if mon != nil {
			snap, err = mon.probe()
		} else {
			snap, err = genericProbe()
		}
		if err != nil {
			// Keep the last known state; the next event or poll retries.
			w.log.Warn("network evaluation failed", "err", err)
			if !w.Status().Known() {
				w.set(false, "evaluation failed: "+err.Error(), nil)
			}
			return
		}
		online, reason := evaluate(snap)
		var addrs []string
		if online {
			addrs = snap.usableAddresses()
		}
		w.set(online, reason, addrs)
	}

	check()
	if mon == nil {
		return w.poll(ctx, check)
	}

	changed := make(chan struct{}, 1)
	readerDone := make(chan struct{}) // closed when the reader ends
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(readerDone)
		for {
			if err := mon.Receive(); err != nil {
				if ctx.Err() == nil {
					w.log.Warn("network monitor stopped", "err", err)
				}
				return
			}
			select {
			case changed <- struct{}{}:
			default: // a change is already pending: merged
			}
		}
	})
	stop := func() {
		_ = mon.Close()
		wg.Wait()
	}

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			debounce.Stop()
			stop()
			return nil
		case <-readerDone:
			// The monitor broke on its own: fall back to polling rather
			// than go blind.
			debounce.Stop()
			stop()
			w.log.Warn("network monitor lost, polling", "interval", w.pollInterval)
			mon = nil
			check()
			return w.poll(ctx, check)
		case <-changed:
			if !pending {
				pending = true
				debounce.Reset(w.debounce)
			}
		case <-w.kick:
			if !pending {
				pending = true
				debounce.Reset(w.debounce)
			}
		case <-debounce.C:
			pending = false
			check()
		}
	}
}

// poll re-evaluates every pollInterval until ctx is done.
func (w *Watcher) poll(ctx context.Context, check func()) error {
	t := time.NewTicker(w.pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			check()
		case <-w.kick:
			check()
			t.Reset(w.pollInterval)
		}
	}
}

// snapshot is what an evaluation reads from the system, independent of
// the OS.
type snapshot struct {
	links    map[int]link // by index
	addrs    []address
	defaults []defaultRoute
}

type link struct {
	name     string
	up       bool // administratively up and operational
	loopback bool
}

type address struct {
	index     int // link index
	ip        netip.Addr
	tentative bool // IPv6 duplicate address detection not finished, or failed
}

type defaultRoute struct {
	v6      bool
	ifindex []int      // the links it leaves through (several for multipath)
	gateway netip.Addr // invalid when on-link
}

// usable reports whether a is an address a connection could use.
func (a address) usable() bool {
	ip := a.ip.Unmap()
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!ip.IsUnspecified() && !ip.IsMulticast() && !a.tentative
}

// usableAddresses lists the usable addresses on links that are up, sorted.
func (s snapshot) usableAddresses() []string {
	var out []string
	for _, a := range s.addrs {
		if l, ok := s.links[a.index]; ok && l.up && !l.loopback && a.usable() {
			out = append(out, a.ip.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// evaluate decides whether s is online and says why. It is a pure
// function: the whole policy lives here.
func evaluate(s snapshot) (bool, string) {
	var (
		routeDesc string
		downDesc  string
	)
	// Prefer IPv4 for the description: it is what most users recognise.
	for _, v6 := range []bool{false, true} {
		for _, r := range s.defaults {
			if r.v6 != v6 || routeDesc != "" {
				continue
			}
			for _, idx := range r.ifindex {
				l, ok := s.links[idx]
				name := linkName(s, idx)
				if !ok || !l.up {
					if downDesc == "" {
						downDesc = "default route via " + name + " but the link is down"
					}
					continue
				}
				routeDesc = "default route via " + name
				if r.gateway.IsValid() {
					routeDesc += " (" + r.gateway.String() + ")"
				}
				break
			}
		}
	}
	if routeDesc == "" {
		if downDesc != "" {
			return false, downDesc
		}
		return false, "no default route"
	}
	var (
		addrDesc string
		addrIs4  bool
	)
	for _, a := range s.addrs {
		l, ok := s.links[a.index]
		if !ok || !l.up || l.loopback || !a.usable() {
			continue
		}
		// Prefer an IPv4 address, then the first one found.
		if is4 := a.ip.Unmap().Is4(); addrDesc == "" || (is4 && !addrIs4) {
			addrDesc = "address " + a.ip.Unmap().String() + " on " + l.name
			addrIs4 = is4
		}
	}
	if addrDesc == "" {
		return false, routeDesc + " but no usable address"
	}
	return true, routeDesc + ", " + addrDesc
}

func linkName(s snapshot, idx int) string {
	if l, ok := s.links[idx]; ok && l.name != "" {
		return l.name
	}
	return fmt.Sprintf("if%d", idx)
}
