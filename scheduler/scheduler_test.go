package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	_ "time/tzdata" // America/New_York on any machine

	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/internal/promreg"
)

func hourly(name, policy string) Job {
	return Job{Name: name, Schedule: "0 * * * *", Location: time.UTC, Func: okFunc, Misfire: policy}
}

func TestSleepAcrossDueTimes(t *testing.T) {
	// sleepFrom0020 starts j at 00:10 and sleeps through d from 00:20.
	sleepFrom0020 := func(t *testing.T, j Job, d time.Duration) *harness {
		t.Helper()
		h := newHarness(t, utc(2026, 1, 10, 0, 10, 0), openStore(t), []Job{j}, nil)
		h.start()
		h.advance(10 * time.Minute)
		h.suspend(d)
		return h
	}
	t.Run("CoalesceRunsOnceShortlyAfterTheWake", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := hourly("j", MisfireCoalesce)
			j.Jitter = 30 * time.Second
			h := sleepFrom0020(t, j, 2*time.Hour) // 00:20 -> 02:20, 01:00 and 02:00 missed
			wake := h.clock.now()
			h.advance(31 * time.Second)
			made := h.store.made("j")
			wantTimes(t, "after wake", scheduledTimes(made), utc(2026, 1, 10, 2, 0, 0))
			r := made[0]
			if r.Reason != ReasonMisfire || r.Result != ResultOK {
				t.Fatalf("catch-up run = %+v, want reason misfire, result ok", r)
			}
			if r.StartedAt.Before(wake) || r.StartedAt.Sub(wake) >= j.Jitter {
				t.Fatalf("catch-up started %v after the wake, want within [0, %v)", r.StartedAt.Sub(wake), j.Jitter)
			}
			h.advance(40 * time.Minute) // 03:00:31
			wantTimes(t, "next hour", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 2, 0, 0), utc(2026, 1, 10, 3, 0, 0))
		})
	})
	t.Run("SkipRunsNoneAndRecordsTheMisfire", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := sleepFrom0020(t, hourly("j", MisfireSkip), 2*time.Hour)
			h.advance(time.Minute)
			if made := h.store.made("j"); len(made) != 0 {
				t.Fatalf("skip made %d runs after the wake, want 0: %+v", len(made), made)
			}
			sk := h.store.skipped("j", ReasonMisfire)
			if len(sk) != 1 || !sk[0].ScheduledAt.Equal(utc(2026, 1, 10, 2, 0, 0)) {
				t.Fatalf("misfire records = %+v, want one for 02:00", sk)
			}
			h.advance(40 * time.Minute)
			wantTimes(t, "next hour", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 3, 0, 0))
		})
	})
	t.Run("AllRunsEveryMissedTime", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := sleepFrom0020(t, hourly("j", MisfireAll), 2*time.Hour)
			h.advance(time.Minute)
			made := h.store.made("j")
			wantTimes(t, "after wake", scheduledTimes(made), utc(2026, 1, 10, 1, 0, 0), utc(2026, 1, 10, 2, 0, 0))
			if made[1].StartedAt.Before(*made[0].EndedAt) {
				t.Fatalf("catch-up runs overlapped: %+v", made)
			}
			if n := len(h.store.skipped("j", ReasonMisfire)); n != 0 {
				t.Fatalf("%d misfire records, want none (nothing dropped)", n)
			}
		})
	})
	t.Run("AllIsBoundedByMaxCatchup", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := hourly("j", MisfireAll)
			j.MaxCatchup = 3
			h := sleepFrom0020(t, j, 5*time.Hour) // 01..05 missed
			h.advance(time.Minute)
			wantTimes(t, "after wake", scheduledTimes(h.store.made("j")),
				utc(2026, 1, 10, 3, 0, 0), utc(2026, 1, 10, 4, 0, 0), utc(2026, 1, 10, 5, 0, 0))
			if n := len(h.store.skipped("j", ReasonMisfire)); n != 1 {
				t.Fatalf("%d misfire records, want 1 for the 2 dropped", n)
			}
		})
	})
	t.Run("CoalesceBeyondGraceRunsNone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := hourly("j", MisfireCoalesce)
			j.Grace = 10 * time.Minute
			h := sleepFrom0020(t, j, 2*time.Hour) // last missed 02:00 is 20 min old
			h.advance(time.Minute)
			if made := h.store.made("j"); len(made) != 0 {
				t.Fatalf("made %d runs beyond grace, want 0", len(made))
			}
			if n := len(h.store.skipped("j", ReasonMisfire)); n != 1 {
				t.Fatalf("%d misfire records, want 1", n)
			}
		})
	})
}

