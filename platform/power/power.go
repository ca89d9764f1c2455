// Package power owns the machine's sleep and wake as events for the agent.
//
// A Monitor merges several sources into exactly one Sleep and one Wake per
// suspend, however many of them saw it:
//
//   - logind (Linux, Options.Logind): PrepareForSleep on the system bus, with a
//     delay inhibitor lock held while awake so the agent gets its pre-sleep
//     budget. Reconnects with capped backoff when the bus or logind restarts.
//   - windows: PowerRegisterSuspendResumeNotification, and HandlePowerEvent for
//     a Windows service handler.
//   - clock (always, when the OS has one): a counter of time slept
//     (ClockSource) read every ClockInterval while logind is not connected
//     with its delay lock held (then every suspend is announced and an
//     idle agent must not wake for nothing). It is the fallback when no
//     announcing source exists or one missed a resume, and it supplies Slept.
//     Wall-clock steps do not move it, so they are never taken for a sleep.
//
// Decisions (is this a new sleep, a new wake, a duplicate?) live in merger,
// a pure type with table tests. Handler calls happen outside every lock.
//
// Decisions written down here: Run returns nil when its context ends (an error
// only when it cannot run at all); a BeforeSleep that overruns its budget gets
// its context cancelled and the lock is released anyway, but Run still waits
// for it to return before returning itself; the logind source re-takes the
// lock on the same connection when logind's name changes owner (the bus is
// fine, only logind restarted) and redials only when the bus connection dies.
package power

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what happened to the machine.
type Kind int

// Kinds of events.
const (
	Sleep Kind = iota + 1
	Wake
)

func (k Kind) String() string {
	switch k {
	case Sleep:
		return "sleep"
	case Wake:
		return "wake"
	}
	return "unknown"
}

// Event is one sleep or wake.
type Event struct {
	Kind       Kind
	At         time.Time     // wall clock, monotonic part stripped
	Slept      time.Duration // 0 when unknown (and always for Sleep)
	DetectedBy string        // "logind", "clock" or "windows"
}

// Handler receives the merged events.
type Handler interface {
	// BeforeSleep runs the agent's pre-sleep work; ctx carries the budget. The
	// delay lock is released when it returns or when the budget runs out —
	// whichever comes first (the machine is never held awake). A BeforeSleep
	// that overruns sees ctx cancelled and should return soon.
	BeforeSleep(ctx context.Context, ev Event)
	// AfterWake is called exactly once per resume, however many sources saw
	// it. It must return promptly (start the restore in another goroutine).
	// It may be called while an overrunning BeforeSleep is still returning.
	AfterWake(ev Event)
}

// ClockSource measures the total time the machine has spent suspended since
// boot. It grows exactly by the time slept; a wall-clock step does not change it.
type ClockSource interface {
	SleptTotal() (time.Duration, error)
}

// Options configure a Monitor. The zero value works: clock source only.
type Options struct {
	// Logger for the monitor; default slog.Default() with component=power.
	Logger *slog.Logger
	// Budget for the pre-sleep work; default 3s (logind's InhibitDelayMaxSec
	// default is 5s; Windows allows about 2s and gets min(Budget, 2s)).
	Budget time.Duration
	// ClockInterval is the clock source's check period and the window within
	// which reports from different sources are one wake; default 10s.
	ClockInterval time.Duration
	// Logind uses logind on the system bus (a private connection). Default
	// false in the zero value; DefaultOptions sets it on Linux.
	Logind bool
	// BusAddress is the system bus address; default DBUS_SYSTEM_BUS_ADDRESS or
	// the standard system bus socket.
	BusAddress string
	// Clock is the slept-time source; nil means the OS one.
	Clock ClockSource
}

// DefaultOptions are the options the agent should start from: logind on
// Linux, every duration at its default.
func DefaultOptions() Options {
	return Options{Logind: logindDefault, Budget: defaultBudget, ClockInterval: defaultClockInterval}
}

const (
	defaultBudget        = 3 * time.Second
	defaultClockInterval = 10 * time.Second
	windowsBudget        = 2 * time.Second
)

// Status is a snapshot for health and doctor.
type Status struct {
	Logind    bool     // connected to the system bus and logind is there
	LockHeld  bool     // a delay inhibitor lock is held
	Sources   []string // sources in use: "logind", "clock", "windows"
	LastError string   // the last error a source met, "" if none
	// LockError says why the delay lock could not be (re-)taken; "" once
	// it is held. Meanwhile the agent may not finish its pre-sleep work
	// before a sleep; wakes are still seen.
	LockError string
}

// Monitor watches for sleep and wake. Create it with New; Run it once at a time.
type Monitor struct {
	o     Options
	log   *slog.Logger
	clock ClockSource

	running atomic.Bool

	mu       sync.Mutex // guards everything below
	h        Handler
	ctx      context.Context // Run's context; nil when not running
	wg       sync.WaitGroup  // handler goroutines (BeforeSleep)
	merge    merger
	base     time.Duration // last clock reading
	haveBase bool
	atSleep  time.Duration // clock reading when the sleep was announced
	haveSlp  bool
	sleptAt  time.Time // when the sleep was announced (monotonic reading kept)
	clockErr error

	smu    sync.Mutex
	status Status

	sourcesChanged chan struct{} // 1-slot: Logind or LockHeld changed (Run re-decides the clock check)
}

