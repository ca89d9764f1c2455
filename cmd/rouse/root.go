package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/client"
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
	root.Args = cobra.ArbitraryArgs // groupRunE says what an unknown command is
	root.RunE = groupRunE
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", "", "config file (env ROUSE_CONFIG; default ~/.config/rouse/rouse.yaml if it exists, else the embedded default)")
	pf.StringVar(&g.data, "data", "", "data directory (env ROUSE_DATA; default ~/.local/share/rouse)")
	pf.StringVar(&g.listen, "listen", "", "API address (env ROUSE_LISTEN; default from config, 127.0.0.1:8000)")
	// Every command, in one place.
	root.AddCommand(
		newRunCmd(g),
		newStatusCmd(g),
		newActionCmd(g, "start", "Start a component (and keep it active across wakes and restarts)"),
		newActionCmd(g, "stop", "Stop a component (it stays stopped across wakes and restarts)"),
		newActionCmd(g, "restart", "Restart a component"),
		newWakeCmd(g),
		newOpenCmd(g),
		newTrayCmd(g),
		newConfigCmd(g),
		newDoctorCmd(g),
		newInstallCmd(g),
		newUninstallCmd(g),
		newServiceCmd(g),
		newCompletionCmd(g),
		newVersionCmd(),
	)
	usageArgs(root)
	agentHint(root)
	return root
}

// agentHint adds, once, what to do to every error that says no agent
// answers.
func agentHint(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		agentHint(c)
	}
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			if client.IsNoAgent(err) {
				return fmt.Errorf("%w; start it with \"rouse run\" (or \"rouse service start\" once installed), or give --listen and --data of the agent you mean", err)
			}
			return err
		}
	}
}

// usageArgs makes every argument error of cmd and its subcommands a usage
// error (exit 2): cobra's own validators return plain errors, and a group
// command (rouse, rouse config, rouse service) given an unknown
// subcommand would otherwise print its help and exit 0.
func usageArgs(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		usageArgs(c)
	}
	if cmd.HasSubCommands() && cmd.RunE == nil && cmd.Run == nil {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = groupRunE
	}
	if v := cmd.Args; v != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := v(c, args); err != nil {
				var ue usageError
				if errors.As(err, &ue) {
					return err
				}
				return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
			}
			return nil
		}
	}
}

// groupRunE runs a command that only groups others: alone it prints its
// help; with an argument that names no subcommand it is bad usage.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on its own path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usagef("%s (see %s --help)", msg, cmd.CommandPath())
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

// dataDir resolves the data directory: flag, env, config, XDG
// (client.DataDir).
func (g *globals) dataDir(fromConfig string) (string, error) {
	return client.DataDir(g.data, fromConfig)
}

// listenAddr resolves the API address: flag, env, config, default
// (client.Listen).
func (g *globals) listenAddr(fromConfig string) string {
	return client.Listen(g.listen, fromConfig)
}
