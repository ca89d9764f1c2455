//go:build !windows

package installer

import "context"

// RunAgent runs the agent. systemd and launchd start "rouse run" as a
// plain process (sleep and wake come from logind or the clock), so there
// is nothing to adapt outside Windows.
func RunAgent(ctx context.Context, run func(context.Context) error) error {
	return run(ctx)
}
