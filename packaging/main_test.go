package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/agent/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testVersion = "1.2.3"

// TestDebianPackage builds the .deb once and checks it: metadata, files,
// conffiles, the packed units and config, the maintainer scripts (run
// against a fake systemctl in a throwaway root), and a real dpkg install
// and purge in a throwaway root (as root).
func TestDebianPackage(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/test-deps.sh installs dpkg): %v", tool, err)
		}
	}
	pkg, err := Build(Options{Version: "v" + testVersion, Arch: runtime.GOARCH, Out: t.TempDir(), Maintainer: "test <test@example.org>"})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if want := "rouse_" + testVersion + "_" + runtime.GOARCH + ".deb"; filepath.Base(pkg) != want {
		t.Fatalf("package file = %s, want %s", filepath.Base(pkg), want)
	}
	tree := t.TempDir()
	run(t, "dpkg-deb", "-x", pkg, tree)
	control := t.TempDir()
	run(t, "dpkg-deb", "-e", pkg, control)

	t.Run("ControlFieldsNameVersionAndArchitecture", func(t *testing.T) {
		out := run(t, "dpkg-deb", "-f", pkg, "Package", "Version", "Architecture")
		for _, want := range []string{"Package: rouse", "Version: " + testVersion, "Architecture: " + runtime.GOARCH} {
			if !strings.Contains(out, want) {
				t.Errorf("control lacks %q:\n%s", want, out)
			}
		}
		info := run(t, "dpkg-deb", "--info", pkg)
		for _, want := range []string{"conffiles", "postinst", "prerm", "postrm"} {
			if !strings.Contains(info, want) {
				t.Errorf("--info lists no %s:\n%s", want, info)
			}
		}
	})
	t.Run("ContentsAreTheBinaryConfigAndBothUnits", func(t *testing.T) {
		out := run(t, "dpkg-deb", "--contents", pkg)
		for path, mode := range map[string]string{
			"./usr/bin/rouse":                      "-rwxr-xr-x",
			"./etc/rouse/rouse.yaml":               "-rw-r--r--",
			"./lib/systemd/system/rouse.service":   "-rw-r--r--",
			"./usr/lib/systemd/user/rouse.service": "-rw-r--r--",
		} {
			if !hasEntry(out, path, mode) {
				t.Errorf("no %s %s in:\n%s", mode, path, out)
			}
		}
	})
	t.Run("TheConfigIsAConffileWithTheDefaultContent", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(control, "conffiles"))
		if err != nil || !slices.Contains(strings.Fields(string(b)), "/etc/rouse/rouse.yaml") {
			t.Fatalf("conffiles = %q, %v", b, err)
		}
		got, err := os.ReadFile(filepath.Join(tree, "etc/rouse/rouse.yaml"))
		if err != nil || string(got) != string(config.DefaultYAML) {
			t.Fatalf("packed config differs from config.DefaultYAML (%v)", err)
		}
	})
	t.Run("UnitsAreTheInstallersUnitsForUsrBin", func(t *testing.T) {
		system, user, err := Units()
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]string{"lib/systemd/system/rouse.service": system, "usr/lib/systemd/user/rouse.service": user} {
			got, err := os.ReadFile(filepath.Join(tree, path))
			if err != nil || string(got) != want {
				t.Errorf("%s differs from the installer's unit (%v):\n%s", path, err, got)
			}
		}
		if !strings.Contains(system, `ExecStart=/usr/bin/rouse "run" "--config" "/etc/rouse/rouse.yaml" "--data" "/var/lib/rouse"`) ||
			!strings.Contains(user, "ExecStart=/usr/bin/rouse \"run\"\n") {
			t.Errorf("ExecStart lines are not for /usr/bin/rouse:\n%s\n%s", system, user)
		}
	})
	t.Run("ThePackedBinaryCarriesTheVersion", func(t *testing.T) {
		out := run(t, filepath.Join(tree, "usr/bin/rouse"), "version")
		if !strings.Contains(out, testVersion) {
			t.Fatalf("rouse version = %q, want %s in it", out, testVersion)
		}
	})
	t.Run("MaintainerScriptsAreValidShell", func(t *testing.T) {
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			run(t, "sh", "-n", filepath.Join(control, s))
		}
	})
	testScripts(t, control)
	testDpkg(t, pkg)
}

