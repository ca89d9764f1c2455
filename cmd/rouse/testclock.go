package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/platform/power"
)

// Test-only hooks for the end-to-end tests, which cannot suspend the
// machine they run on. They are read only by `rouse run` and do nothing
// unless set; a warning is logged when one is.
//
//   - ROUSE_TEST_CLOCK_FILE: the sleep-and-wake clock source reads the total
//     time slept from this file (a Go duration like "2h", or seconds)
//     instead of the OS clocks, so a test can "sleep" by bumping it.
//   - ROUSE_TEST_CLOCK_INTERVAL: the clock source's check period (a Go
//     duration) instead of the default 10 s.
const (
	envTestClockFile     = "ROUSE_TEST_CLOCK_FILE"
	envTestClockInterval = "ROUSE_TEST_CLOCK_INTERVAL"
)

// testPowerOptions applies the test-only hooks to o.
func testPowerOptions(o power.Options, log *slog.Logger) (power.Options, error) {
	if path := os.Getenv(envTestClockFile); path != "" {
		log.Warn("test hook: time slept is read from a file, not the OS clocks", "env", envTestClockFile, "file", path)
		o.Clock = fileClock{path: path}
	}
	if s := os.Getenv(envTestClockInterval); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("%s: want a positive duration, got %q", envTestClockInterval, s)
		}
		log.Warn("test hook: clock check period changed", "env", envTestClockInterval, "interval", d)
		o.ClockInterval = d
	}
	return o, nil
}

// fileClock is a power.ClockSource reading the total time slept from a file.
type fileClock struct{ path string }

func (c fileClock) SleptTotal() (time.Duration, error) {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return 0, fmt.Errorf("test clock: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("test clock %s: want a duration or seconds, got %q", c.path, s)
	}
	return time.Duration(f * float64(time.Second)), nil
}