func TestDueAfterAShortSleepRunsAtItsWallClockTime(t *testing.T) {
	for _, resume := range []bool{false, true} {
		name := "WithoutResume"
		if resume {
			name = "WithResume"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := Job{Name: "j", Schedule: "0 1 * * *", Location: time.UTC, Func: okFunc}
				h := newHarness(t, utc(2026, 1, 10, 0, 0, 0), openStore(t), []Job{j}, nil)
				h.start()
				h.advance(30 * time.Minute)
				// 15 min of sleep: the wall clock moves, no timer does.
				if resume {
					h.suspend(15 * time.Minute)
				} else {
					h.clock.jump(15 * time.Minute)
				}
				h.advance(15*time.Minute - time.Second) // wall 00:59:59
				if n := len(h.store.all("j")); n != 0 {
					t.Fatalf("%d runs before the due time", n)
				}
				h.advance(2 * time.Second) // wall 01:00:01
				made := h.store.made("j")
				wantTimes(t, "due run", scheduledTimes(made), utc(2026, 1, 10, 1, 0, 0))
				if late := made[0].StartedAt.Sub(made[0].ScheduledAt); late < 0 || late > DefaultStep {
					t.Fatalf("lateness %v, want within one step", late)
				}
				if made[0].Reason != ReasonSchedule {
					t.Fatalf("reason %q, want schedule", made[0].Reason)
				}
			})
		})
	}
}

func TestClockSetBackDoesNotRunAJobTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc(2026, 1, 10, 0, 50, 0), openStore(t), []Job{hourly("j", MisfireAll)}, nil)
		h.start()
		h.advance(10*time.Minute + 5*time.Second) // 01:00:05
		wantTimes(t, "before", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 1, 0, 0))
		h.clock.jump(-time.Hour)              // 00:00:05
		h.advance(time.Hour + 10*time.Second) // wall 01:00:15 again
		wantTimes(t, "after set back", scheduledTimes(h.store.all("j")), utc(2026, 1, 10, 1, 0, 0))
		h.advance(time.Hour) // wall 02:00:15
		wantTimes(t, "next", scheduledTimes(h.store.all("j")), utc(2026, 1, 10, 1, 0, 0), utc(2026, 1, 10, 2, 0, 0))
	})
}

func TestClockSetForwardRunsWhatBecameDueOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc(2026, 1, 10, 0, 10, 0), openStore(t), []Job{hourly("j", MisfireCoalesce)}, nil)
		h.start()
		h.clock.jump(3 * time.Hour) // 03:10: 01, 02, 03 became due
		h.advance(DefaultStep + time.Second)
		h.advance(time.Minute)
		made := h.store.made("j")
		wantTimes(t, "after jump", scheduledTimes(made), utc(2026, 1, 10, 3, 0, 0))
		if len(h.store.all("j")) != 1 {
			t.Fatalf("runs = %+v, want exactly one", h.store.all("j"))
		}
	})
}

func TestDaylightSavingTransitions(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		schedule string
		from, to time.Time
		want     int
	}{
		// 2026-03-08 02:30 does not exist in New York.
		{"SpringForwardSkipsTheMissingLocalTime", "30 2 * * *", time.Date(2026, 3, 7, 0, 0, 0, 0, ny), time.Date(2026, 3, 10, 0, 0, 0, 0, ny), 2},
		{"SpringForwardDayHas23Hours", "0 * * * *", time.Date(2026, 3, 8, 0, 0, 0, 0, ny).Add(-time.Second), time.Date(2026, 3, 9, 0, 0, 0, 0, ny).Add(-time.Second), 23},
		// 01:30 happens twice on 2026-11-01: two instants, both run.
		{"FallBackRunsTheRepeatedLocalTimeAtBothInstants", "30 1 * * *", time.Date(2026, 10, 31, 0, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny), 3},
		{"FallBackDayHas25Hours", "0 * * * *", time.Date(2026, 11, 1, 0, 0, 0, 0, ny).Add(-time.Second), time.Date(2026, 11, 2, 0, 0, 0, 0, ny).Add(-time.Second), 25},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := Job{Name: "j", Schedule: c.schedule, Location: ny, Func: okFunc}
				h := newHarness(t, c.from, openStore(t), []Job{j}, func(o *Options) { o.Step = 30 * time.Minute })
				h.start()
				h.advance(c.to.Sub(c.from))
				got := scheduledTimes(h.store.made("j"))
				// The times robfig/cron's Next gives in that zone.
				sched, _ := Parse(c.schedule)
				var want []time.Time
				for tt := sched.Next(c.from.In(ny)); !tt.After(c.to); tt = sched.Next(tt) {
					want = append(want, tt)
				}
				if len(want) != c.want {
					t.Fatalf("cron gives %d times, test expects %d: %v", len(want), c.want, want)
				}
				wantTimes(t, c.name, got, want...)
				for _, r := range h.store.made("j") {
					if r.StartedAt.Sub(r.ScheduledAt) != 0 || r.Reason != ReasonSchedule {
						t.Fatalf("run %+v: want on time", r)
					}
				}
			})
		})
	}
}

