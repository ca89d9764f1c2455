package power

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

const (
	logindDefault  = false
	platformSource = "" // macOS: the clock source only
)

func startPlatform(*Monitor) (stop func(), err error) { return nil, nil }

// osClock measures time slept as CLOCK_MONOTONIC - CLOCK_UPTIME_RAW: on macOS
// MONOTONIC counts suspended time and UPTIME_RAW does not; neither follows the
// wall clock. UPTIME_RAW is read first so the gap is never understated.
type osClock struct{}

func (osClock) SleptTotal() (time.Duration, error) {
	var up, mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_UPTIME_RAW, &up); err != nil {
		return 0, fmt.Errorf("read CLOCK_UPTIME_RAW: %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return 0, fmt.Errorf("read CLOCK_MONOTONIC: %w", err)
	}
	return max(time.Duration(mono.Nano()-up.Nano()), 0), nil
}