// testScripts runs the packed maintainer scripts in a throwaway root
// (DPKG_ROOT) with a fake systemctl that records its calls.
func testScripts(t *testing.T, control string) {
	script := func(name string) string { return filepath.Join(control, name) }
	setup := func(t *testing.T, active, enabled bool) (root string, calls func() []string) {
		dir := t.TempDir()
		root = filepath.Join(dir, "root")
		if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "bin")
		log := filepath.Join(dir, "calls")
		code := func(b bool) string {
			if b {
				return "0"
			}
			return "3"
		}
		fake := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + log + "\n" +
			"case \"$*\" in\n*is-active*) exit " + code(active) + " ;;\n*is-enabled*) exit " + code(enabled) + " ;;\nesac\nexit 0\n"
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		t.Setenv("DPKG_ROOT", root)
		return root, func() []string {
			b, _ := os.ReadFile(log)
			_ = os.Remove(log)
			return strings.Split(strings.TrimSpace(string(b)), "\n")
		}
	}
	t.Run("PostinstCreatesTheDataDirAndStartsNothing", func(t *testing.T) {
		root, calls := setup(t, false, false)
		run(t, "sh", script("postinst"), "configure")
		st, err := os.Stat(filepath.Join(root, "var/lib/rouse"))
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
			t.Fatalf("data dir: %v, %v", st, err)
		}
		got := calls()
		if !slices.Equal(got, []string{"daemon-reload", "try-restart rouse.service"}) {
			t.Fatalf("systemctl calls = %q, want only daemon-reload and try-restart", got)
		}
	})
	t.Run("PrermOnRemoveStopsAndDisablesWhatIsEnabled", func(t *testing.T) {
		_, calls := setup(t, true, true)
		run(t, "sh", script("prerm"), "remove")
		got := calls()
		for _, want := range []string{"stop rouse.service", "disable rouse.service", "--global disable rouse.service"} {
			if !slices.Contains(got, want) {
				t.Errorf("systemctl %q not called; calls %q", want, got)
			}
		}
	})
	t.Run("PrermOnRemoveLeavesAStoppedDisabledServiceAlone", func(t *testing.T) {
		_, calls := setup(t, false, false)
		run(t, "sh", script("prerm"), "remove")
		for _, c := range calls() {
			if strings.HasPrefix(c, "stop") || strings.Contains(c, "disable") {
				t.Errorf("unexpected systemctl %q", c)
			}
		}
	})
	t.Run("PrermOnUpgradeTouchesNothing", func(t *testing.T) {
		_, calls := setup(t, true, true)
		run(t, "sh", script("prerm"), "upgrade", "1.2.4")
		if got := calls(); len(got) != 1 || got[0] != "" {
			t.Fatalf("systemctl calls on upgrade = %q, want none", got)
		}
	})
	t.Run("PostrmPurgeDeletesTheDataDirRemoveKeepsIt", func(t *testing.T) {
		root, _ := setup(t, false, false)
		data := filepath.Join(root, "var/lib/rouse")
		if err := os.MkdirAll(data, 0o750); err != nil {
			t.Fatal(err)
		}
		run(t, "sh", script("postrm"), "remove")
		if _, err := os.Stat(data); err != nil {
			t.Fatalf("remove deleted the data dir: %v", err)
		}
		run(t, "sh", script("postrm"), "purge")
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("purge left the data dir: %v", err)
		}
	})
}

func hasEntry(listing, path, mode string) bool {
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && f[0] == mode && f[len(f)-1] == path {
			return true
		}
	}
	return false
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
