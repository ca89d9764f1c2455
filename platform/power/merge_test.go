package power

import (
	"testing"
	"time"
)

// step is one report to the merger, at offset `at` from a fixed origin.
type step struct {
	at     time.Duration
	op     string // "sleep", "wake" (by an announcing source), "clock"
	growth time.Duration
	slept  time.Duration // for "wake": the source's own Slept
	want   bool          // sleep accepted / wake delivered
	by     string        // for delivered wakes: DetectedBy
	wantSl time.Duration // for delivered wakes: Slept
}

func TestMerger(t *testing.T) {
	const window = 10 * time.Second
	origin := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		steps []step
	}{
		{"AnnouncedSleepThenWakeIsOneCycle", []step{
			{at: 0, op: "sleep", want: true},
			{at: time.Second, op: "wake", slept: time.Hour, want: true, by: "logind", wantSl: time.Hour},
		}},
		{"DuplicateWakeFromElogindIsDropped", []step{
			{at: 0, op: "sleep", want: true},
			{at: time.Second, op: "wake", want: true, by: "logind"},
			{at: time.Second + time.Millisecond, op: "wake", want: false},
		}},
		{"SleepDuringASleepIsIgnored", []step{
			{at: 0, op: "sleep", want: true},
			{at: 10 * time.Millisecond, op: "sleep", want: false},
			{at: time.Second, op: "wake", want: true, by: "logind"},
		}},
		{"StaleSleepIsReplacedByANewOne", []step{
			{at: 0, op: "sleep", want: true},
			{at: 2 * staleSleep, op: "sleep", want: true},
		}},
		{"FastCyclesAreAllSeen", []step{
			{at: 0, op: "sleep", want: true},
			{at: 100 * time.Millisecond, op: "wake", want: true, by: "logind"},
			{at: 200 * time.Millisecond, op: "sleep", want: true},
			{at: 300 * time.Millisecond, op: "wake", want: true, by: "logind"},
		}},
		{"LoneWakeAfterAMissedSleepIsAWake", []step{
			{at: 0, op: "wake", want: true, by: "logind"},
			{at: time.Minute, op: "wake", want: true, by: "logind"},
		}},
		{"ClockGrowthWithoutAnnouncingSourceIsAWake", []step{
			{at: 0, op: "clock", growth: 2 * time.Hour, want: true, by: "clock", wantSl: 2 * time.Hour},
		}},
		{"ClockGrowthBelowThresholdIsNoise", []step{
			{at: 0, op: "clock", growth: clockThreshold, want: false},
			{at: window, op: "clock", growth: 500 * time.Millisecond, want: false},
		}},
		{"WallClockStepLeavesTheCounterAloneSoNoWake", []step{
			// An NTP step or the user setting the time by an hour moves the
			// wall clock only; the slept counter's growth stays zero.
			{at: 0, op: "clock", growth: 0, want: false},
			{at: window, op: "clock", growth: 0, want: false},
		}},
		{"ClockFirstThenLogindIsOneWakeNamedLogindWithTheClocksSlept", []step{
			{at: 0, op: "sleep", want: true},
			{at: time.Second, op: "clock", growth: time.Hour, want: false},
			{at: 2 * time.Second, op: "wake", want: true, by: "logind", wantSl: time.Hour},
			{at: window, op: "clock", growth: 0, want: false},
		}},
		{"ClockHeldForAnAnnouncingSourceThatNeverReportsFiresAfterTheWindow", []step{
			{at: 0, op: "sleep", want: true},
			{at: time.Second, op: "clock", growth: time.Hour, want: false},
			{at: time.Second + window/2, op: "clock", want: false},
			{at: time.Second + window, op: "clock", want: true, by: "clock", wantSl: time.Hour},
			{at: time.Second + window + time.Second, op: "wake", want: false}, // late logind: same resume
		}},
		{"ClockWakeThenLoneLogindWakeIsOneWake", []step{
			{at: 0, op: "clock", growth: time.Hour, want: true, by: "clock", wantSl: time.Hour},
			{at: time.Second, op: "wake", want: false},
		}},
		{"LogindWakeThenClockGrowthInTheWindowIsOneWake", []step{
			{at: 0, op: "wake", want: true, by: "logind"},
			{at: time.Second, op: "clock", growth: time.Hour, want: false},
		}},
		{"ClockWakesFarApartAreTwoWakes", []step{
			{at: 0, op: "clock", growth: time.Hour, want: true, by: "clock", wantSl: time.Hour},
			{at: time.Hour, op: "clock", growth: 3 * time.Second, want: true, by: "clock", wantSl: 3 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := merger{window: window}
			for i, s := range tt.steps {
				now := origin.Add(s.at)
				var got bool
				var ev Event
				switch s.op {
				case "sleep":
					got = g.sleep(now)
				case "wake":
					ev, got = g.wake(now, Event{Kind: Wake, Slept: s.slept, DetectedBy: "logind"})
				case "clock":
					ev, got = g.clock(now, s.growth)
				}
				if got != s.want {
					t.Fatalf("step %d (%s at %v): got %v, want %v", i, s.op, s.at, got, s.want)
				}
				if got && s.op != "sleep" {
					if ev.Kind != Wake || ev.DetectedBy != s.by || ev.Slept != s.wantSl {
						t.Fatalf("step %d (%s): event %+v, want wake by %s slept %v", i, s.op, ev, s.by, s.wantSl)
					}
				}
			}
		})
	}
}

func TestIsSleepGrowth(t *testing.T) {
	for _, tt := range []struct {
		growth time.Duration
		want   bool
	}{
		{-time.Hour, false}, {0, false}, {clockThreshold, false},
		{clockThreshold + time.Millisecond, true}, {2 * time.Hour, true},
	} {
		if got := isSleepGrowth(tt.growth); got != tt.want {
			t.Errorf("isSleepGrowth(%v) = %v, want %v", tt.growth, got, tt.want)
		}
	}
}

func TestSleptBetween(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		suspended, announced time.Duration
		want                 time.Duration
	}{
		{"ARealSuspendCountsTheKernelsTime", 90 * time.Minute, 2 * time.Second, 90 * time.Minute},
		{"NoiseBetweenTwoReadsIsNoSuspend", 20 * time.Nanosecond, 1500 * time.Millisecond, 1500 * time.Millisecond},
		{"AShortRealSuspendStillCounts", 10 * time.Millisecond, 3 * time.Second, 10 * time.Millisecond},
		{"NeverNegative", 0, -time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sleptBetween(tc.suspended, tc.announced); got != tc.want {
				t.Fatalf("sleptBetween(%v, %v) = %v, want %v", tc.suspended, tc.announced, got, tc.want)
			}
		})
	}
}
