package power

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestClockFallback(t *testing.T) {
	const interval = 10 * time.Second

	t.Run("TwoHoursSleptIsOneWakeByTheClock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mach := &fakeMachine{}
			r := newRecorder()
			m := New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: mach})
			start(t, m, r)
			time.Sleep(interval / 2)
			mach.suspend(2 * time.Hour)
			time.Sleep(3 * interval) // several checks: still one wake
			synctest.Wait()
			wakes := r.wakeList()
			if len(wakes) != 1 {
				t.Fatalf("wakes = %+v, want one", wakes)
			}
			if w := wakes[0]; w.Slept != 2*time.Hour || w.DetectedBy != "clock" || w.Kind != Wake || w.At.IsZero() {
				t.Fatalf("wake = %+v, want slept 2h by clock", w)
			}
			if s, _ := r.counts(); s != 0 {
				t.Fatalf("BeforeSleep called %d times; the clock cannot announce a sleep", s)
			}
			if got := m.Status().Sources; !slices.Equal(got, []string{"clock"}) {
				t.Fatalf("Sources = %v, want [clock]", got)
			}
		})
	})

	t.Run("WallClockStepForwardAnHourIsNotAWake", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mach := &fakeMachine{wall: time.Now()}
			r := newRecorder()
			m := New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: mach})
			start(t, m, r)
			time.Sleep(interval / 2)
			mach.stepWall(time.Hour)
			time.Sleep(interval)
			mach.stepWall(-3 * time.Hour)
			time.Sleep(3 * interval)
			synctest.Wait()
			if _, w := r.counts(); w != 0 {
				t.Fatalf("wall-clock steps gave %d wakes: %+v", w, r.wakeList())
			}
		})
	})

	t.Run("ShortGrowthIsNoise", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mach := &fakeMachine{}
			r := newRecorder()
			start(t, New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: mach}), r)
			time.Sleep(interval / 2)
			mach.suspend(time.Second)
			time.Sleep(2 * interval)
			synctest.Wait()
			if _, w := r.counts(); w != 0 {
				t.Fatalf("1s of growth gave %d wakes", w)
			}
		})
	})

	t.Run("BrokenClockIsReportedNotFatal", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mach := &fakeMachine{err: errors.New("no clock")}
			m := New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: mach})
			start(t, m, newRecorder())
			time.Sleep(interval / 2)
			synctest.Wait()
			if got := m.Status().Sources; len(got) != 0 {
				t.Fatalf("Sources = %v with a broken clock, want none", got)
			}
			time.Sleep(interval)
			synctest.Wait()
			if m.Status().LastError != "no clock" {
				t.Fatalf("LastError = %q", m.Status().LastError)
			}
		})
	})
}

func TestPowerEvents(t *testing.T) {
	const interval = 10 * time.Second

	t.Run("SuspendRunsPreSleepAndResumesGiveOneWake", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mach := &fakeMachine{}
			r := newRecorder()
			var deadline time.Duration
			r.before = func(ctx context.Context, ev Event) {
				d, _ := ctx.Deadline()
				deadline = time.Until(d)
			}
			m := New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: mach})
			start(t, m, r)
			synctest.Wait()
			HandlePowerEvent(pbtAPMSuspend)
			if s, _ := r.counts(); s != 1 || r.sleeps[0].DetectedBy != "windows" || r.sleeps[0].Kind != Sleep {
				t.Fatalf("sleeps = %+v, want one by windows", r.sleeps)
			}
			if deadline != windowsBudget {
				t.Fatalf("pre-sleep budget = %v, want %v", deadline, windowsBudget)
			}
			mach.suspend(time.Hour)
			HandlePowerEvent(pbtAPMResumeAutomatic)
			HandlePowerEvent(pbtAPMResumeSuspend)
			time.Sleep(3 * interval)
			synctest.Wait()
			wakes := r.wakeList()
			if len(wakes) != 1 || wakes[0].DetectedBy != "windows" || wakes[0].Slept != time.Hour {
				t.Fatalf("wakes = %+v, want one by windows, slept 1h", wakes)
			}
		})
	})

	t.Run("PreSleepOverrunningItsBudgetIsCutOff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRecorder()
			stuck := make(chan struct{})
			ctxErr := make(chan error, 1)
			r.before = func(ctx context.Context, ev Event) {
				<-ctx.Done()
				ctxErr <- ctx.Err()
				<-stuck // ignores its context for a while longer
			}
			m := New(Options{Logger: quietLogger(), Budget: time.Second, Clock: &fakeMachine{}})
			start(t, m, r)
			synctest.Wait()
			began := time.Now()
			HandlePowerEvent(pbtAPMSuspend)
			if took := time.Since(began); took != time.Second {
				t.Fatalf("suspend handling took %v (fake time), want the 1s budget", took)
			}
			if err := <-ctxErr; !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("pre-sleep ctx error = %v, want deadline exceeded", err)
			}
			close(stuck)
		})
	})

	t.Run("ClockCatchesAResumeTheAnnouncingSourceNeverReported", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mach := &fakeMachine{}
			r := newRecorder()
			start(t, New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: mach}), r)
			synctest.Wait()
			HandlePowerEvent(pbtAPMSuspend)
			mach.suspend(30 * time.Minute)
			time.Sleep(interval + time.Second)
			synctest.Wait()
			if _, w := r.counts(); w != 0 {
				t.Fatalf("clock did not wait for the announcing source: %+v", r.wakeList())
			}
			time.Sleep(2 * interval)
			synctest.Wait()
			wakes := r.wakeList()
			if len(wakes) != 1 || wakes[0].DetectedBy != "clock" || wakes[0].Slept != 30*time.Minute {
				t.Fatalf("wakes = %+v, want one by clock, slept 30m", wakes)
			}
		})
	})

	t.Run("EventsAfterTheMonitorStoppedReachNoHandler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRecorder()
			m := New(Options{Logger: quietLogger(), ClockInterval: interval, Clock: &fakeMachine{}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx, r) }()
			synctest.Wait()
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			HandlePowerEvent(pbtAPMSuspend)
			HandlePowerEvent(pbtAPMResumeSuspend)
			synctest.Wait()
			if s, w := r.counts(); s != 0 || w != 0 {
				t.Fatalf("a stopped monitor handled %d sleeps and %d wakes, want none", s, w)
			}
		})
	})

	t.Run("RunTwiceAtOnceIsRefused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := New(Options{Logger: quietLogger(), Clock: &fakeMachine{}})
			start(t, m, newRecorder())
			synctest.Wait()
			if err := m.Run(t.Context(), newRecorder()); err == nil {
				t.Fatal("second Run succeeded")
			}
		})
	})
}
