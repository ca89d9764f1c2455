package clockwatch

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// guard bounds every real-time wait; none of them should come near it.
const guard = 10 * time.Second

// setClockToNow sets CLOCK_REALTIME to the time it reads: the kernel
// reports the set to timerfds like any other, and the machine's clock does
// not move (by the microseconds between the read and the set at most).
// It needs CAP_SYS_TIME, which the CI's root has.
func setClockToNow(t *testing.T) {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Fatalf("clock_gettime: %v", err)
	}
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Fatalf("this test needs CAP_SYS_TIME (root) to set the clock to the time it reads: %v", err)
		}
		t.Fatalf("clock_settime: %v", err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list fds: %v", err)
	}
	return len(ents)
}

// startReal runs a watcher on the real timerfd and waits until it is armed.
func startReal(t *testing.T) (*Watcher, func()) {
	t.Helper()
	w := New(quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.armed:
	case <-time.After(guard):
		cancel()
		<-done
		t.Fatal("the timerfd was not armed")
	}
	return w, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(guard):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

func TestTimerfd(t *testing.T) {
	t.Run("Setting the clock, even to the time it reads, is a change, every time", func(t *testing.T) {
		w, stop := startReal(t)
		defer stop()
		ch, unsub := w.Subscribe()
		defer unsub()
		for i := range 3 {
			setClockToNow(t)
			select {
			case <-ch:
			case <-time.After(guard):
				t.Fatalf("set %d was not reported", i+1)
			}
		}
	})
	t.Run("An idle watcher reports nothing", func(t *testing.T) {
		w, stop := startReal(t)
		defer stop()
		ch, unsub := w.Subscribe()
		defer unsub()
		select {
		case <-ch:
			t.Fatal("reported a change nobody made")
		case <-time.After(300 * time.Millisecond):
		}
	})
	t.Run("Run closes its timerfd and ends its goroutine when its context ends", func(t *testing.T) {
		before := openFDs(t)
		_, stop := startReal(t)
		if openFDs(t) <= before {
			t.Fatal("no timerfd open while running")
		}
		stop()
		if after := openFDs(t); after != before {
			t.Fatalf("%d fds open after Run, %d before", after, before)
		}
		// goleak in TestMain checks the goroutine.
	})
}
