package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newCompletionCmd replaces cobra's default completion command (cobra adds
// its own only when none exists) with one whose help says how to install
// the script for each shell.
func newCompletionCmd(*globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script",
		Long: `Print the script that makes your shell complete rouse's commands, flags and
component names (component names are asked of the running agent).

Bash (needs the bash-completion package):
  rouse completion bash > ~/.local/share/bash-completion/completions/rouse

Zsh (the directory must be in $fpath, and compinit loaded in ~/.zshrc):
  rouse completion zsh > "${fpath[1]}/_rouse"

Fish:
  rouse completion fish > ~/.config/fish/completions/rouse.fish

PowerShell (add the line to your profile to keep it):
  rouse completion powershell | Out-String | Invoke-Expression

Open a new shell afterwards.`,
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)(cmd, args); err != nil {
				return usageError{fmt.Errorf("%w: want bash, zsh, fish or powershell", err)}
			}
			return nil
		},
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return usagef("unknown shell %q: want bash, zsh, fish or powershell", args[0]) // unreachable: Args checked it
		},
	}
	return cmd
}

// completeComponents completes a component name from the running agent;
// with no agent it completes nothing (and never prints an error into the
// shell).
func (g *globals) completeComponents(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := g.newClient()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	ss, err := c.Services(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range ss {
		if strings.HasPrefix(s.Name, prefix) {
			names = append(names, fmt.Sprintf("%s\t%s, %s", s.Name, s.Kind, s.State))
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
