package clockwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// armAhead is how far ahead the CLOCK_REALTIME timer is armed. It never
// needs to expire: it is there to be cancelled when the clock is set.
const armAhead = 365 * 24 * time.Hour

// runOS waits on a timerfd that the kernel cancels whenever the wall clock
// is set. It returns nil when ctx is done, an error when the timerfd does
// not work (the caller then polls).
func (w *Watcher) runOS(ctx context.Context) error {
	fd, err := unix.TimerfdCreate(unix.CLOCK_REALTIME, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("timerfd_create: %w", err)
	}
	// Non-blocking: reads wait in the runtime's poller, and a read deadline
	// ends them.
	f := os.NewFile(uintptr(fd), "clockwatch-timerfd")
	defer f.Close()
	if err := arm(fd); err != nil {
		return err
	}
	w.markArmed()

	done := make(chan error, 1)
	go func() { done <- w.read(f, fd) }()
	select {
	case err := <-done:
		if ctx.Err() != nil {
			return nil
		}
		return err
	case <-ctx.Done():
		if err := f.SetReadDeadline(time.Now()); err != nil {
			// Not in the poller after all: closing ends the read.
			_ = f.Close()
		}
		<-done
		return nil
	}
}

// read reads the timerfd until it fails for another reason than a clock
// set or an expiry. A deadline set by runOS ends it with
// os.ErrDeadlineExceeded.
func (w *Watcher) read(f *os.File, fd int) error {
	var buf [8]byte
	for {
		_, err := f.Read(buf[:])
		set := errors.Is(err, unix.ECANCELED)
		if err != nil && !set {
			return fmt.Errorf("read timerfd: %w", err)
		}
		// Re-arm before telling anyone (err == nil: a year went by without
		// a set): a set is only seen while the timer is armed, so a
		// subscriber that reacts to this one must not be able to make, or
		// race, the next set in a window where nothing watches.
		if err := arm(fd); err != nil {
			return err
		}
		if set {
			w.changed("timerfd")
		}
	}
}

// arm sets the timer armAhead into the future on the wall clock, cancelled
// on every clock set.
func arm(fd int) error {
	at := unix.NsecToTimespec(time.Now().Add(armAhead).UnixNano())
	spec := unix.ItimerSpec{Value: at}
	if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}
