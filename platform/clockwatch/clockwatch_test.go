package clockwatch

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// pending reports whether ch holds a notification, without waiting.
func pending(ch <-chan struct{}) bool {
	select {
	case _, ok := <-ch:
		return ok
	default:
		return false
	}
}

func TestSubscribers(t *testing.T) {
	t.Run("Every subscriber hears of a change, and changes while one is pending merge", func(t *testing.T) {
		w := New(quiet())
		a, unsubA := w.Subscribe()
		defer unsubA()
		b, unsubB := w.Subscribe()
		defer unsubB()
		w.changed("test")
		w.changed("test")
		for name, ch := range map[string]<-chan struct{}{"a": a, "b": b} {
			if !pending(ch) {
				t.Fatalf("subscriber %s got no notification", name)
			}
			if pending(ch) {
				t.Fatalf("subscriber %s got two notifications, want them merged", name)
			}
		}
	})
	t.Run("An ended subscription is closed and hears nothing more", func(t *testing.T) {
		w := New(quiet())
		ch, unsub := w.Subscribe()
		unsub()
		unsub() // a second call does nothing
		w.changed("test")
		if _, ok := <-ch; ok {
			t.Fatal("an ended subscription received a notification")
		}
	})
}

// fakeWall is a wall clock that can be moved apart from the monotonic one.
type fakeWall struct{ off atomic.Int64 }

func (c *fakeWall) now() time.Time               { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeWall) jump(d time.Duration)         { c.off.Add(int64(d)) }
func (c *fakeWall) install(w *Watcher) *fakeWall { w.wall, w.forcePoll = c.now, true; return c }

func TestPollingFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(quiet())
		clock := (&fakeWall{}).install(w)
		ch, unsub := w.Subscribe()
		defer unsub()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()

		step := func() { time.Sleep(FallbackInterval); synctest.Wait() }
		step()
		if pending(ch) {
			t.Fatal("notified with the clocks in step")
		}
		clock.jump(10 * time.Second) // set forward
		step()
		if !pending(ch) {
			t.Fatal("a clock set forward by 10 s was not noticed within one interval")
		}
		step()
		if pending(ch) {
			t.Fatal("one set was reported twice")
		}
		clock.jump(-time.Hour) // set back
		step()
		if !pending(ch) {
			t.Fatal("a clock set back by 1 h was not noticed within one interval")
		}
		clock.jump(FallbackThreshold / 2) // within the threshold: slewing, not a set
		step()
		if pending(ch) {
			t.Fatal("a drift below the threshold was reported")
		}

		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v", err)
		}
	})
}

func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(quiet())
		w.forcePoll = true
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait()
		if err := w.Run(ctx); err == nil {
			t.Fatal("a second concurrent Run returned nil, want an error")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run returned %v", err)
		}
		// Ended: it may run again.
		ctx2, cancel2 := context.WithCancel(context.Background())
		go func() { done <- w.Run(ctx2) }()
		synctest.Wait()
		cancel2()
		if err := <-done; err != nil {
			t.Fatalf("Run after Run returned %v", err)
		}
	})
}
