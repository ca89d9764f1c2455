package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/installer"
	"github.com/rouse-dev/rouse/internal/fakelogind"
	"github.com/rouse-dev/rouse/internal/testbus"
	"github.com/rouse-dev/rouse/wire"
)

// guard bounds the waits of these tests; it only catches a hang.
const guard = 30 * time.Second

func newTestDoctor(t *testing.T) *doctor {
	t.Helper()
	return &doctor{
		dataDir: t.TempDir(),
		timeout: 10 * time.Second, // generous: a guard, not a speed check
		budget:  3 * time.Second,
		logind:  true,
		service: func(bool) (string, installer.State, error) { return "", installer.NotInstalled, nil },
	}
}

func wantLevel(t *testing.T, f finding, want level, msgHas ...string) {
	t.Helper()
	if f.level != want {
		t.Errorf("%s: %s %q (fix %q), want %s", f.name, f.level, f.msg, f.fix, want)
	}
	for _, s := range msgHas {
		if !strings.Contains(f.msg+" "+f.fix, s) {
			t.Errorf("%s: %q (fix %q) does not mention %q", f.name, f.msg, f.fix, s)
		}
	}
	if f.level != levelOK && f.fix == "" && f.name != "tray" {
		t.Errorf("%s: %s without a fix", f.name, f.level)
	}
}

