package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/agent/config"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with config files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a config file and print every error (file:line: key: problem)",
		Long: `Check a config file and print every error at once, as file:line: key: problem.
Without FILE it checks the config "rouse run" would use: --config, ROUSE_CONFIG,
or ~/.config/rouse/rouse.yaml.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.configPath()
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return usagef("no config file to check: give FILE, or --config (no ROUSE_CONFIG and no ~/.config/rouse/rouse.yaml here)")
			}
			cfg, err := config.Load(path, builtinKinds())
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					for _, e := range errs {
						fmt.Fprintln(cmd.ErrOrStderr(), e)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "%s\n", plural(len(errs), "error", "errors"))
					return codeError{exitBadConfig}
				}
				return configError{err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%s, %s)\n", path, plural(len(cfg.Trackers), "tracker", "trackers"), plural(len(cfg.Jobs), "job", "jobs"))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the embedded default config (a commented starting point)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.DefaultYAML)
			return err
		},
	})
	return cmd
}

// plural counts things in words: "1 tracker", "0 trackers", "2 jobs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