func TestMaxInstances(t *testing.T) {
	slow := func(ctx context.Context) (string, error) {
		select {
		case <-time.After(150 * time.Second):
			return "slow done", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	t.Run("OverlappingRunsAreRecordedAsSkipped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := Job{Name: "j", Schedule: "* * * * *", Location: time.UTC, Func: slow}
			h := newHarness(t, utc(2026, 1, 10, 0, 0, 30), openStore(t), []Job{j}, nil)
			h.start()
			h.advance(3*time.Minute + 40*time.Second) // 00:04:10
			wantTimes(t, "made", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 0, 1, 0), utc(2026, 1, 10, 0, 4, 0))
			wantTimes(t, "overlap", scheduledTimes(h.store.skipped("j", ReasonOverlap)), utc(2026, 1, 10, 0, 2, 0), utc(2026, 1, 10, 0, 3, 0))
			if got := h.s.Jobs(context.Background())[0].Running; got != 1 {
				t.Fatalf("running = %d, want 1", got)
			}
			r, err := h.s.RunNow(context.Background(), "j")
			if err != nil || r.Result != ResultSkipped || r.Reason != ReasonOverlap {
				t.Fatalf("RunNow at max_instances = %+v, %v; want skipped overlap", r, err)
			}
		})
	})
	t.Run("TwoInstancesMayOverlap", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := Job{Name: "j", Schedule: "* * * * *", Location: time.UTC, Func: slow, MaxInstances: 2}
			h := newHarness(t, utc(2026, 1, 10, 0, 0, 30), openStore(t), []Job{j}, nil)
			h.start()
			h.advance(3*time.Minute + 40*time.Second)
			wantTimes(t, "made", scheduledTimes(h.store.made("j")),
				utc(2026, 1, 10, 0, 1, 0), utc(2026, 1, 10, 0, 2, 0), utc(2026, 1, 10, 0, 4, 0))
			wantTimes(t, "overlap", scheduledTimes(h.store.skipped("j", ReasonOverlap)), utc(2026, 1, 10, 0, 3, 0))
		})
	})
	t.Run("StoppingCancelsRunsInFlight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := Job{Name: "j", Schedule: "* * * * *", Location: time.UTC, Func: slow}
			h := newHarness(t, utc(2026, 1, 10, 0, 0, 30), openStore(t), []Job{j}, nil)
			h.start()
			h.advance(time.Minute)
			h.stop()
			runs := h.store.all("j")
			if len(runs) != 1 || runs[0].Result != ResultFailed || runs[0].EndedAt == nil {
				t.Fatalf("runs after stop = %+v, want one failed (cancelled) and ended", runs)
			}
		})
	})
}

