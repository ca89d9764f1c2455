package main

import (
	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/platform/tray"
)

func newTrayCmd(g *globals) *cobra.Command {
	var logLevel string
	cmd := &cobra.Command{
		Use:   "tray",
		Short: "Show rouse's status icon in the desktop tray (run it in your desktop session)",
		Long: `Show a status icon in the desktop tray: green when every component is ready,
amber while recovering, orange when one missed its deadline, red when one failed,
grey while asleep (a grey ring while the agent cannot be reached). Its menu lists
the components and offers Recover now, Open dashboard and Quit.

The tray is a separate per-user process and only a client of the agent's API.
It needs a desktop session bus and a tray host (a panel that supports
StatusNotifierItem); without a host it waits for one. Add it to your desktop's
autostart to have it at login.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, "text")
			if err != nil {
				return usageError{err}
			}
			log = log.With("component", "tray")
			// A bad config is a usage error now, not a reason to retry.
			if _, _, err := g.loadConfig(); err != nil {
				return err
			}
			return tray.Run(cmd.Context(), tray.Options{
				Dial: func() (tray.Agent, error) {
					c, err := g.newClient()
					if err != nil {
						return nil, err
					}
					return tray.ClientAgent(c), nil
				},
				Logger: log,
			})
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