// New returns a Monitor; nothing runs until Run.
func New(o Options) *Monitor {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Budget <= 0 {
		o.Budget = defaultBudget
	}
	if o.ClockInterval <= 0 {
		o.ClockInterval = defaultClockInterval
	}
	clock := o.Clock
	if clock == nil {
		clock = osClock{}
	}
	return &Monitor{
		o:     o,
		log:   o.Logger.With("component", "power"),
		clock: clock,
		merge: merger{window: o.ClockInterval},

		sourcesChanged: make(chan struct{}, 1),
	}
}

// Run watches until ctx is done and calls h. Every goroutine it started has
// ended when it returns. It returns nil when ctx ends, an error only when it
// cannot run (already running).
func (m *Monitor) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("power: Run needs a handler")
	}
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("power: monitor is already running")
	}
	defer m.running.Store(false)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.h, m.ctx = h, ctx
	m.mu.Unlock()

	var sources []string
	clockOK := m.readBaseline()
	var wg sync.WaitGroup
	if m.o.Logind {
		sources = append(sources, "logind")
		src := newLogindSource(m)
		wg.Go(func() { src.run(ctx) })
	}
	active.Store(m)
	stopOS, err := startPlatform(m)
	if err != nil {
		m.setError(err)
		m.log.Warn("platform power notifications unavailable", "err", err)
	} else if platformSource != "" {
		sources = append(sources, platformSource)
	}
	if clockOK {
		sources = append(sources, "clock")
	}
	m.smu.Lock()
	m.status.Sources = sources
	m.smu.Unlock()
	m.log.Info("watching sleep and wake", "sources", sources, "budget", m.o.Budget, "clock_interval", m.o.ClockInterval)

	// The clock check runs only while no announcing source covers sleeps:
	// with logind connected and the delay lock held every suspend is
	// announced (the lock is released when one begins, which re-arms the
	// check), and an idle agent must not wake every ClockInterval.
	timer := time.NewTimer(m.o.ClockInterval)
	ticking := true
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-timer.C:
			m.clockTick()
			timer.Reset(m.o.ClockInterval)
		case <-m.sourcesChanged:
		}
		st := m.Status()
		switch covered := st.Logind && st.LockHeld; {
		case covered && ticking:
			timer.Stop()
			ticking = false
		case !covered && !ticking:
			m.readBaseline() // sleeps meanwhile were announced
			timer.Reset(m.o.ClockInterval)
			ticking = true
		}
	}
	timer.Stop()

	if stopOS != nil {
		stopOS()
	}
	active.CompareAndSwap(m, nil)
	cancel()
	wg.Wait()
	m.mu.Lock()
	m.ctx = nil // no new handler goroutines from here on
	m.mu.Unlock()
	m.wg.Wait()
	m.smu.Lock()
	m.status.Logind, m.status.LockHeld = false, false
	m.smu.Unlock()
	return nil
}

// Status returns a snapshot for health and doctor.
func (m *Monitor) Status() Status {
	m.smu.Lock()
	defer m.smu.Unlock()
	s := m.status
	s.Sources = slices.Clone(s.Sources)
	return s
}

func (m *Monitor) setError(err error) {
	m.smu.Lock()
	defer m.smu.Unlock()
	if err == nil {
		m.status.LastError = ""
		return
	}
	m.status.LastError = err.Error()
}

func (m *Monitor) setLockError(err error) {
	m.smu.Lock()
	if err == nil {
		m.status.LockError, m.status.LastError = "", ""
	} else {
		m.status.LockError, m.status.LastError = err.Error(), err.Error()
	}
	m.smu.Unlock()
}

func (m *Monitor) setLogind(connected bool) {
	m.smu.Lock()
	m.status.Logind = connected
	m.smu.Unlock()
	m.pokeSources()
}

func (m *Monitor) setLock(held bool) {
	m.smu.Lock()
	m.status.LockHeld = held
	m.smu.Unlock()
	m.pokeSources()
}

// pokeSources tells Run's loop that logind or the lock changed.
func (m *Monitor) pokeSources() {
	select {
	case m.sourcesChanged <- struct{}{}:
	default:
	}
}

// readBaseline takes the first clock reading and reports whether the clock
// source works.
func (m *Monitor) readBaseline() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, err := m.clock.SleptTotal()
	if err != nil {
		m.log.Warn("clock source unavailable; sleeps are seen only by announcing sources", "err", err)
		m.haveBase = false
		return false
	}
	m.base, m.haveBase = cur, true
	return true
}

