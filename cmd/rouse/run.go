package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/agent/config"
	_ "github.com/rouse-dev/rouse/agent/kinds" // every tracker kind
	"github.com/rouse-dev/rouse/installer"
	"github.com/rouse-dev/rouse/platform/power"
)

// loadConfig reads the config the flags and environment point at, or the
// embedded default. Errors are config errors (exit 78).
func (g *globals) loadConfig() (*config.Config, string, error) {
	path := g.configPath()
	if path == "" {
		cfg, err := config.Parse("default", config.DefaultYAML)
		if err != nil {
			return nil, "", fmt.Errorf("the embedded default config is invalid (a bug): %w", err)
		}
		return cfg, "", nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, path, configError{err}
	}
	return cfg, path, nil
}

func newRunCmd(g *globals) *cobra.Command {
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (what the service runs)",
		Long: `Run the agent in the foreground until SIGINT or SIGTERM.

With no config file it runs on an embedded default: the store, the scheduler with
its built-in maintenance jobs, and a network tracker that records link changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := g.loadConfig()
			if err != nil {
				return err
			}
			level, format := cfg.Log.Level, cfg.Log.Format
			if logLevel != "" {
				level = logLevel
			}
			if logFormat != "" {
				format = logFormat
			}
			logger, err := newLogger(cmd.ErrOrStderr(), level, format)
			if err != nil {
				return usageError{err}
			}
			slog.SetDefault(logger)
			po, err := testPowerOptions(power.DefaultOptions(), logger)
			if err != nil {
				return usageError{err}
			}
			a, err := agent.New(agent.Options{
				Config: cfg, ConfigPath: path, DataDir: g.dataDir(cfg.Data), Listen: g.listenAddr(""),
				Logger: logger, Version: version, Power: true, PowerOptions: po, Network: true, Dashboard: dashboardHandler(),
			})
			if err != nil {
				return err
			}
			err = installer.RunAgent(cmd.Context(), a.Run) // on Windows: the service handler, power events
			var ee *agent.ExitError
			if errors.As(err, &ee) {
				logger.Error("rouse cannot run", "err", ee.Err)
				return codeError{ee.Code}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default from config: info)")
	cmd.Flags().StringVar(&logFormat, "log-format", "", "text or json (default from config: text)")
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: want debug, info, warn or error, got %q", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("log format: want text or json, got %q", format)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "rouse", version)
		},
	}
}
