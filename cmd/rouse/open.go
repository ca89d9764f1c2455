package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/client"
)

// browserExitWait is how long `rouse open` waits for the opener (xdg-open,
// open, rundll32) to report a failure. Openers that launch a browser and
// stay with it are left running.
var browserExitWait = 5 * time.Second

func newOpenCmd(g *globals) *cobra.Command {
	var printOnly bool
	cmd := &cobra.Command{
		Use:   "open",
		Short: "Open the dashboard in your browser, logged in",
		Long: `Open the dashboard in your browser, logged in.

rouse asks the running agent for a one-time login link (it works once, within
60 seconds) and opens it with the desktop's default browser. The link's page
has a button that logs that browser tab in (no cookie: the session lives in
the tab) until you log out, leave it unused for 12 hours, a week passes or the
agent restarts.
With --print it only prints the link, e.g. to open it on this machine by hand.`,
		Example: `  rouse open
  rouse open --print`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			lc, err := c.LoginCode(ctx)
			if err != nil {
				if client.IsNoAgent(err) {
					return err // agentHint says what to do
				}
				return fmt.Errorf("cannot get a login link from the agent at %s: %w", c.BaseURL(), err)
			}
			if printOnly {
				fmt.Fprintln(cmd.OutOrStdout(), lc.URL)
				return nil
			}
			if err := openBrowser(cmd.Context(), lc.URL); err != nil {
				fmt.Fprintln(cmd.OutOrStdout(), lc.URL)
				return fmt.Errorf("cannot open a browser (%w): open the link above yourself within 60 seconds", err)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Opened the dashboard in your browser (the login link works once, for 60 seconds).")
			return nil
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "only print the one-time login link")
	return cmd
}

// openBrowser runs the OS's URL opener (browserCommand, one file per OS)
// and reports its failure if it exits with one within browserExitWait.
func openBrowser(ctx context.Context, url string) error {
	name, args := browserCommand(url)
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s not found: %w", name, err)
	}
	c := exec.Command(path, args...)
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }() // ends when the opener exits, at the latest with rouse
	t := time.NewTimer(browserExitWait)
	defer t.Stop()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s exited with status %d", name, ee.ExitCode())
		}
		return err
	case <-t.C:
		return nil // still running: it is showing the page
	case <-ctx.Done():
		return nil
	}
}
