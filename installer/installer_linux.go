package installer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kardianos/service"
)

// SystemConfig is the config file of the system service.
const SystemConfig = "/etc/rouse/rouse.yaml"

func checkFlavour(*Options) error { return nil }

// checkPlatform refuses init systems other than systemd: the units are
// what makes rouse behave (notify, watchdog, restart), and user services
// exist only there.
func checkPlatform(s service.System) error {
	if s == nil || s.String() != "linux-systemd" {
		name := "none"
		if s != nil {
			name = s.String()
		}
		return fmt.Errorf("rouse installs itself only under systemd (found: %s); run \"rouse run\" from your init system instead", name)
	}
	return nil
}

func configure(o Options, c *service.Config) error {
	if o.User {
		c.Arguments = UserArguments
		c.Option["SystemdScript"] = UserUnit
	} else {
		c.Arguments = SystemArguments
		c.Option["SystemdScript"] = SystemUnit
	}
	return nil
}

// serviceFile is where kardianos writes the unit: ~/.config/systemd/user
// (from $HOME, as the library computes it) or /etc/systemd/system.
func serviceFile(o Options) (string, error) {
	if !o.User {
		return "/etc/systemd/system/" + Name + ".service", nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find your home directory: %w", err)
	}
	return filepath.Join(home, ".config", "systemd", "user", Name+".service"), nil
}

// preflight checks what systemctl needs before anything is changed.
func preflight(o Options) error {
	if !o.User {
		if os.Geteuid() != 0 {
			return errors.New(`installing the system service needs root: run it with sudo, or install a user service with "rouse install --user"`)
		}
		return nil
	}
	return userBus()
}

// userBus makes sure systemctl --user can reach the user manager: it needs
// XDG_RUNTIME_DIR, which su and some ssh setups do not set.
func userBus() error {
	if os.Getenv("XDG_RUNTIME_DIR") != "" {
		return nil
	}
	dir := "/run/user/" + strconv.Itoa(os.Getuid())
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return os.Setenv("XDG_RUNTIME_DIR", dir)
	}
	return errors.New("systemctl --user needs a login session (XDG_RUNTIME_DIR is unset and " + dir + " is missing): log in as this user (not with su), or install the system service with sudo")
}

// prepare creates what the unit expects before it is installed: the system
// service reads /etc/rouse/rouse.yaml, so a missing one is seeded with the
// default config (never overwritten).
func prepare(o Options) error {
	if o.User {
		return nil
	}
	return seedConfig(SystemConfig)
}

// hints tells a user-service installer about lingering: without it the
// user manager, and rouse with it, runs only while the user is logged in.
func hints(o Options, w io.Writer) {
	if !o.User {
		return
	}
	if lingering() {
		return
	}
	user := os.Getenv("USER")
	if user == "" {
		user = strconv.Itoa(os.Getuid())
	}
	fmt.Fprintf(w, "note: rouse runs while you are logged in. To keep it running after logout and start it at boot, run:\n  loginctl enable-linger %s\n", user)
}

// lingering reports whether loginctl says this user lingers; unknown (no
// loginctl, no logind) counts as lingering: no hint we cannot back up.
func lingering() bool {
	out, err := exec.Command("loginctl", "show-user", strconv.Itoa(os.Getuid()), "--property=Linger", "--value").Output()
	if err != nil {
		return true
	}
	v := strings.TrimSpace(string(bytes.TrimPrefix(out, []byte("Linger="))))
	return v != "no"
}