func TestDoctorLogind(t *testing.T) {
	t.Run("A fake logind grants the delay lock and doctor releases it at once", func(t *testing.T) {
		addr := testbus.Start(t)
		l := fakelogind.Start(t, addr)
		d := newTestDoctor(t)
		d.systemBus = addr
		wantLevel(t, d.checkLogind(context.Background()), levelOK, "delay lock allowed", "5s")
		if n := l.Inhibits(); n != 1 {
			t.Errorf("doctor took %d locks, want 1", n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := l.WaitLockReleased(ctx); err != nil {
			t.Errorf("the lock doctor took is still held: %v", err)
		}
	})
	t.Run("A delay limit below the pre-sleep budget is a warning", func(t *testing.T) {
		addr := testbus.Start(t)
		l := fakelogind.Start(t, addr)
		l.SetInhibitDelayMax(time.Second)
		d := newTestDoctor(t)
		d.systemBus = addr
		wantLevel(t, d.checkLogind(context.Background()), levelWarn, "1s", "InhibitDelayMaxSec")
	})
	t.Run("A sleep in progress is a warning", func(t *testing.T) {
		addr := testbus.Start(t)
		l := fakelogind.Start(t, addr)
		if err := l.PrepareForSleep(true); err != nil {
			t.Fatal(err)
		}
		d := newTestDoctor(t)
		d.systemBus = addr
		wantLevel(t, d.checkLogind(context.Background()), levelWarn, "sleep is in progress")
	})
	t.Run("A bus without logind fails", func(t *testing.T) {
		d := newTestDoctor(t)
		d.systemBus = testbus.Start(t)
		wantLevel(t, d.checkLogind(context.Background()), levelFail, "logind is not on the system bus")
	})
	t.Run("An unreachable system bus fails", func(t *testing.T) {
		d := newTestDoctor(t)
		d.systemBus = "unix:path=" + filepath.Join(t.TempDir(), "no-bus")
		wantLevel(t, d.checkLogind(context.Background()), levelFail, "cannot reach the system bus")
	})
	t.Run("Another OS does not use logind", func(t *testing.T) {
		d := newTestDoctor(t)
		d.logind = false
		wantLevel(t, d.checkLogind(context.Background()), levelOK, "not used")
	})
}

func TestDoctorFiles(t *testing.T) {
	writeToken := func(t *testing.T, dir string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, "api-token")
		if err := os.WriteFile(p, []byte(testToken), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	t.Run("A private data dir and token are ok", func(t *testing.T) {
		d := newTestDoctor(t)
		os.Chmod(d.dataDir, 0o700)
		writeToken(t, d.dataDir, 0o600)
		wantLevel(t, d.checkDataDir(), levelOK)
		wantLevel(t, d.checkToken(), levelOK)
	})
	t.Run("A token others can read fails", func(t *testing.T) {
		d := newTestDoctor(t)
		writeToken(t, d.dataDir, 0o644)
		wantLevel(t, d.checkToken(), levelFail, "0644", "chmod 600")
	})
	t.Run("A data dir others can read fails as the agent refuses it", func(t *testing.T) {
		d := newTestDoctor(t)
		os.Chmod(d.dataDir, 0o755)
		wantLevel(t, d.checkDataDir(), levelFail, "0755", "chmod 700")
	})
	t.Run("A missing data dir and token are warnings", func(t *testing.T) {
		d := newTestDoctor(t)
		d.dataDir = filepath.Join(d.dataDir, "not-yet")
		wantLevel(t, d.checkDataDir(), levelWarn, "does not exist yet")
		wantLevel(t, d.checkToken(), levelWarn, "no API token")
	})
	t.Run("A data dir that is a file fails", func(t *testing.T) {
		d := newTestDoctor(t)
		p := filepath.Join(d.dataDir, "file")
		os.WriteFile(p, nil, 0o600)
		d.dataDir = p
		wantLevel(t, d.checkDataDir(), levelFail, "not a directory")
	})
	t.Run("A config writable by others fails", func(t *testing.T) {
		d := newTestDoctor(t)
		d.configPath = filepath.Join(t.TempDir(), "rouse.yaml")
		os.WriteFile(d.configPath, []byte("trackers: []\n"), 0o600)
		os.Chmod(d.configPath, 0o666)
		wantLevel(t, d.checkConfig(), levelFail, "writable by group and others", "chmod go-w")
	})
	t.Run("An invalid config fails naming its line", func(t *testing.T) {
		d := newTestDoctor(t)
		d.configPath = filepath.Join(t.TempDir(), "rouse.yaml")
		os.WriteFile(d.configPath, []byte("trackers:\n  - name: x\n    kind: nosuchkind\n"), 0o600)
		f := d.checkConfig()
		wantLevel(t, f, levelFail, "rouse.yaml:3", "rouse config check")
		if d.cfg != nil {
			t.Error("an invalid config was kept")
		}
	})
	t.Run("A valid config is ok", func(t *testing.T) {
		d := newTestDoctor(t)
		d.configPath = filepath.Join(t.TempDir(), "rouse.yaml")
		os.WriteFile(d.configPath, []byte("trackers:\n  - name: t\n    kind: exec\n    command: [sleep, '1000']\n"), 0o600)
		wantLevel(t, d.checkConfig(), levelOK, "valid (1 tracker, 0 jobs)")
	})
	t.Run("A missing config file fails", func(t *testing.T) {
		d := newTestDoctor(t)
		d.configPath = filepath.Join(t.TempDir(), "none.yaml")
		wantLevel(t, d.checkConfig(), levelFail, "none.yaml")
	})
	t.Run("No config file means the embedded default", func(t *testing.T) {
		d := newTestDoctor(t)
		wantLevel(t, d.checkConfig(), levelOK, "embedded default")
		if d.cfg == nil {
			t.Error("the default config was not kept")
		}
	})
}

func TestDoctorPortAndAgent(t *testing.T) {
	t.Run("A free port is ok and the agent is not running", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		d := newTestDoctor(t)
		d.listen = addr
		f, rouse := d.checkPort(context.Background())
		wantLevel(t, f, levelOK, "is free")
		if rouse {
			t.Error("a free port reported as rouse")
		}
		wantLevel(t, d.checkAgent(context.Background(), rouse), levelWarn, "not running", "rouse run")
	})
	t.Run("A port held by another program fails", func(t *testing.T) {
		other := httptest.NewServer(http.NotFoundHandler())
		defer other.Close()
		d := newTestDoctor(t)
		d.listen = other.Listener.Addr().String()
		f, rouse := d.checkPort(context.Background())
		wantLevel(t, f, levelFail, "another program", "--listen")
		if rouse {
			t.Error("another program reported as rouse")
		}
	})
	t.Run("A port held by rouse is ok and the agent answers", func(t *testing.T) {
		addr, data, _ := startAPI(t, nil)
		d := newTestDoctor(t)
		d.listen, d.dataDir = addr, data
		f, rouse := d.checkPort(context.Background())
		wantLevel(t, f, levelOK, "held by rouse test")
		wantLevel(t, d.checkAgent(context.Background(), rouse), levelOK, "answering: ok")
	})
	t.Run("An agent without its sleep delay lock is a warning naming why", func(t *testing.T) {
		addr, data, _ := startAPI(t, &apitest.Backend{HealthFunc: func(context.Context) wire.Health {
			return wire.Health{Status: wire.StatusOK, Store: wire.StoreHealth{State: "open"},
				Power: &wire.Power{Sources: []string{"logind", "clock"}, Logind: true, LockError: "take the sleep delay lock: Permission denied"}}
		}})
		d := newTestDoctor(t)
		d.listen, d.dataDir = addr, data
		wantLevel(t, d.checkAgent(context.Background(), true), levelWarn, "no sleep delay lock", "Permission denied")
	})
	t.Run("An agent that refuses our token fails", func(t *testing.T) {
		addr, _, _ := startAPI(t, nil)
		d := newTestDoctor(t)
		d.listen = addr
		os.WriteFile(filepath.Join(d.dataDir, "api-token"), []byte("wrong"), 0o600)
		wantLevel(t, d.checkAgent(context.Background(), true), levelFail, "refuses our token")
	})
}

func TestDoctorTray(t *testing.T) {
	t.Run("No session bus is a warning", func(t *testing.T) {
		d := newTestDoctor(t)
		wantLevel(t, d.checkTray(context.Background()), levelWarn, "no session bus")
	})
	t.Run("A session bus without a tray host is a warning", func(t *testing.T) {
		d := newTestDoctor(t)
		d.sessionBus = testbus.Start(t)
		wantLevel(t, d.checkTray(context.Background()), levelWarn, "no tray host", "AppIndicator")
	})
	t.Run("A tray host on the session bus is ok", func(t *testing.T) {
		addr := testbus.Start(t)
		host, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		if r, err := host.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("own the watcher name: %v %v", r, err)
		}
		d := newTestDoctor(t)
		d.sessionBus = addr
		wantLevel(t, d.checkTray(context.Background()), levelOK, "tray host")
	})
}

func TestDoctorNetwork(t *testing.T) {
	t.Run("Online is ok and says why", func(t *testing.T) {
		d := newTestDoctor(t)
		d.netProbe = func() (bool, string) { return true, "default route via test0" }
		wantLevel(t, d.checkNetwork(context.Background()), levelOK, "online: default route via test0")
	})
	t.Run("Offline is a warning", func(t *testing.T) {
		d := newTestDoctor(t)
		d.netProbe = func() (bool, string) { return false, "no default route" }
		wantLevel(t, d.checkNetwork(context.Background()), levelWarn, "offline: no default route")
	})
}

func TestDoctorService(t *testing.T) {
	cases := []struct {
		name string
		user installer.State
		sys  installer.State
		err  error
		want level
		has  string
	}{
		{"A running user service is ok", installer.Running, installer.NotInstalled, nil, levelOK, "user service installed (/u/rouse.service) and running"},
		{"A running system service is ok", installer.NotInstalled, installer.Running, nil, levelOK, "system service installed"},
		{"A stopped service is a warning", installer.Stopped, installer.NotInstalled, nil, levelWarn, "rouse service start"},
		{"A failed service fails", installer.Failed, installer.NotInstalled, nil, levelFail, "journalctl --user -u rouse"},
		{"No service is a warning", installer.NotInstalled, installer.NotInstalled, nil, levelWarn, "rouse install --user"},
		{"An unusable service manager is a warning", installer.NotInstalled, installer.NotInstalled, errors.New("no systemd"), levelWarn, "no systemd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDoctor(t)
			d.service = func(user bool) (string, installer.State, error) {
				if c.err != nil {
					return "", installer.NotInstalled, c.err
				}
				if user {
					return "/u/rouse.service", c.user, nil
				}
				return "/s/rouse.service", c.sys, nil
			}
			wantLevel(t, d.checkService(), c.want, c.has)
		})
	}
}