// clockTick reads the clock source and delivers a wake if it saw one.
func (m *Monitor) clockTick() {
	now := time.Now()
	m.mu.Lock()
	cur, err := m.clock.SleptTotal()
	if err != nil {
		first := m.clockErr == nil || m.clockErr.Error() != err.Error()
		m.clockErr = err
		m.mu.Unlock()
		if first { // repeated identical errors are logged once
			m.log.Warn("clock source read failed", "err", err)
		}
		m.setError(err)
		return
	}
	m.clockErr = nil
	var growth time.Duration
	if m.haveBase {
		growth = cur - m.base
	}
	m.base, m.haveBase = cur, true
	ev, ok := m.merge.clock(now, growth)
	h := m.h
	m.mu.Unlock()
	if ok {
		ev.At = now.Round(0)
		m.deliverWake(h, ev)
	}
}

// sleep is called by an announcing source when the machine is about to
// sleep. It runs BeforeSleep under budget and returns when it has returned
// or the budget ran out; the caller then releases its lock.
func (m *Monitor) sleep(ctx context.Context, by string, budget time.Duration) {
	now := time.Now()
	m.mu.Lock()
	if m.ctx == nil || !m.merge.sleep(now) {
		m.mu.Unlock()
		m.log.Debug("sleep already in progress; ignored", "detected_by", by)
		return
	}
	if cur, err := m.clock.SleptTotal(); err == nil {
		m.atSleep, m.haveSlp = cur, true
	} else {
		m.haveSlp = false
	}
	m.sleptAt = now
	h := m.h
	bctx, cancel := context.WithTimeout(ctx, budget)
	done := make(chan struct{})
	ev := Event{Kind: Sleep, At: now.Round(0), DetectedBy: by}
	m.wg.Add(1)
	m.mu.Unlock()

	m.log.Info("going to sleep", "detected_by", by, "budget", budget)
	go func() {
		defer m.wg.Done()
		defer close(done)
		h.BeforeSleep(bctx, ev)
	}()
	select {
	case <-done:
		m.log.Info("pre-sleep work done", "took", time.Since(now))
	case <-bctx.Done():
		m.log.Warn("pre-sleep work overran its budget; releasing the lock anyway", "budget", budget)
	}
	cancel()
}

// wake is called by an announcing source when the machine has resumed.
func (m *Monitor) wake(by string) {
	now := time.Now()
	m.mu.Lock()
	if m.ctx == nil {
		m.mu.Unlock()
		return
	}
	var slept time.Duration
	cur, err := m.clock.SleptTotal()
	switch {
	case m.merge.sleeping && err == nil && m.haveSlp:
		slept = sleptBetween(cur-m.atSleep, now.Sub(m.sleptAt))
	case m.merge.sleeping:
		// No suspended-time counter: the wall clock, which runs on
		// through a suspend, from the sleep's announcement.
		slept = max(now.Round(0).Sub(m.sleptAt.Round(0)), 0)
	case err == nil && m.haveBase && isSleepGrowth(cur-m.base):
		slept = cur - m.base
	}
	if err == nil {
		// This resume's growth is accounted for: the clock must not see it again.
		m.base, m.haveBase = cur, true
	}
	ev, ok := m.merge.wake(now, Event{Kind: Wake, At: now.Round(0), Slept: slept, DetectedBy: by})
	h := m.h
	m.mu.Unlock()
	if !ok {
		m.log.Debug("duplicate wake ignored", "detected_by", by)
		return
	}
	m.deliverWake(h, ev)
}

// suspendedMin is the least growth of the suspended-time counter that
// means the kernel really suspended; less is the noise between two reads.
const suspendedMin = 10 * time.Millisecond

// sleptBetween is the time slept between an announced sleep and its wake:
// the kernel's suspended time (CLOCK_BOOTTIME - CLOCK_MONOTONIC on Linux)
// when the kernel really suspended, else — an aborted or failed suspend —
// the time between the two announcements (monotonic: no suspend stopped it).
func sleptBetween(suspended, announced time.Duration) time.Duration {
	if suspended >= suspendedMin {
		return suspended
	}
	return max(announced, 0)
}

func (m *Monitor) deliverWake(h Handler, ev Event) {
	m.log.Info("woke up", "detected_by", ev.DetectedBy, "slept", ev.Slept)
	h.AfterWake(ev)
}

// active is the running Monitor that receives OS power events
// (HandlePowerEvent); nil when none runs.
var active atomic.Pointer[Monitor]

// Windows power broadcast event types (PBT_*).
const (
	pbtAPMSuspend         = 0x4
	pbtAPMResumeSuspend   = 0x7
	pbtAPMResumeAutomatic = 0x12
)

// HandlePowerEvent feeds a Windows power broadcast event type (the
// PBT_APM* value of a service control handler's power event) to the running
// Monitor. PBT_APMSUSPEND runs the pre-sleep work (at most 2 s) before it
// returns; the resume events deliver one wake. Other events and calls while
// no Monitor runs are ignored. It is safe on every OS.
func HandlePowerEvent(eventType uint32) {
	m := active.Load()
	if m == nil {
		return
	}
	switch eventType {
	case pbtAPMSuspend:
		m.mu.Lock()
		ctx := m.ctx
		m.mu.Unlock()
		if ctx != nil {
			m.sleep(ctx, "windows", min(m.o.Budget, windowsBudget))
		}
	case pbtAPMResumeSuspend, pbtAPMResumeAutomatic:
		m.wake("windows")
	}
}
