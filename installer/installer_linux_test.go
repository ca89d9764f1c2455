package installer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystemctl records its argv, one call a line, and keeps the unit's
// active state in a file, answering is-active and list-unit-files as
// systemctl does. Like the real one, --user without XDG_RUNTIME_DIR fails.
const fakeSystemctl = `#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_LOG"
for a in "$@"; do
  if [ "$a" = --user ] && [ -z "$XDG_RUNTIME_DIR" ]; then
    echo "Failed to connect to bus: \$DBUS_SESSION_BUS_ADDRESS and \$XDG_RUNTIME_DIR not defined" >&2
    exit 1
  fi
done
unit="$HOME/.config/systemd/user/rouse.service"
case "$1" in
--version) echo "systemd 252 (252.38-1~deb12u1)"; echo "+PAM +AUDIT" ;;
is-active)
  s=$(cat "$FAKE_STATE" 2>/dev/null || echo inactive)
  echo "$s"
  [ "$s" = active ] || exit 3 ;;
list-unit-files)
  if [ -f "$unit" ]; then
    echo "UNIT FILE     STATE   PRESET"; echo "rouse.service enabled enabled"; echo; echo "1 unit files listed."
  else
    echo "0 unit files listed."; exit 1
  fi ;;
start|restart)
  [ -f "$unit" ] || { echo "Failed to start rouse.service: Unit rouse.service not found." >&2; exit 5; }
  echo active > "$FAKE_STATE" ;;
stop) echo inactive > "$FAKE_STATE" ;;
enable|disable|daemon-reload) ;;
*) echo "fake systemctl: unexpected $1" >&2; exit 1 ;;
esac
`

type fakeSystem struct {
	home, log, exe string
}

func newFakeSystem(t *testing.T, linger string) *fakeSystem {
	t.Helper()
	dir := t.TempDir()
	f := &fakeSystem{
		home: filepath.Join(dir, "home"),
		log:  filepath.Join(dir, "systemctl.log"),
		exe:  filepath.Join(dir, "opt", "rouse"),
	}
	bin := filepath.Join(dir, "bin")
	writeExe(t, filepath.Join(bin, "systemctl"), fakeSystemctl)
	writeExe(t, filepath.Join(bin, "loginctl"), "#!/bin/sh\necho "+linger+"\n")
	writeExe(t, f.exe, "#!/bin/sh\nexit 0\n")
	runtime := filepath.Join(dir, "runtime")
	for _, d := range []string{f.home, runtime} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("HOME", f.home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(f.home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	t.Setenv("FAKE_LOG", f.log)
	t.Setenv("FAKE_STATE", filepath.Join(dir, "state"))
	return f
}

// calls returns the systemctl calls since the last one, minus version
// probes.
func (f *fakeSystem) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.log); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" && l != "--version" {
			out = append(out, l)
		}
	}
	return out
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			t.Errorf("systemctl %q was not called; calls: %q", w, got)
		}
	}
}

func noCalls(t *testing.T, got []string, verbs ...string) {
	t.Helper()
	for _, g := range got {
		for _, v := range verbs {
			if strings.HasPrefix(g, v+" ") {
				t.Errorf("unexpected systemctl %q; calls: %q", g, got)
			}
		}
	}
}

