//go:build !linux

package tray

import (
	"context"
	"log/slog"
)

// session is a no-op outside Linux: the tray area there is part of the OS
// (no bus to check, no host to wait for), and alerts show on the icon only.
type session struct{}

func openSession(*slog.Logger) (*session, error)       { return &session{}, nil }
func (*session) close()                                {}
func (*session) done() <-chan struct{}                 { return nil }
func (*session) waitForHost(ctx context.Context) error { return nil }
func (*session) notify(Alert) error                    { return errNoNotifications }

// whenItemLive: nothing to wait for outside Linux.
func (*session) whenItemLive(context.Context, func()) bool { return true }
