package tray

import (
	"context"
	"log/slog"
	"time"
)

// Options configure Run.
type Options struct {
	// Dial returns the agent to follow. It is called again (with backoff)
	// when it fails or when the agent refuses its token, so a tray started
	// before the agent's first run finds it once the token exists.
	// Required.
	Dial func() (Agent, error)
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Grace is how long a lost agent goes unreported (default DefaultGrace).
	Grace time.Duration
	// OpenURL opens the dashboard's login URL (default: the desktop's
	// opener: xdg-open, open, or the URL handler on Windows).
	OpenURL func(url string) error
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.OpenURL == nil {
		o.OpenURL = openURL
	}
}

// Run shows the tray icon until ctx is done or the user picks Quit; it
// returns nil then. It fails without touching the tray when there is no
// desktop session bus, waits (quietly, after saying so once) while there
// is no tray host, and returns an error if the session bus goes away.
func Run(ctx context.Context, o Options) error {
	o.defaults()
	s, err := openSession(o.Logger)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.waitForHost(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	c := newController(o.Dial, nil, s.notify, o.OpenURL, o.Logger, o.Grace)
	return runTray(ctx, c, s, o.Logger)
}
