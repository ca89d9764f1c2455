package scheduler

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// These tests give the loop a step of a day, so that only the
// notifications (Resume, ClockChanged) can make it read the wall clock
// again before the timer it armed fires: they fail if a notification is
// not what re-arms the jobs.
const noStep = 24 * time.Hour

func longStep(o *Options) { o.Step = noStep }

func TestNotificationsRearmJobsWithoutPolling(t *testing.T) {
	t.Run("A job due in 1 h with 15 min of sleep in between runs at its wall-clock time after Resume", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := Job{Name: "j", Schedule: "0 1 * * *", Location: time.UTC, Func: okFunc}
			h := newHarness(t, utc(2026, 1, 10, 0, 0, 0), openStore(t), []Job{j}, longStep)
			h.start()
			h.advance(30 * time.Minute)
			h.suspend(15 * time.Minute)             // the timer armed for 01:00 now fires at 01:15
			h.advance(15*time.Minute - time.Second) // wall 00:59:59
			if n := len(h.store.all("j")); n != 0 {
				t.Fatalf("%d runs before the due time", n)
			}
			h.advance(time.Second)
			made := h.store.made("j")
			wantTimes(t, "due run", scheduledTimes(made), utc(2026, 1, 10, 1, 0, 0))
			if late := made[0].StartedAt.Sub(made[0].ScheduledAt); late != 0 {
				t.Fatalf("lateness %v, want none", late)
			}
		})
	})
	t.Run("A clock set forward runs what became due at once after ClockChanged", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, utc(2026, 1, 10, 0, 10, 0), openStore(t), []Job{hourly("j", MisfireCoalesce)}, longStep)
			h.start()
			h.clock.jump(3 * time.Hour) // 03:10: 01, 02, 03 became due
			h.s.ClockChanged()
			h.settle()
			made := h.store.made("j")
			wantTimes(t, "after the set", scheduledTimes(made), utc(2026, 1, 10, 3, 0, 0))
			if !made[0].StartedAt.Equal(utc(2026, 1, 10, 3, 10, 0)) || made[0].Reason != ReasonMisfire {
				t.Fatalf("run started %v reason %q, want at once (03:10) as a catch-up", made[0].StartedAt, made[0].Reason)
			}
			h.advance(50 * time.Minute) // 04:00 is armed on the new wall clock
			wantTimes(t, "next", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 3, 0, 0), utc(2026, 1, 10, 4, 0, 0))
		})
	})
	t.Run("A clock set back re-arms for the later wall-clock time and runs nothing twice", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, utc(2026, 1, 10, 0, 59, 0), openStore(t), []Job{hourly("j", MisfireAll)}, longStep)
			h.start()
			h.advance(2 * time.Minute) // 01:01: ran 01:00
			h.clock.jump(-2 * time.Hour)
			h.s.ClockChanged() // 23:01 the day before
			h.settle()
			h.advance(2*time.Hour + time.Minute) // wall 01:02 again
			wantTimes(t, "after the set", scheduledTimes(h.store.all("j")), utc(2026, 1, 10, 1, 0, 0))
			h.advance(time.Hour) // 02:02
			wantTimes(t, "next", scheduledTimes(h.store.all("j")), utc(2026, 1, 10, 1, 0, 0), utc(2026, 1, 10, 2, 0, 0))
		})
	})
	t.Run("ClockChanged while paused waits for Resume", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, utc(2026, 1, 10, 0, 10, 0), openStore(t), []Job{hourly("j", MisfireCoalesce)}, longStep)
			h.start()
			h.s.Pause(context.Background())
			h.settle()
			h.clock.jump(time.Hour)
			h.s.ClockChanged()
			h.settle()
			if n := len(h.store.all("j")); n != 0 {
				t.Fatalf("%d runs while paused", n)
			}
			h.s.Resume(context.Background())
			h.settle()
			wantTimes(t, "after Resume", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 1, 0, 0))
		})
	})
}
