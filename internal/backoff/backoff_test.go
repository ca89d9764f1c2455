package backoff

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCeiling(t *testing.T) {
	b := Policy{Initial: time.Second, Max: 60 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		if got := b.Ceiling(i); got != w*time.Second {
			t.Errorf("Ceiling(%d) = %v, want %v", i, got, w*time.Second)
		}
	}
	if got := b.Ceiling(10000); got != 60*time.Second {
		t.Errorf("Ceiling(10000) = %v, want the cap", got)
	}
	if got := (Policy{}).Ceiling(3); got != 0 {
		t.Errorf("zero backoff ceiling = %v", got)
	}
}

func TestJitterBounds(t *testing.T) {
	t.Run("Full jitter spans zero to the ceiling", func(t *testing.T) {
		lo := Policy{Initial: time.Second, Max: 8 * time.Second, Rand: func(int64) int64 { return 0 }}
		hi := Policy{Initial: time.Second, Max: 8 * time.Second, Rand: func(n int64) int64 { return n - 1 }}
		for a := 0; a < 8; a++ {
			if d := lo.Full(a); d != 0 {
				t.Errorf("attempt %d low = %v", a, d)
			}
			if d := hi.Full(a); d != lo.Ceiling(a) {
				t.Errorf("attempt %d high = %v, want %v", a, d, lo.Ceiling(a))
			}
		}
	})
	t.Run("Equal jitter never goes under half the ceiling", func(t *testing.T) {
		lo := Policy{Initial: time.Second, Max: 8 * time.Second, Rand: func(int64) int64 { return 0 }}
		hi := Policy{Initial: time.Second, Max: 8 * time.Second, Rand: func(n int64) int64 { return n - 1 }}
		for a := 0; a < 8; a++ {
			if d := lo.Equal(a); d != lo.Ceiling(a)/2 {
				t.Errorf("attempt %d low = %v", a, d)
			}
			if d := hi.Equal(a); d != lo.Ceiling(a) {
				t.Errorf("attempt %d high = %v", a, d)
			}
		}
	})
	t.Run("Real randomness stays inside the bounds", func(t *testing.T) {
		b := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
		for i := 0; i < 10000; i++ {
			a := i % 12
			c := b.Ceiling(a)
			if d := b.Full(a); d < 0 || d > c {
				t.Fatalf("Full(%d) = %v outside [0,%v]", a, d, c)
			}
			if d := b.Equal(a); d < c/2 || d > c {
				t.Fatalf("Equal(%d) = %v outside [%v,%v]", a, d, c/2, c)
			}
		}
	})
}

func TestSleep(t *testing.T) {
	t.Run("It waits the full duration", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			if err := Sleep(context.Background(), 3*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != 3*time.Second {
				t.Fatalf("slept %v", got)
			}
		})
	})
	t.Run("It stops when the context ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			err := Sleep(ctx, time.Hour)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v", err)
			}
			if got := time.Since(start); got != time.Second {
				t.Fatalf("slept %v", got)
			}
		})
	})
}

func TestRetry(t *testing.T) {
	top := func(n int64) int64 { return n - 1 } // always the ceiling
	t.Run("NextWalksTheCeilingsUpToTheCap", func(t *testing.T) {
		r := Retry{Policy: Policy{Initial: 100 * time.Millisecond, Max: time.Second, Rand: top}}
		want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
		for i, w := range want {
			if got := r.Next(); got != w*time.Millisecond {
				t.Fatalf("delay %d = %v, want %v", i, got, w*time.Millisecond)
			}
		}
	})
	t.Run("ResetStartsAgainFromInitial", func(t *testing.T) {
		r := Retry{Policy: Policy{Initial: time.Second, Max: time.Minute, Rand: top}}
		for range 10 {
			r.Next()
		}
		r.Reset()
		if got := r.Next(); got != time.Second {
			t.Fatalf("after Reset = %v, want 1s", got)
		}
	})
	t.Run("TheCountStopsAtTheCap", func(t *testing.T) {
		r := Retry{Policy: Policy{Initial: time.Second, Max: 4 * time.Second}}
		for range 1000 {
			r.Next()
		}
		if r.n > 3 {
			t.Fatalf("n = %d after 1000 attempts capped at the third", r.n)
		}
	})
	t.Run("TheZeroRetryWaitsNothing", func(t *testing.T) {
		var r Retry
		if got := r.Next(); got != 0 {
			t.Fatalf("zero Retry = %v", got)
		}
	})
	t.Run("DelaysAreSpreadFromZeroToTheCeiling", func(t *testing.T) {
		// Full jitter: many loops that failed together must not retry in
		// step. Over many draws both ends of [0, ceiling] are reached.
		p := Policy{Initial: time.Second, Max: time.Second}
		var low, high bool
		for range 1000 {
			d := p.Full(0)
			low = low || d < 100*time.Millisecond
			high = high || d > 900*time.Millisecond
		}
		if !low || !high {
			t.Fatalf("1000 draws never below 100ms (%v) or above 900ms (%v)", low, high)
		}
	})
	t.Run("ALoopOfRetriesWaitsAtMostTheSumOfTheCeilings", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := Retry{Policy: Policy{Initial: 100 * time.Millisecond, Max: time.Second}}
			start := time.Now()
			for range 6 { // ceilings 0.1 0.2 0.4 0.8 1 1 = 3.5s
				if err := Sleep(t.Context(), r.Next()); err != nil {
					t.Fatal(err)
				}
			}
			if got := time.Since(start); got > 3500*time.Millisecond {
				t.Fatalf("six retries took %v, more than the ceilings' 3.5s", got)
			}
		})
	})
}