// The whole command: one line per check, and exit 1 when one fails.
func TestDoctorCommand(t *testing.T) {
	addr := testbus.Start(t)
	fakelogind.Start(t, addr)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	apiAddr, data, _ := startAPI(t, nil)

	t.Run("Every check prints one line and a passing run exits 0 or only warns", func(t *testing.T) {
		out, code := runCLI(t, "doctor", "--data", data, "--listen", apiAddr)
		for _, name := range []string{"config", "data dir", "token", "port", "agent", "logind", "tray", "network", "service"} {
			if !strings.Contains(out, "  "+name+" ") {
				t.Errorf("no line for %s in:\n%s", name, out)
			}
		}
		if !strings.Contains(out, "ok    logind") || !strings.Contains(out, "ok    agent") {
			t.Errorf("logind and agent should be ok:\n%s", out)
		}
		// The network watch or the service manager may be missing here; a
		// failure must come from one of them, not from what this test set up.
		if code != 0 && !strings.Contains(out, "fail  network") && !strings.Contains(out, "fail  service") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("A failing check exits 1 and prints its fix", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "rouse.yaml")
		os.WriteFile(cfg, []byte("listen: [\n"), 0o600)
		out, code := runCLI(t, "doctor", "--config", cfg, "--data", data, "--listen", apiAddr)
		if code != 1 {
			t.Errorf("exit %d, want 1:\n%s", code, out)
		}
		if !strings.Contains(out, "fail  config") || !strings.Contains(out, "fix: see every error with: rouse config check") {
			t.Errorf("no config failure with its fix:\n%s", out)
		}
	})
}
