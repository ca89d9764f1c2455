package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rouse-dev/rouse/installer"
)

// serviceFlags are the flags every service command shares.
type serviceFlags struct {
	user   bool
	system string
}

func (f *serviceFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.user, "user", false, "the per-user service (systemd --user; always on macOS) instead of the system service")
	cmd.Flags().StringVar(&f.system, "service-manager", "", "force a service manager backend (e.g. linux-systemd) when detection fails, as in containers")
	_ = cmd.Flags().MarkHidden("service-manager")
}

// refuseGlobals says that the service commands do not take --config,
// --data or --listen, rather than ignore them: the service runs "rouse
// run" with the standard paths.
func refuseGlobals(g *globals, cmd *cobra.Command) error {
	if g.config == "" && g.data == "" && g.listen == "" {
		return nil
	}
	return usagef("%s does not take --config, --data or --listen: the service runs with the standard paths (~/.config/rouse/rouse.yaml and ~/.local/share/rouse for --user, /etc/rouse/rouse.yaml and /var/lib/rouse for the system); set listen and data in that config file", cmd.CommandPath())
}

func (f *serviceFlags) installer(cmd *cobra.Command, noStart bool) (*installer.Installer, error) {
	return installer.New(installer.Options{
		User: f.user, NoStart: noStart, System: f.system, Out: cmd.OutOrStdout(),
	})
}

func newInstallCmd(g *globals) *cobra.Command {
	var f serviceFlags
	var noStart bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install rouse as a service and start it (again: update the install)",
		Long: `Install this rouse binary as an operating-system service and start it.

  rouse install --user   a systemd user service (~/.config/systemd/user/rouse.service)
                         that runs "rouse run" with your config; on macOS a LaunchAgent
  sudo rouse install     the system service (/etc/systemd/system/rouse.service) running
                         "rouse run --config /etc/rouse/rouse.yaml --data /var/lib/rouse";
                         on Windows, from an elevated prompt, a Windows service

Running it again rewrites the service file and restarts the service.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := refuseGlobals(g, cmd); err != nil {
				return err
			}
			in, err := f.installer(cmd, noStart)
			if err != nil {
				return err
			}
			return in.Install()
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&noStart, "no-start", false, "install (or update) without starting the service")
	return cmd
}

func newUninstallCmd(g *globals) *cobra.Command {
	var f serviceFlags
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop and remove the rouse service (data and config stay)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := refuseGlobals(g, cmd); err != nil {
				return err
			}
			in, err := f.installer(cmd, false)
			if err != nil {
				return err
			}
			return in.Uninstall()
		},
	}
	f.add(cmd)
	return cmd
}

func newServiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Start, stop or query the installed rouse service",
	}
	action := func(name, short string, do func(*installer.Installer, *cobra.Command) error) *cobra.Command {
		var f serviceFlags
		c := &cobra.Command{
			Use:   name,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := refuseGlobals(g, cmd); err != nil {
					return err
				}
				in, err := f.installer(cmd, false)
				if err != nil {
					return err
				}
				return do(in, cmd)
			},
		}
		f.add(c)
		return c
	}
	cmd.AddCommand(
		action("start", "Start the installed service", func(in *installer.Installer, _ *cobra.Command) error { return in.Start() }),
		action("stop", "Stop the installed service", func(in *installer.Installer, _ *cobra.Command) error { return in.Stop() }),
		action("status", "Say whether the service is installed and running (exit 0 only when running)", func(in *installer.Installer, cmd *cobra.Command) error {
			st, err := in.Status()
			if err != nil {
				return err
			}
			where := in.File()
			if where == "" {
				where = in.Platform()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rouse %s: %s (%s)\n", in.Flavour(), st, where)
			if st != installer.Running {
				return codeError{1}
			}
			return nil
		}),
	)
	return cmd
}
