package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/installer"
	"github.com/rouse-dev/rouse/internal/home"
	"github.com/rouse-dev/rouse/platform/power"
)

// loadConfig reads the config the flags and environment point at, or the
// embedded default. Errors are config errors (exit 78).
func (g *globals) loadConfig() (*config.Config, string, error) {
	path := g.configPath()
	if path == "" {
		cfg, err := config.Parse("default", config.DefaultYAML, builtinKinds())
		if err != nil {
			return nil, "", fmt.Errorf("the embedded default config is invalid (a bug): %w", err)
		}
		return cfg, "", nil
	}
	cfg, err := config.Load(path, builtinKinds())
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
its built-in maintenance jobs, and a network tracker that records link changes.

Boot order: lock the data directory (a second agent on it exits 1) and answer
/healthz; read the config (a bad one exits 78); open the store (exit 1 if it
cannot); serve the whole REST API; restore the components.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Until the config is read, log at the flags' level and format
			// (default info, text); then at the config's unless a flag says.
			level, format := cmp.Or(logLevel, "info"), cmp.Or(logFormat, "text")
			h, err := newHandler(cmd.ErrOrStderr(), level, format)
			if err != nil {
				return usageError{err}
			}
			sw := newSwitchHandler(h)
			logger := slog.New(sw)
			slog.SetDefault(logger)
			po, err := testPowerOptions(power.DefaultOptions(), logger)
			if err != nil {
				return usageError{err}
			}
			path := g.configPath()
			early := peekBootKeys(path)
			dataDir, err := g.dataDir(early.Data)
			if err != nil {
				return err
			}
			listen := g.listenAddr(early.Listen)
			load := func() (*config.Config, error) {
				cfg, _, err := g.loadConfig()
				if err != nil {
					return nil, err
				}
				if err := early.agrees(cfg, path, g.listen == "" && os.Getenv("ROUSE_LISTEN") == "",
					g.data == "" && os.Getenv("ROUSE_DATA") == ""); err != nil {
					return nil, err
				}
				if logLevel == "" || logFormat == "" {
					h, err := newHandler(cmd.ErrOrStderr(), cmp.Or(logLevel, cfg.Log.Level), cmp.Or(logFormat, cfg.Log.Format))
					if err != nil {
						return nil, err
					}
					sw.Switch(h)
				}
				return cfg, nil
			}
			a, err := agent.New(agent.Options{
				LoadConfig: load, Kinds: builtinKinds(), ConfigPath: path, DataDir: dataDir, Listen: listen, AllowNonLoopback: early.AllowNonLoopback,
				MaxEventStreams: early.MaxEventStreams,
				Logger:          logger, Version: version, Power: true, PowerOptions: po, Network: true, Dashboard: dashboardHandler(),
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

// bootKeys are the config values boot step 0 needs — where to lock, where
// to listen, how many event streams the API takes — before the config is parsed. They are read from the
// file's top-level lines (block style, as "rouse config default" writes
// them), which costs microseconds where the whole parse costs
// milliseconds; the full parse must then agree.
type bootKeys struct {
	Listen           string `yaml:"listen"`
	Data             string `yaml:"data"`
	AllowNonLoopback bool   `yaml:"allow_non_loopback"`
	MaxEventStreams  int    `yaml:"max_event_streams"`
}

var bootKeyNames = []string{"listen", "data", "allow_non_loopback", "max_event_streams"}

// peekBootKeys reads the boot keys from path's top-level lines; what it
// cannot read stays at its zero value (the full parse then reports the
// file's errors).
func peekBootKeys(path string) bootKeys {
	var k bootKeys
	if path == "" {
		return k
	}
	f, err := os.Open(path)
	if err != nil {
		return k
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range bootKeyNames {
			rest, ok := strings.CutPrefix(line, name)
			if !ok || !strings.HasPrefix(strings.TrimLeft(rest, " \t"), ":") {
				continue
			}
			var one bootKeys
			if yaml.Unmarshal([]byte(line), &one) != nil {
				continue
			}
			switch name {
			case "listen":
				k.Listen = one.Listen
			case "data":
				k.Data = expandHome(one.Data) // as config.Parse does
			case "allow_non_loopback":
				k.AllowNonLoopback = one.AllowNonLoopback
			case "max_event_streams":
				k.MaxEventStreams = one.MaxEventStreams
			}
		}
	}
	return k
}

// expandHome is home.Expand for the boot keys' peek: a path it cannot
// expand stays as written, and the full parse then names the error.
func expandHome(p string) string {
	if e, err := home.Expand(p); err == nil {
		return e
	}
	return p
}

// agrees checks the full parse found the boot keys the peek did: a key
// written in a way the peek cannot see (flow style, say) would otherwise
// have the agent locked and listening somewhere else than the config says.
// Only the keys the config decides (no flag or environment variable
// overrides them) are checked.
func (k bootKeys) agrees(cfg *config.Config, path string, listenFromConfig, dataFromConfig bool) error {
	early := cmp.Or(k.Listen, config.Default().Listen)
	bad := func(key string, v any) error {
		return configError{fmt.Errorf("%s: %s: rouse reads it before the rest of the config (to lock the data directory and answer /healthz at once) and could not find it; write it on a top-level line of its own: %s: %v", path, key, key, v)}
	}
	switch {
	case listenFromConfig && cfg.Listen != early:
		return bad("listen", cfg.Listen)
	case dataFromConfig && cfg.Data != k.Data:
		return bad("data", cfg.Data)
	case cfg.AllowNonLoopback != k.AllowNonLoopback:
		return bad("allow_non_loopback", cfg.AllowNonLoopback)
	case cfg.MaxEventStreams != cmp.Or(k.MaxEventStreams, config.Default().MaxEventStreams):
		return bad("max_event_streams", cfg.MaxEventStreams)
	}
	return nil
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
