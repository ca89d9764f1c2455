package client

import (
	"path/filepath"
	"testing"

	"github.com/rouse-dev/rouse/wire"
)

// TestPrecedence pins the one order in which the agent and every client
// resolve the data directory and the address: flag, environment, config,
// default.
func TestPrecedence(t *testing.T) {
	t.Run("DataDirFlagThenEnvThenConfigThenXDG", func(t *testing.T) {
		xdg := t.TempDir()
		t.Setenv("XDG_DATA_HOME", xdg)
		t.Setenv("ROUSE_DATA", "/env")
		for _, c := range []struct{ flag, config, want string }{
			{"/flag", "/config", "/flag"},
			{"", "/config", "/env"},
		} {
			if got, err := DataDir(c.flag, c.config); err != nil || got != c.want {
				t.Errorf("DataDir(%q, %q) = %q, %v; want %q", c.flag, c.config, got, err, c.want)
			}
		}
		t.Setenv("ROUSE_DATA", "")
		if got, err := DataDir("", "/config"); err != nil || got != "/config" {
			t.Errorf("without flag and env: %q, %v; want the config's", got, err)
		}
		if got, err := DataDir("", ""); err != nil || got != filepath.Join(xdg, "rouse") {
			t.Errorf("with nothing set: %q, %v; want $XDG_DATA_HOME/rouse", got, err)
		}
		t.Setenv("XDG_DATA_HOME", "")
		t.Setenv("HOME", "/home/u")
		if got, err := DataDir("", ""); err != nil || got != "/home/u/.local/share/rouse" {
			t.Errorf("without XDG_DATA_HOME: %q, %v; want ~/.local/share/rouse", got, err)
		}
	})
	t.Run("ListenFlagThenEnvThenConfigThenDefault", func(t *testing.T) {
		t.Setenv("ROUSE_LISTEN", "127.0.0.1:2")
		if got := Listen("127.0.0.1:1", "127.0.0.1:3"); got != "127.0.0.1:1" {
			t.Errorf("flag: %q", got)
		}
		if got := Listen("", "127.0.0.1:3"); got != "127.0.0.1:2" {
			t.Errorf("env: %q", got)
		}
		t.Setenv("ROUSE_LISTEN", "")
		if got := Listen("", "127.0.0.1:3"); got != "127.0.0.1:3" {
			t.Errorf("config: %q", got)
		}
		if got := Listen("", ""); got != wire.DefaultListen {
			t.Errorf("default: %q, want %s", got, wire.DefaultListen)
		}
	})
}
