//go:build darwin && !cgo

package tray

import (
	"context"
	"errors"
	"log/slog"
)

// runTray needs cgo on macOS, where the systray library calls AppKit.
func runTray(context.Context, *controller, *session, *slog.Logger) error {
	return errors.New("this rouse was built without cgo, which the macOS tray needs; rebuild with CGO_ENABLED=1")
}
