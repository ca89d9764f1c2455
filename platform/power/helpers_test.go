package power

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeMachine is a ClockSource over three fake clocks: stepping the wall
// clock moves neither boottime nor monotonic, as on a real machine.
type fakeMachine struct {
	mu   sync.Mutex
	wall time.Time
	mono time.Duration
	boot time.Duration
	err  error
	n    int // SleptTotal calls
}

func (f *fakeMachine) SleptTotal() (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.boot - f.mono, f.err
}

// suspend models d slept: boottime goes on, monotonic stops.
func (f *fakeMachine) suspend(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boot += d
	f.wall = f.wall.Add(d)
}

// stepWall models an NTP step or the user setting the time.
func (f *fakeMachine) stepWall(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = f.wall.Add(d)
}

// recorder is a Handler that records what it was called with.
type recorder struct {
	// before, when set, is the pre-sleep work.
	before func(ctx context.Context, ev Event)
	// onWake, when set, runs inside AfterWake.
	onWake func(ev Event)

	mu      sync.Mutex
	sleeps  []Event
	wakes   []Event
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) BeforeSleep(ctx context.Context, ev Event) {
	r.mu.Lock()
	r.sleeps = append(r.sleeps, ev)
	r.notifyLocked()
	r.mu.Unlock()
	if r.before != nil {
		r.before(ctx, ev)
	}
}

func (r *recorder) AfterWake(ev Event) {
	if r.onWake != nil {
		r.onWake(ev)
	}
	r.mu.Lock()
	r.wakes = append(r.wakes, ev)
	r.notifyLocked()
	r.mu.Unlock()
}

func (r *recorder) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) counts() (sleeps, wakes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sleeps), len(r.wakes)
}

func (r *recorder) wakeList() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.wakes...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs m with h until the test ends; the test fails if Run errs.
func start(t *testing.T, m *Monitor, h Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// reads is how many times the clock source was read.
func (f *fakeMachine) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}
