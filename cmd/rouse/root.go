package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	config string
	data   string
	listen string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "rouse",
		Short: "Brings your trackers, tunnels and jobs back when your laptop wakes up",
		Long: `rouse is a resilience agent for desktops and laptops. It notices suspend and
resume, reopens its store, and restores your trackers, tunnels and scheduled jobs
concurrently under deadlines, while its local REST API keeps answering.

Start it in the foreground with "rouse run" (no config needed), or install it as a
service with "rouse install --user". Then "rouse status" shows what it keeps alive.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", "", "config file (env ROUSE_CONFIG; default ~/.config/rouse/rouse.yaml if it exists, else the embedded default)")
	pf.StringVar(&g.data, "data", "", "data directory (env ROUSE_DATA; default ~/.local/share/rouse)")
	pf.StringVar(&g.listen, "listen", "", "API address (env ROUSE_LISTEN; default from config, 127.0.0.1:8000)")
	root.AddCommand(
		newRunCmd(g),
		newStatusCmd(g),
		newActionCmd(g, "start", "Start a component (and keep it active across wakes and restarts)"),
		newActionCmd(g, "stop", "Stop a component (it stays stopped across wakes and restarts)"),
		newActionCmd(g, "restart", "Restart a component"),
		newWakeCmd(g),
		newConfigCmd(g),
		newVersionCmd(),
	)
	for _, c := range extraCommands(g) {
		root.AddCommand(c)
	}
	return root
}

// extraCommands is where further command files add themselves.
var extraCommandFuncs []func(*globals) *cobra.Command

func extraCommands(g *globals) []*cobra.Command {
	var cs []*cobra.Command
	for _, f := range extraCommandFuncs {
		cs = append(cs, f(g))
	}
	return cs
}

// configPath resolves the config file: flag, env, the user's file if it
// exists; "" means the embedded default.
func (g *globals) configPath() string {
	if g.config != "" {
		return g.config
	}
	if p := os.Getenv("ROUSE_CONFIG"); p != "" {
		return p
	}
	if dir, err := os.UserConfigDir(); err == nil {
		p := filepath.Join(dir, "rouse", "rouse.yaml")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// dataDir resolves the data directory: flag, env, config, XDG.
func (g *globals) dataDir(fromConfig string) string {
	if g.data != "" {
		return g.data
	}
	if p := os.Getenv("ROUSE_DATA"); p != "" {
		return p
	}
	if fromConfig != "" {
		return fromConfig
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "rouse")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "rouse")
	}
	return filepath.Join(home, ".local", "share", "rouse")
}

// listenAddr resolves the API address: flag, env, config.
func (g *globals) listenAddr(fromConfig string) string {
	if g.listen != "" {
		return g.listen
	}
	if p := os.Getenv("ROUSE_LISTEN"); p != "" {
		return p
	}
	return fromConfig
}
