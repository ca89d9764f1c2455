// Package notify owns rouse's conversation with the service manager
// (systemd's sd_notify protocol): READY=1 once the API listens, STOPPING=1
// when shutting down, a free-form STATUS= line, and WATCHDOG=1 keepalives
// at half the unit's WatchdogSec.
//
// Every function is a no-op returning nil when the process was not started
// by a notify-aware service manager (NOTIFY_SOCKET unset) and on systems
// other than Linux, so callers never branch on the platform.
package notify

import (
	"context"
	"log/slog"
	"time"
)

// Ready tells the service manager that startup is finished (READY=1).
func Ready() error { return send("READY=1") }

// Stopping tells the service manager that the service is shutting down
// (STOPPING=1).
func Stopping() error { return send("STOPPING=1") }

// Status sets the one-line status the service manager shows for the unit
// (STATUS=...). Newlines in s are replaced by spaces: the protocol is line
// based.
func Status(s string) error { return send("STATUS=" + oneLine(s)) }

// Watchdog sends WATCHDOG=1 at once and then every half WatchdogSec until
// ctx is done, then returns nil. It returns nil at once when the service
// manager asked for no watchdog (WATCHDOG_USEC unset, or meant for another
// process) or there is no NOTIFY_SOCKET. A failed send is logged (once per
// run of failures, through slog.Default) and retried at the next tick:
// giving up would let the service manager kill a healthy agent.
func Watchdog(ctx context.Context) error {
	return WatchdogLogger(ctx, slog.Default())
}

// WatchdogLogger is Watchdog with the logger failed sends go to.
func WatchdogLogger(ctx context.Context, log *slog.Logger) error {
	interval, err := watchdogInterval()
	if err != nil || interval <= 0 {
		if err != nil {
			log.Warn("service watchdog setting ignored", "err", err)
		}
		return nil
	}
	return watchdog(ctx, interval/2, func() error { return send("WATCHDOG=1") }, log)
}

// watchdog calls ping at once and every period until ctx is done.
func watchdog(ctx context.Context, period time.Duration, ping func() error, log *slog.Logger) error {
	t := time.NewTicker(period)
	defer t.Stop()
	failing := false
	for {
		if err := ping(); err != nil {
			if !failing {
				log.Warn("service watchdog ping failed", "err", err)
			}
			failing = true
		} else if failing {
			log.Info("service watchdog ping works again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
