package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystemctl answers like systemctl for one user unit and records every
// call; loginctl says the user does not linger.
const fakeSystemctl = `#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_LOG"
unit="$HOME/.config/systemd/user/rouse.service"
case "$1" in
is-active) s=$(cat "$FAKE_STATE" 2>/dev/null || echo inactive); echo "$s"; [ "$s" = active ] || exit 3 ;;
list-unit-files) [ -f "$unit" ] && echo "rouse.service enabled enabled" ;;
start|restart) echo active > "$FAKE_STATE" ;;
stop) echo inactive > "$FAKE_STATE" ;;
esac
exit 0
`

func TestServiceCommands(t *testing.T) {
	dir := t.TempDir()
	bin, home := filepath.Join(dir, "bin"), filepath.Join(dir, "home")
	for _, d := range []string{bin, home, filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{"systemctl": fakeSystemctl, "loginctl": "#!/bin/sh\necho no\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	t.Setenv("FAKE_LOG", filepath.Join(dir, "log"))
	t.Setenv("FAKE_STATE", filepath.Join(dir, "state"))
	unit := filepath.Join(home, ".config", "systemd", "user", "rouse.service")
	force := "--service-manager=linux-systemd"

	t.Run("StatusOfNothingInstalledExitsOne", func(t *testing.T) {
		out, code := runCLI(t, "service", "status", "--user", force)
		if code != 1 || !strings.Contains(out, "not installed") {
			t.Fatalf("exit %d, output %q", code, out)
		}
	})
	t.Run("InstallUserWritesTheUnitStartsItAndMentionsLinger", func(t *testing.T) {
		out, code := runCLI(t, "install", "--user", force)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		b, err := os.ReadFile(unit)
		if err != nil || !strings.Contains(string(b), "WantedBy=default.target") || !strings.Contains(string(b), "Type=notify") {
			t.Fatalf("unit %q, %v", b, err)
		}
		if !strings.Contains(out, "rouse started") || !strings.Contains(out, "loginctl enable-linger") {
			t.Fatalf("install said %q", out)
		}
	})
	t.Run("StatusOfARunningServiceExitsZero", func(t *testing.T) {
		out, code := runCLI(t, "service", "status", "--user", force)
		if code != 0 || !strings.Contains(out, "running") {
			t.Fatalf("exit %d, output %q", code, out)
		}
	})
	t.Run("StopThenStatusSaysStopped", func(t *testing.T) {
		if out, code := runCLI(t, "service", "stop", "--user", force); code != 0 {
			t.Fatalf("stop: exit %d: %s", code, out)
		}
		out, code := runCLI(t, "service", "status", "--user", force)
		if code != 1 || !strings.Contains(out, "stopped") {
			t.Fatalf("exit %d, output %q", code, out)
		}
	})
	t.Run("UninstallRemovesTheUnit", func(t *testing.T) {
		if out, code := runCLI(t, "uninstall", "--user", force); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if _, err := os.Stat(unit); !os.IsNotExist(err) {
			t.Fatalf("unit still there: %v", err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		for _, want := range []string{"enable --user rouse.service", "daemon-reload --user", "disable --user rouse.service"} {
			if !strings.Contains(string(b), want+"\n") {
				t.Errorf("systemctl %q not called; log:\n%s", want, b)
			}
		}
	})
	t.Run("StartWithNothingInstalledSaysWhatToDo", func(t *testing.T) {
		out, code := runCLI(t, "service", "start", "--user", force)
		if code != 1 || !strings.Contains(out, "rouse install --user") {
			t.Fatalf("exit %d, output %q", code, out)
		}
	})
}