func TestRestartAppliesTheMisfirePolicy(t *testing.T) {
	cases := []struct {
		policy string
		made   []time.Time
		skips  int
	}{
		{MisfireCoalesce, []time.Time{utc(2026, 1, 10, 4, 0, 0)}, 0},
		{MisfireSkip, nil, 1},
		{MisfireAll, []time.Time{utc(2026, 1, 10, 2, 0, 0), utc(2026, 1, 10, 3, 0, 0), utc(2026, 1, 10, 4, 0, 0)}, 0},
	}
	for _, c := range cases {
		t.Run("Policy_"+c.policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := openStore(t)
				h := newHarness(t, utc(2026, 1, 10, 0, 50, 0), st, []Job{hourly("j", c.policy)}, nil)
				h.start()
				h.advance(10*time.Minute + 5*time.Second) // 01:00 runs
				h.stop()
				if last, _, _ := st.JobState(context.Background(), "j"); !last.Equal(utc(2026, 1, 10, 1, 0, 0)) {
					t.Fatalf("persisted lastScheduled = %v, want 01:00", last)
				}
				// The agent is down until 04:30; a new scheduler on the same store.
				h2 := newHarness(t, utc(2026, 1, 10, 4, 30, 0), st, []Job{hourly("j", c.policy)}, nil)
				h2.start()
				h2.advance(time.Minute)
				made := st.made("j")[1:]
				wantTimes(t, "after restart", scheduledTimes(made), c.made...)
				if n := len(st.skipped("j", ReasonMisfire)); n != c.skips {
					t.Fatalf("%d misfire records, want %d", n, c.skips)
				}
				if jobs := h2.s.Jobs(context.Background()); jobs[0].NextRun == nil || !jobs[0].NextRun.Equal(utc(2026, 1, 10, 5, 0, 0)) {
					t.Fatalf("next run = %v, want 05:00", jobs[0].NextRun)
				}
			})
		})
	}
}

func TestNeedsNetworkWaitsForTheNetworkAfterAWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		online := make(chan struct{})
		j := hourly("j", MisfireCoalesce)
		j.NeedsNetwork = true
		h := newHarness(t, utc(2026, 1, 10, 0, 10, 0), openStore(t), []Job{j}, func(o *Options) {
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
		h.suspend(2 * time.Hour)
		h.advance(5 * time.Minute)
		if n := len(h.store.all("j")); n != 0 {
			t.Fatalf("%d runs while offline, want 0", n)
		}
		close(online)
		h.settle()
		wantTimes(t, "online", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 2, 0, 0))
		if h.host.readyCount() < 2 {
			t.Fatalf("ready reported %d times, want again after Resume", h.host.readyCount())
		}
	})
}

func TestPauseStopsArming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc(2026, 1, 10, 0, 59, 0), openStore(t), []Job{hourly("j", MisfireCoalesce)}, nil)
		h.start()
		h.s.Pause(context.Background())
		h.advance(5 * time.Minute)
		if n := len(h.store.all("j")); n != 0 {
			t.Fatalf("%d runs while paused", n)
		}
		h.s.Resume(context.Background())
		h.settle()
		wantTimes(t, "resumed", scheduledTimes(h.store.made("j")), utc(2026, 1, 10, 1, 0, 0))
	})
}

func TestRunNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := Job{Name: "j", Schedule: "@daily", Func: func(ctx context.Context) (string, error) {
			time.Sleep(time.Second)
			return "hello", nil
		}}
		h := newHarness(t, utc(2026, 1, 10, 5, 0, 0), openStore(t), []Job{j}, nil)
		if _, err := h.s.RunNow(context.Background(), "j"); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("RunNow before Run: %v, want ErrNotRunning", err)
		}
		h.start()
		if _, err := h.s.RunNow(context.Background(), "nope"); !errors.Is(err, ErrUnknownJob) {
			t.Fatalf("RunNow unknown: %v, want ErrUnknownJob", err)
		}
		if _, err := h.s.Runs(context.Background(), "nope", 5); !errors.Is(err, ErrUnknownJob) {
			t.Fatalf("Runs unknown: %v, want ErrUnknownJob", err)
		}
		r, err := h.s.RunNow(context.Background(), "j")
		if err != nil || r.Result != ResultRunning || r.Reason != ReasonManual || r.ID == 0 {
			t.Fatalf("RunNow = %+v, %v", r, err)
		}
		h.advance(2 * time.Second)
		runs, err := h.s.Runs(context.Background(), "j", 10)
		if err != nil || len(runs) != 1 || runs[0].Result != ResultOK || runs[0].Output != "hello" || runs[0].ID != r.ID {
			t.Fatalf("Runs = %+v, %v", runs, err)
		}
		jobs := h.s.Jobs(context.Background())
		if len(jobs) != 1 || jobs[0].LastRun == nil || jobs[0].LastRun.Result != ResultOK || jobs[0].Running != 0 {
			t.Fatalf("Jobs = %+v", jobs)
		}
		if jobs[0].NextRun == nil || !jobs[0].NextRun.Equal(utc(2026, 1, 11, 0, 0, 0)) {
			t.Fatalf("next run %v, want tomorrow 00:00 UTC", jobs[0].NextRun)
		}
		// The same, as the scheduler's detail in /api/v1/health.
		detail, err := json.Marshal(h.s.Detail())
		if err != nil || !strings.Contains(string(detail), `"next_run":"2026-01-11T00:00:00Z"`) || !strings.Contains(string(detail), `"name":"j"`) {
			t.Fatalf("detail = %s, %v", detail, err)
		}
	})
}

func TestSetJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, utc(2026, 1, 10, 0, 50, 0), openStore(t), []Job{hourly("a", ""), hourly("b", "")}, nil)
		h.start()
		h.advance(10*time.Minute + 5*time.Second) // 01:00 for both
		b := hourly("b", "")
		b.Schedule = "30 * * * *"
		c := hourly("c", "")
		if err := h.s.SetJobs([]Job{hourly("a", ""), b, c}); err != nil {
			t.Fatal(err)
		}
		h.settle()
		h.advance(time.Hour) // 02:00:05
		wantTimes(t, "a kept", scheduledTimes(h.store.made("a")), utc(2026, 1, 10, 1, 0, 0), utc(2026, 1, 10, 2, 0, 0))
		wantTimes(t, "b re-armed", scheduledTimes(h.store.made("b")), utc(2026, 1, 10, 1, 0, 0), utc(2026, 1, 10, 1, 30, 0))
		wantTimes(t, "c new", scheduledTimes(h.store.made("c")), utc(2026, 1, 10, 2, 0, 0))
		if err := h.s.SetJobs([]Job{hourly("a", ""), hourly("a", "")}); err == nil {
			t.Fatal("duplicate names accepted")
		}
		if got := len(h.s.Jobs(context.Background())); got != 3 {
			t.Fatalf("a rejected reload changed the job set: %d jobs", got)
		}
	})
}

func TestStoreDownDoesNotStopRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		j := Job{Name: "j", Schedule: "0 * * * *", Location: time.UTC, Func: func(ctx context.Context) (string, error) {
			calls++
			return "", nil
		}}
		h := newHarness(t, utc(2026, 1, 10, 0, 50, 0), openStore(t), []Job{j}, nil)
		h.start()
		h.store.down()
		h.advance(10*time.Minute + 5*time.Second)
		if calls != 1 {
			t.Fatalf("job ran %d times with the store down, want 1", calls)
		}
		if jobs := h.s.Jobs(context.Background()); jobs[0].LastRun == nil || jobs[0].LastRun.Result != ResultOK {
			t.Fatalf("last run not kept in memory: %+v", jobs[0].LastRun)
		}
	})
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := promreg.New()
		h := newHarness(t, utc(2026, 1, 10, 0, 10, 0), openStore(t), []Job{hourly("j", MisfireCoalesce)},
			func(o *Options) { o.Metrics = reg })
		h.start()
		h.suspend(3 * time.Hour)
		h.advance(time.Minute)
		if got := counterValue(t, h.s.metrics.misfires.With("j", MisfireCoalesce)); got != 3 {
			t.Fatalf("misfires = %v, want 3", got)
		}
		if got := counterValue(t, h.s.metrics.runs.With("j", ResultOK)); got != 1 {
			t.Fatalf("ok runs = %v, want 1", got)
		}
		if lateness, _ := reg.Sample(`rouse_job_lateness_seconds_count{job="j"}`); lateness != 1 {
			t.Fatalf("lateness observations = %v, want 1", lateness)
		}
		// A second scheduler on the same registry reuses the collectors.
		if _, err := New(nil, Options{Store: openStore(t), Metrics: reg}); err != nil {
			t.Fatalf("second New on one registry: %v", err)
		}
	})
}

func counterValue(t *testing.T, c *promreg.Counter) float64 {
	t.Helper()
	return float64(c.Get())
}

func TestRunFailsWhenTheStoreCannotBeRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t)
		st.down()
		s, err := New([]Job{hourly("j", "")}, Options{Store: st, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		host := &fakeHost{}
		// A guard of a day of fake time: a Run that came up anyway returns
		// when it ends instead of running forever.
		guard, stop := context.WithTimeout(context.Background(), 24*time.Hour)
		err = s.Run(guard, host)
		stop()
		if !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Run = %v, want the store's error", err)
		}
		if host.readyCount() != 0 {
			t.Fatal("reported ready without its state")
		}
		// The agent retries; with the store back, Run comes up.
		st.up()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, host) }()
		synctest.Wait()
		if host.readyCount() != 1 {
			t.Fatal("not ready after the store came back")
		}
		if err := s.Run(ctx, host); err == nil {
			t.Fatal("a second concurrent Run was accepted")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}
