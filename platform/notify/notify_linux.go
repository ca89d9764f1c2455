//go:build linux

package notify

import (
	"fmt"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// send writes one state to NOTIFY_SOCKET; nil when it is unset.
func send(state string) error {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		return fmt.Errorf("notify service manager (%s): %w", state, err)
	}
	return nil
}

// watchdogInterval is WatchdogSec, or 0 when there is no watchdog for this
// process or no socket to send to.
func watchdogInterval() (time.Duration, error) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return 0, nil
	}
	return daemon.SdWatchdogEnabled(false)
}
