//go:build !linux && !freebsd && !openbsd && !netbsd && !darwin && !windows

package tray

import "errors"

// openURL is not supported here: the user runs `rouse open`.
func openURL(string) error { return errors.New("no browser opener on this system") }
