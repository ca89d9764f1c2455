//go:build !linux && !darwin && !windows

package power

import (
	"errors"
	"time"
)

const (
	logindDefault  = false
	platformSource = ""
)

func startPlatform(*Monitor) (stop func(), err error) { return nil, nil }

// osClock has no slept-time counter on this OS; the clock source is off.
type osClock struct{}

func (osClock) SleptTotal() (time.Duration, error) {
	return 0, errors.New("no slept-time clock on this OS")
}
