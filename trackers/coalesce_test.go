package trackers

import (
	"testing"
	"time"
)

func TestPollDelay(t *testing.T) {
	base := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	t.Run("WithinAFortiethOfTheInterval", func(t *testing.T) {
		for _, iv := range []time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute, time.Hour} {
			for off := time.Duration(0); off < 2*time.Minute; off += 737 * time.Millisecond {
				d := PollDelay(base.Add(off), iv)
				if diff := (d - iv).Abs(); diff > iv/40 {
					t.Fatalf("interval %v at +%v: delay %v, %v off (more than %v)", iv, off, d, diff, iv/40)
				}
			}
		}
	})
	t.Run("AlikeIntervalsFireTogether", func(t *testing.T) {
		// 25 pollers of 60 s that started within 1.4 s of each other
		// (less than the 3 s step), each polling for a few milliseconds:
		// every minute they fire at no more than two instants (the
		// spread may straddle one point between two), and always at the
		// same ones, a minute apart.
		const rounds = 5
		var fire [rounds]map[int64]bool
		for r := range fire {
			fire[r] = map[int64]bool{}
		}
		for i := range 25 {
			at := base.Add(time.Duration(i) * 57 * time.Millisecond)
			for r := range rounds {
				at = at.Add(PollDelay(at, time.Minute))
				fire[r][at.UnixNano()] = true
				at = at.Add(time.Duration(3+i) * time.Millisecond) // the poll itself
			}
		}
		for r := range rounds {
			if len(fire[r]) > 2 {
				t.Fatalf("minute %d: 25 polls at %d distinct instants, want at most 2", r, len(fire[r]))
			}
			for at := range fire[r] {
				if r > 0 && !fire[r-1][at-int64(time.Minute)] {
					t.Fatalf("minute %d: a poll at an instant not a minute after one of minute %d", r, r-1)
				}
			}
		}
	})
	t.Run("TheMeanPeriodIsTheInterval", func(t *testing.T) {
		at := base
		for range 60 {
			at = at.Add(PollDelay(at, 10*time.Second)).Add(20 * time.Millisecond)
		}
		if got := at.Sub(base); (got - 10*time.Minute).Abs() > time.Second+60*20*time.Millisecond/2 {
			t.Errorf("60 polls of 10 s took %v", got)
		}
	})
	t.Run("UnderASecondIsNotMoved", func(t *testing.T) {
		if d := PollDelay(base.Add(123*time.Millisecond), 900*time.Millisecond); d != 900*time.Millisecond {
			t.Errorf("delay %v, want 900ms", d)
		}
	})
}
