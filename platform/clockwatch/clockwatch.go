// Package clockwatch owns noticing that the wall clock was set: the user
// changing the time, an NTP step, a time zone tool calling settimeofday.
// Subscribers get a coalesced notification and re-read the wall clock
// themselves; the package says only "it changed", never by how much.
//
// On Linux it waits, at no cost, on a timerfd armed on CLOCK_REALTIME far
// in the future with TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET: the kernel
// cancels such a timer whenever the clock is set, and the read fails with
// ECANCELED. An idle watcher sleeps in the runtime's poller and never wakes
// the process. Decisions written down:
//
//   - A set to the same time still counts as a change (the kernel reports
//     every set; only gradual NTP slewing goes unseen, and it never needs
//     re-arming anything).
//   - The kernel also cancels the timer after a resume from suspend, since
//     the offset between the wall and the monotonic clock changed by the
//     time slept. That is reported as a change too: harmless to a
//     subscriber that re-reads the clock, and it costs nothing while idle.
//   - The timer is armed one year ahead; if it ever expires the watcher
//     re-arms it (one wakeup a year).
//   - If the timerfd cannot be created or read (an old kernel, a seccomp
//     filter), the watcher logs it once and falls back to the polling
//     watch below rather than go blind.
//
// Elsewhere (and in that fallback) it compares the wall clock with the
// monotonic clock every FallbackInterval (30 s) and reports a change when
// they drifted apart by more than FallbackThreshold (1 s) between two
// looks. On macOS that also catches a suspend (the monotonic clock stops
// while asleep); on Windows the monotonic clock counts sleep, so only sets
// are seen. A change is then noticed up to 30 s late.
package clockwatch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/fanout"
)

// FallbackInterval is how often the polling fallback compares the wall
// clock with the monotonic clock.
const FallbackInterval = 30 * time.Second

// FallbackThreshold is how far the two clocks must drift apart between two
// looks of the polling fallback to count as a change. NTP slews at most
// 500 ppm (15 ms in 30 s), far below it.
const FallbackThreshold = time.Second

// errUnsupported: the OS has no wall-clock change notification.
var errUnsupported = errors.New("no wall-clock change notification on this OS")

// Watcher notices wall-clock changes and tells its subscribers. Create it
// with New and Run it once at a time; Subscribe works before, during and
// after Run.
type Watcher struct {
	log *slog.Logger

	// For tests: the polling fallback's period and wall clock, and whether
	// Run skips the OS notification.
	interval  time.Duration
	wall      func() time.Time
	forcePoll bool
	armed     chan struct{} // closed by markArmed once the OS timer is armed
	markArmed func()

	subs fanout.Hub[struct{}]

	mu      sync.Mutex
	running bool
}

// New returns a Watcher; nothing runs until Run. A nil logger is
// slog.Default().
func New(logger *slog.Logger) *Watcher {
	if logger == nil {
		logger = slog.Default()
	}
	armed := make(chan struct{})
	return &Watcher{
		log:       logger.With("component", "clockwatch"),
		interval:  FallbackInterval,
		wall:      time.Now,
		armed:     armed,
		markArmed: sync.OnceFunc(func() { close(armed) }),
	}
}

// Subscribe returns a channel that receives a value after each change of
// the wall clock, and a func that ends the subscription (and closes the
// channel; calling it again does nothing). The channel holds one value:
// changes that come while one is pending are merged into it.
func (w *Watcher) Subscribe() (<-chan struct{}, func()) {
	return w.subs.Subscribe()
}

// changed tells every subscriber.
func (w *Watcher) changed(how string) {
	w.log.Info("wall clock changed", "seen_by", how, "now", time.Now().Round(0))
	w.subs.Publish(struct{}{})
}

// Run watches until ctx is done, then returns nil; every goroutine it
// started has ended and every handle it opened is closed by then. It
// returns an error only when it cannot run (already running).
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("clockwatch: Run called while already running")
	}
	w.running = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()
	if !w.forcePoll {
		err := w.runOS(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		lvl := slog.LevelWarn
		if errors.Is(err, errUnsupported) {
			lvl = slog.LevelDebug
		}
		w.log.Log(ctx, lvl, "wall-clock change notification unavailable, polling", "interval", w.interval, "err", err)
	}
	w.poll(ctx)
	return nil
}

// poll is the fallback: it compares the wall clock with the monotonic clock
// every interval.
func (w *Watcher) poll(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	lastWall, lastMono := w.wall().Round(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wall, mono := w.wall().Round(0), time.Now()
		drift := wall.Sub(lastWall) - mono.Sub(lastMono)
		lastWall, lastMono = wall, mono
		if drift > FallbackThreshold || drift < -FallbackThreshold {
			w.changed("poll")
		}
	}
}