func TestUserServiceOnSystemd(t *testing.T) {
	f := newFakeSystem(t, "no")
	var out bytes.Buffer
	in, err := New(Options{User: true, System: "linux-systemd", Executable: f.exe, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(f.home, ".config", "systemd", "user", "rouse.service")
	status := func(want State) {
		t.Helper()
		st, err := in.Status()
		if err != nil || st != want {
			t.Fatalf("Status = %v, %v; want %v", st, err, want)
		}
	}

	t.Run("NothingIsInstalledAtFirst", func(t *testing.T) {
		if in.File() != unit {
			t.Fatalf("File = %q, want %q", in.File(), unit)
		}
		status(NotInstalled)
		if err := in.Start(); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("Start = %v, want ErrNotInstalled", err)
		}
		f.calls(t)
	})
	t.Run("InstallWritesOurUnitEnablesAndStartsIt", func(t *testing.T) {
		if err := in.Install(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(unit)
		if err != nil {
			t.Fatalf("no unit file: %v", err)
		}
		want := mustRender(t, UserUnit, Values{Path: f.exe, Arguments: UserArguments})
		if string(got) != want {
			t.Fatalf("installed unit differs from Render:\n--- installed\n%s\n--- rendered\n%s", got, want)
		}
		wantCalls(t, f.calls(t), "enable --user rouse.service", "daemon-reload --user", "start --user rouse.service")
		if s := out.String(); !strings.Contains(s, "rouse installed as a user service") || !strings.Contains(s, "loginctl enable-linger") {
			t.Fatalf("install said %q; want the install line and the linger hint", s)
		}
		status(Running)
	})
	t.Run("StopAndStartGoThroughSystemctl", func(t *testing.T) {
		if err := in.Stop(); err != nil {
			t.Fatal(err)
		}
		status(Stopped)
		if err := in.Start(); err != nil {
			t.Fatal(err)
		}
		status(Running)
		wantCalls(t, f.calls(t), "stop --user rouse.service", "start --user rouse.service", "is-active rouse.service --user")
	})
	t.Run("InstallingAgainUpdatesTheUnitAndRestarts", func(t *testing.T) {
		if err := os.WriteFile(unit, []byte("[Service]\nExecStart=/old/rouse run\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := in.Install(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(unit)
		if !strings.Contains(string(got), "ExecStart="+f.exe+` "run"`) {
			t.Fatalf("unit not updated:\n%s", got)
		}
		wantCalls(t, f.calls(t), "stop --user rouse.service", "enable --user rouse.service", "daemon-reload --user", "start --user rouse.service")
		if !strings.Contains(out.String(), "rouse updated") {
			t.Fatalf("install said %q, want it to say updated", out.String())
		}
		status(Running)
	})
	t.Run("UninstallStopsDisablesAndRemovesTheUnit", func(t *testing.T) {
		if err := in.Uninstall(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(unit); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("unit still there: %v", err)
		}
		wantCalls(t, f.calls(t), "stop --user rouse.service", "disable --user rouse.service", "daemon-reload --user")
		status(NotInstalled)
	})
	t.Run("UninstallingTwiceIsANoOp", func(t *testing.T) {
		out.Reset()
		if err := in.Uninstall(); err != nil {
			t.Fatal(err)
		}
		noCalls(t, f.calls(t), "stop", "disable")
		if !strings.Contains(out.String(), "nothing to do") {
			t.Fatalf("uninstall said %q", out.String())
		}
	})
}

func TestUserServiceOptions(t *testing.T) {
	t.Run("NoStartInstallsWithoutStarting", func(t *testing.T) {
		f := newFakeSystem(t, "yes")
		var out bytes.Buffer
		in, err := New(Options{User: true, System: "linux-systemd", Executable: f.exe, NoStart: true, Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Install(); err != nil {
			t.Fatal(err)
		}
		calls := f.calls(t)
		wantCalls(t, calls, "enable --user rouse.service")
		noCalls(t, calls, "start", "restart")
		if st, _ := in.Status(); st != Stopped {
			t.Fatalf("Status = %v, want stopped", st)
		}
		if strings.Contains(out.String(), "enable-linger") {
			t.Fatalf("linger hint shown to a lingering user: %q", out.String())
		}
	})
	t.Run("AnUnknownServiceManagerIsRefused", func(t *testing.T) {
		_, err := New(Options{User: true, System: "no-such-init"})
		if err == nil || !strings.Contains(err.Error(), "linux-systemd") {
			t.Fatalf("New = %v, want an error listing the known managers", err)
		}
	})
	t.Run("ASymlinkedExecutableIsResolved", func(t *testing.T) {
		f := newFakeSystem(t, "yes")
		link := filepath.Join(t.TempDir(), "rouse-link")
		if err := os.Symlink(f.exe, link); err != nil {
			t.Fatal(err)
		}
		in, err := New(Options{User: true, System: "linux-systemd", Executable: link})
		if err != nil {
			t.Fatal(err)
		}
		if in.Executable() != f.exe {
			t.Fatalf("Executable = %q, want %q", in.Executable(), f.exe)
		}
	})
}

func TestSeedConfig(t *testing.T) {
	dir := t.TempDir()
	t.Run("AMissingConfigGetsTheDefault", func(t *testing.T) {
		p := filepath.Join(dir, "etc", "rouse", "rouse.yaml")
		if err := seedConfig(p); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			t.Fatalf("seeded config: %q, %v", b, err)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
			t.Fatalf("mode = %v, want 0644", st.Mode().Perm())
		}
	})
	t.Run("AnExistingConfigIsLeftAlone", func(t *testing.T) {
		p := filepath.Join(dir, "mine.yaml")
		if err := os.WriteFile(p, []byte("listen: 127.0.0.1:9000\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := seedConfig(p); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != "listen: 127.0.0.1:9000\n" {
			t.Fatalf("config overwritten: %q", b)
		}
	})
}
