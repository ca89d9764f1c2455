package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// BenchmarkLatenessAcrossSuspend measures, in real time, how late jobs run
// across a simulated 15 min suspend (the wall clock jumps while no timer
// moves). A job "@every 1s" with coalesce and no jitter:
//   - catchup_*_ms: how long after the wake the first run (the one that
//     coalesces the missed times) started;
//   - lateness_*_ms: actual start minus scheduled time of the next run,
//     the first one due after the wake (a Go timer armed before the sleep
//     would fire 15 min late).
//
// Run with: go test -run '^$' -bench LatenessAcrossSuspend -benchtime 20x ./scheduler/
func BenchmarkLatenessAcrossSuspend(b *testing.B) {
	for _, resume := range []bool{true, false} {
		name := "AgentCallsResume"
		if !resume {
			name = "ClockJumpFoundByTheLoop"
		}
		b.Run(name, func(b *testing.B) {
			clock := &wallClock{}
			st := openStore(b)
			s, err := New([]Job{{Name: "j", Schedule: "@every 1s", Func: okFunc}},
				Options{Store: st, Logger: quietLogger(), Now: clock.now})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			host := &fakeHost{}
			go func() { done <- s.Run(ctx, host) }()
			defer func() {
				cancel()
				<-done
			}()
			// Wait until the job is armed and has run once on time.
			waitFor(b, func() bool { return host.readyCount() > 0 && len(st.made("j")) > 0 })
			var lateness, catchup []float64
			b.ResetTimer()
			for range b.N {
				if resume {
					s.Pause(context.Background())
				}
				clock.jump(15 * time.Minute)
				wake := clock.now()
				if resume {
					s.Resume(context.Background())
				}
				var caughtMS, lateMS float64
				waitFor(b, func() bool {
					var first *wire.JobRun
					for _, r := range st.made("j") {
						if r.StartedAt == nil || r.StartedAt.Before(wake) {
							continue
						}
						if first == nil {
							first = &r
							caughtMS = ms(r.StartedAt.Sub(wake))
							continue
						}
						if r.ScheduledAt.After(first.ScheduledAt) {
							lateMS = ms(r.StartedAt.Sub(r.ScheduledAt))
							return true
						}
					}
					return false
				})
				catchup = append(catchup, caughtMS)
				lateness = append(lateness, lateMS)
			}
			b.StopTimer()
			b.ReportMetric(median(lateness), "lateness_median_ms")
			b.ReportMetric(slices.Max(lateness), "lateness_worst_ms")
			b.ReportMetric(median(catchup), "catchup_median_ms")
			b.ReportMetric(slices.Max(catchup), "catchup_worst_ms")
		})
	}
}

// waitFor polls cond; 30 s is a failure guard.
func waitFor(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
