package power

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rouse-dev/rouse/internal/fakelogind"
	"github.com/rouse-dev/rouse/internal/testbus"
)

// guard bounds every wait on the real bus; it only turns a hang into a
// failure and says nothing about speed.
const guard = 30 * time.Second

func guardCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond (for state with no change notification, like Status).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := guardCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitFor waits until cond holds on r, or ctx ends.
func (r *recorder) waitFor(ctx context.Context, cond func(sleeps, wakes int) bool) error {
	for {
		r.mu.Lock()
		ok, ch := cond(len(r.sleeps), len(r.wakes)), r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type logindRig struct {
	bus  *testbus.Bus
	fake *fakelogind.Logind
	mach *fakeMachine
	rec  *recorder
	mon  *Monitor
}

// newLogindRig runs a Monitor against a fake logind on a private bus. The
// clock interval is long so that only logind is seen unless a test says so.
func newLogindRig(t *testing.T, o Options, rec *recorder) *logindRig {
	t.Helper()
	return newLogindRigWith(t, o, rec, &fakeMachine{})
}

func newLogindRigWith(t *testing.T, o Options, rec *recorder, mach *fakeMachine) *logindRig {
	t.Helper()
	r := &logindRig{bus: testbus.New(t), mach: mach, rec: rec}
	r.fake = fakelogind.Start(t, r.bus.Addr())
	o.Logger, o.Logind, o.BusAddress, o.Clock = quietLogger(), true, r.bus.Addr(), r.mach
	if o.ClockInterval == 0 {
		o.ClockInterval = time.Hour
	}
	r.mon = New(o)
	start(t, r.mon, rec)
	if err := r.fake.WaitLockHeld(guardCtx(t)); err != nil {
		t.Fatalf("the monitor never took the delay lock: %v", err)
	}
	return r
}

func TestLogind(t *testing.T) {
	t.Run("HoldsTheDelayLockWhileAwake", func(t *testing.T) {
		r := newLogindRig(t, Options{}, newRecorder())
		hs := r.fake.Holders()
		if len(hs) != 1 || hs[0].What != "sleep" || hs[0].Mode != "delay" || hs[0].Who != "rouse" || hs[0].Why != inhibitWhy {
			t.Fatalf("holders = %+v, want one sleep delay lock by rouse", hs)
		}
		waitUntil(t, "Status reports logind and the lock", func() bool {
			s := r.mon.Status()
			return s.Logind && s.LockHeld
		})
		if s := r.mon.Status(); len(s.Sources) != 2 || s.Sources[0] != "logind" || s.Sources[1] != "clock" {
			t.Fatalf("Sources = %v, want [logind clock]", s.Sources)
		}
	})

	t.Run("ReleasesTheLockOnlyAfterBeforeSleepReturns", func(t *testing.T) {
		rec := newRecorder()
		entered, finish := make(chan Event, 1), make(chan struct{})
		rec.before = func(ctx context.Context, ev Event) {
			entered <- ev
			<-finish
		}
		r := newLogindRig(t, Options{Budget: guard}, rec)
		if err := r.fake.PrepareForSleep(true); err != nil {
			t.Fatal(err)
		}
		var ev Event
		select {
		case ev = <-entered:
		case <-guardCtx(t).Done():
			t.Fatal("BeforeSleep was not called")
		}
		if ev.Kind != Sleep || ev.DetectedBy != "logind" {
			t.Fatalf("sleep event = %+v", ev)
		}
		// Still inside BeforeSleep: a round trip through the bus later,
		// the lock must still be held.
		if err := r.fake.PrepareForSleep(true); err != nil { // elogind-style repeat, also a barrier
			t.Fatal(err)
		}
		if !r.fake.LockHeld() {
			t.Fatal("lock released while BeforeSleep was still running")
		}
		close(finish)
		if err := r.fake.WaitLockReleased(guardCtx(t)); err != nil {
			t.Fatalf("lock not released after BeforeSleep returned: %v", err)
		}
		if s, _ := rec.counts(); s != 1 {
			t.Fatalf("BeforeSleep called %d times, want 1 (the repeat is ignored)", s)
		}
	})

	t.Run("ReleasesTheLockAtTheBudgetWhenBeforeSleepOverruns", func(t *testing.T) {
		rec := newRecorder()
		stuck := make(chan struct{})
		ctxErr := make(chan error, 1)
		rec.before = func(ctx context.Context, ev Event) {
			<-stuck // ignores its context: only the budget can free the lock
			ctxErr <- ctx.Err()
		}
		r := newLogindRig(t, Options{Budget: 200 * time.Millisecond}, rec)
		if err := r.fake.PrepareForSleep(true); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.WaitLockReleased(guardCtx(t)); err != nil {
			t.Fatalf("lock still held with BeforeSleep stuck past its budget: %v", err)
		}
		close(stuck)
		if err := <-ctxErr; err == nil {
			t.Fatal("BeforeSleep's context was not cancelled at the budget")
		}
	})

	t.Run("TheWakeIsReportedWithoutWaitingForTheLock", func(t *testing.T) {
		rec := newRecorder()
		r := newLogindRig(t, Options{}, rec)
		// From now on Inhibit hangs until the test lets it go: a slow
		// polkit or logind after resume.
		gate := make(chan struct{})
		r.fake.InhibitHook(func() *dbus.Error { <-gate; return nil })
		released, err := r.fake.Suspend(guardCtx(t), guard)
		if err != nil || !released {
			t.Fatalf("Suspend = %v, %v", released, err)
		}
		if err := rec.waitFor(guardCtx(t), func(_, w int) bool { return w >= 1 }); err != nil {
			close(gate)
			t.Fatalf("the wake waited for the lock: %v", err)
		}
		if w := rec.wakeList(); len(w) != 1 || w[0].DetectedBy != "logind" {
			close(gate)
			t.Fatalf("wakes = %+v, want one by logind", w)
		}
		if r.fake.LockHeld() || r.mon.Status().LockHeld {
			close(gate)
			t.Fatal("the lock is held while logind has not answered yet")
		}
		close(gate)
		if err := r.fake.WaitLockHeld(guardCtx(t)); err != nil {
			t.Fatalf("the lock was not re-taken: %v", err)
		}
		waitUntil(t, "Status reports the lock", func() bool { return r.mon.Status().LockHeld })
		if n := r.fake.Inhibits(); n != 2 {
			t.Fatalf("Inhibit granted %d times, want 2 (boot and wake)", n)
		}
	})

	t.Run("ALockThatCannotBeRetakenIsReportedAndRetried", func(t *testing.T) {
		rec := newRecorder()
		r := newLogindRig(t, Options{}, rec)
		r.fake.InhibitHook(func() *dbus.Error {
			return dbus.NewError("org.freedesktop.DBus.Error.AccessDenied", []any{"Permission denied"})
		})
		if _, err := r.fake.Suspend(guardCtx(t), guard); err != nil {
			t.Fatal(err)
		}
		if err := rec.waitFor(guardCtx(t), func(_, w int) bool { return w >= 1 }); err != nil {
			t.Fatalf("no wake while the lock is refused: %v", err)
		}
		waitUntil(t, "Status reports why the lock is missing", func() bool {
			s := r.mon.Status()
			return !s.LockHeld && strings.Contains(s.LockError, "Permission denied")
		})
		r.fake.InhibitHook(nil)
		if err := r.fake.WaitLockHeld(guardCtx(t)); err != nil {
			t.Fatalf("the lock was not retried: %v", err)
		}
		waitUntil(t, "Status clears the lock error", func() bool {
			s := r.mon.Status()
			return s.LockHeld && s.LockError == ""
		})
	})

	t.Run("SleptTimeComesFromTheClockSource", func(t *testing.T) {
		rec, mach := newRecorder(), &fakeMachine{}
		rec.before = func(context.Context, Event) { mach.suspend(90 * time.Minute) }
		r := newLogindRigWith(t, Options{}, rec, mach)
		if _, err := r.fake.Suspend(guardCtx(t), guard); err != nil {
			t.Fatal(err)
		}
		if err := rec.waitFor(guardCtx(t), func(_, w int) bool { return w >= 1 }); err != nil {
			t.Fatal(err)
		}
		if w := rec.wakeList()[0]; w.Slept != 90*time.Minute || w.DetectedBy != "logind" {
			t.Fatalf("wake = %+v, want slept 90m by logind", w)
		}
	})

	t.Run("WithoutARealSuspendSleptIsTheTimeBetweenTheSignals", func(t *testing.T) {
		// The kernel did not suspend (an aborted suspend, or the test
		// machine's fake /sys/power/state): the counter does not grow.
		rec := newRecorder()
		rec.before = func(context.Context, Event) { time.Sleep(60 * time.Millisecond) }
		r := newLogindRig(t, Options{}, rec)
		if _, err := r.fake.Suspend(guardCtx(t), guard); err != nil {
			t.Fatal(err)
		}
		if err := rec.waitFor(guardCtx(t), func(_, w int) bool { return w >= 1 }); err != nil {
			t.Fatal(err)
		}
		if w := rec.wakeList()[0]; w.Slept < 60*time.Millisecond || w.Slept > guard {
			t.Fatalf("slept %v, want the time between PrepareForSleep(true) and (false), at least 60ms", w.Slept)
		}
	})

	t.Run("TwoWakeSignalsInARowAreOneWake", func(t *testing.T) {
		rec := newRecorder()
		r := newLogindRig(t, Options{}, rec)
		for _, s := range []bool{true, false, false} {
			if err := r.fake.PrepareForSleep(s); err != nil {
				t.Fatal(err)
			}
		}
		// A full cycle after the duplicate: signals are handled in order, so
		// once its wake is in, the duplicate has been handled too.
		if _, err := r.fake.Suspend(guardCtx(t), guard); err != nil {
			t.Fatal(err)
		}
		if err := rec.waitFor(guardCtx(t), func(_, w int) bool { return w >= 2 }); err != nil {
			t.Fatal(err)
		}
		if s, w := rec.counts(); s != 2 || w != 2 {
			t.Fatalf("sleeps %d, wakes %d; want 2 and 2", s, w)
		}
		if err := r.fake.WaitLockHeld(guardCtx(t)); err != nil {
			t.Fatal(err)
		}
		// The duplicate wake started no second call: one lock, ours.
		if hs := r.fake.Holders(); len(hs) != 1 {
			t.Fatalf("locks held = %+v, want exactly one", hs)
		}
	})

	t.Run("BusRestartReconnectsAndRetakesTheLock", func(t *testing.T) {
		rec := newRecorder()
		r := newLogindRig(t, Options{}, rec)
		if err := r.fake.Close(); err != nil {
			t.Fatal(err)
		}
		r.bus.Restart()
		fake := fakelogind.Start(t, r.bus.Addr())
		if err := fake.WaitLockHeld(guardCtx(t)); err != nil {
			t.Fatalf("lock not re-taken after the bus restarted: %v", err)
		}
		if _, err := fake.Suspend(guardCtx(t), guard); err != nil {
			t.Fatal(err)
		}
		if err := rec.waitFor(guardCtx(t), func(s, w int) bool { return s >= 1 && w >= 1 }); err != nil {
			t.Fatalf("sleep/wake after the restart not seen: %v", err)
		}
		if err := fake.WaitLockHeld(guardCtx(t)); err != nil {
			t.Fatal(err)
		}
		if s, w := rec.counts(); s != 1 || w != 1 {
			t.Fatalf("sleeps %d, wakes %d; want 1 and 1", s, w)
		}
	})

	t.Run("LogindRestartOnTheSameBusRetakesTheLock", func(t *testing.T) {
		rec := newRecorder()
		r := newLogindRig(t, Options{}, rec)
		if err := r.fake.Close(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "Status reports logind gone", func() bool { return !r.mon.Status().Logind })
		fake := fakelogind.Start(t, r.bus.Addr())
		if err := fake.WaitLockHeld(guardCtx(t)); err != nil {
			t.Fatalf("lock not re-taken from the new logind: %v", err)
		}
		waitUntil(t, "Status reports logind and the lock", func() bool {
			s := r.mon.Status()
			return s.Logind && s.LockHeld
		})
	})

	t.Run("NoClockCheckWhileLogindHoldsTheLock", func(t *testing.T) {
		r := newLogindRig(t, Options{ClockInterval: 20 * time.Millisecond}, newRecorder())
		waitUntil(t, "Status reports logind and the lock", func() bool {
			s := r.mon.Status()
			return s.Logind && s.LockHeld
		})
		n := r.mach.reads()
		time.Sleep(300 * time.Millisecond) // 15 intervals
		if got := r.mach.reads() - n; got > 1 {
			t.Errorf("the clock source was read %d times in 15 intervals while logind held the lock", got)
		}
		r.fake.Close() // logind goes away: the fallback check comes back
		waitUntil(t, "the clock checked again", func() bool { return r.mach.reads() >= n+3 })
	})

	t.Run("WakeMissedWhileTheBusWasDownIsCaughtByTheClock", func(t *testing.T) {
		rec := newRecorder()
		r := newLogindRig(t, Options{ClockInterval: 50 * time.Millisecond}, rec)
		if err := r.fake.PrepareForSleep(true); err != nil {
			t.Fatal(err)
		}
		if err := r.fake.WaitLockReleased(guardCtx(t)); err != nil {
			t.Fatal(err)
		}
		// The machine sleeps; on resume the bus is gone before logind could
		// say PrepareForSleep(false).
		r.fake.Close()
		r.bus.Stop()
		r.mach.suspend(45 * time.Minute)
		if err := rec.waitFor(guardCtx(t), func(_, w int) bool { return w >= 1 }); err != nil {
			t.Fatalf("the resume was lost: %v", err)
		}
		if w := rec.wakeList()[0]; w.DetectedBy != "clock" || w.Slept != 45*time.Minute {
			t.Fatalf("wake = %+v, want slept 45m by clock", w)
		}
	})
}

// recordHandler keeps every log record's level and message.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// about returns the records whose message contains s, by level.
func (h *recordHandler) about(s string) map[slog.Level]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[slog.Level]int{}
	for _, r := range h.recs {
		if strings.Contains(r.Message, s) {
			n[r.Level]++
		}
	}
	return n
}

func TestNoSystemBusIsSaidOnce(t *testing.T) {
	h := &recordHandler{}
	mon := New(Options{Logger: slog.New(h), Logind: true, BusAddress: "unix:path=" + t.TempDir() + "/no-bus",
		Clock: &fakeMachine{}, ClockInterval: time.Hour})
	start(t, mon, newRecorder())
	// The first retries come after 100, 200, 400 ms (with jitter).
	waitUntil(t, "three attempts", func() bool {
		n := h.about("system bus")
		return n[slog.LevelInfo]+n[slog.LevelDebug] >= 3
	})
	n := h.about("system bus")
	if n[slog.LevelInfo] != 1 || n[slog.LevelWarn] != 0 || n[slog.LevelError] != 0 {
		t.Fatalf("log lines about the missing bus by level: %v; want one at info, the rest at debug", n)
	}
	if c := h.about("clock fallback")[slog.LevelInfo]; c != 1 {
		t.Fatalf("the info line does not say what it means (clock fallback): %d", c)
	}
}
