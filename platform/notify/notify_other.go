//go:build !linux

package notify

import "time"

func send(string) error { return nil }

func watchdogInterval() (time.Duration, error) { return 0, nil }
