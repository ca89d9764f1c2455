package power

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

const (
	logindDefault  = true
	platformSource = "" // logind is started by Run itself
)

func startPlatform(*Monitor) (stop func(), err error) { return nil, nil }

// osClock measures time slept as CLOCK_BOOTTIME - CLOCK_MONOTONIC: both
// count from boot, only BOOTTIME counts suspended time, and neither follows
// the wall clock. MONOTONIC is read first so the gap is never understated.
type osClock struct{}

func (osClock) SleptTotal() (time.Duration, error) {
	var mono, boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return 0, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return max(time.Duration(boot.Nano()-mono.Nano()), 0), nil
}
