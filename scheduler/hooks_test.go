package scheduler

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestHooks(t *testing.T) {
	t.Run("RunOnlyWhenAskedInOrderWithTheWakeAndTheNetwork", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := openStore(t)
			var order []string
			hook := func(name, sched string, net bool) Job {
				return Job{Name: name, Schedule: sched, NeedsNetwork: net, Func: func(context.Context) (string, error) {
					order = append(order, name)
					return "", nil
				}}
			}
			online := make(chan struct{})
			h := newHarness(t, utc(2026, 1, 10, 0, 0, 0), st, []Job{
				hook("s1", ScheduleSleep, false), hook("w1", ScheduleWake, true), hook("s2", ScheduleSleep, false),
			}, func(o *Options) {
				o.WaitOnline = func(ctx context.Context) error {
					select {
					case <-online:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			})
			h.start()
			h.advance(24 * time.Hour)
			if len(order) != 0 {
				t.Fatalf("hooks ran on the clock: %v", order)
			}
			ids := h.s.RunHooks(context.Background(), ScheduleSleep, 0)
			if len(ids) != 2 || len(order) != 2 || order[0] != "s1" || order[1] != "s2" {
				t.Fatalf("sleep hooks: ids %v, order %v", ids, order)
			}
			done := make(chan []int64)
			go func() { done <- h.s.RunHooks(context.Background(), ScheduleWake, 7) }()
			h.advance(time.Minute)
			if len(order) != 2 {
				t.Fatal("the @wake job that needs the network ran while offline")
			}
			close(online)
			if ids := <-done; len(ids) != 1 {
				t.Fatalf("wake hook ids %v", ids)
			}
			r := st.made("w1")
			if len(r) != 1 || r[0].Reason != ReasonWake || r[0].WakeID != 7 || r[0].Result != ResultOK {
				t.Fatalf("w1's runs %+v", r)
			}
			if r := st.made("s1"); len(r) != 1 || r[0].Reason != ReasonSleep || r[0].WakeID != 0 {
				t.Fatalf("s1's runs %+v", r)
			}
		})
	})
	t.Run("ARunIsKilledAtTheEndOfItsContext", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := openStore(t)
			h := newHarness(t, utc(2026, 1, 10, 0, 0, 0), st, []Job{{Name: "slow", Schedule: ScheduleSleep,
				Func: func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }}}, nil)
			h.start()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			t0 := time.Now()
			h.s.RunHooks(ctx, ScheduleSleep, 0)
			if d := time.Since(t0); d != 2*time.Second {
				t.Fatalf("the hook run took %s, want the 2 s it was given", d)
			}
			if r := st.all("slow"); len(r) != 1 || r[0].Result == ResultOK {
				t.Fatalf("runs %+v, want one that did not succeed", r)
			}
		})
	})
	t.Run("AHookScheduleIsValidMisfireAllIsNot", func(t *testing.T) {
		if err := (Job{Name: "w", Schedule: ScheduleWake, Command: []string{"true"}}).Validate(); err != nil {
			t.Fatal(err)
		}
		if err := (Job{Name: "w", Schedule: ScheduleWake, Command: []string{"true"}, Misfire: MisfireAll}).Validate(); err == nil {
			t.Fatal("misfire: all accepted on an @wake job")
		}
	})
}
