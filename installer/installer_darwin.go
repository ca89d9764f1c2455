package installer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kardianos/service"
)

// checkFlavour makes every macOS install a user LaunchAgent: rouse follows
// the user's session, and a LaunchDaemon would run with no user's config.
func checkFlavour(o *Options) error {
	o.User = true
	return nil
}

func checkPlatform(s service.System) error {
	if s == nil {
		return fmt.Errorf("no service manager found (launchd expected)")
	}
	return nil
}

// LogDir is where the LaunchAgent's output goes: ~/Library/Logs/rouse.
func LogDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find your home directory: %w", err)
	}
	return filepath.Join(home, "Library", "Logs", "rouse"), nil
}

func configure(o Options, c *service.Config) error {
	dir, err := LogDir()
	if err != nil {
		return err
	}
	c.Arguments = UserArguments
	c.Option["LaunchdConfig"] = LaunchdPlist
	c.Option["LogDirectory"] = dir
	c.Option["KeepAlive"] = true
	c.Option["RunAtLoad"] = true
	return nil
}

func serviceFile(Options) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find your home directory: %w", err)
	}
	return filepath.Join(home, "Library", "LaunchAgents", Name+".plist"), nil
}

func preflight(Options) error { return nil }

// prepare creates the log directory launchd writes into: launchd does not.
func prepare(Options) error {
	dir, err := LogDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create the log directory: %w", err)
	}
	return nil
}

func hints(_ Options, w io.Writer) {
	if dir, err := LogDir(); err == nil {
		fmt.Fprintf(w, "logs: %s\n", dir)
	}
}
