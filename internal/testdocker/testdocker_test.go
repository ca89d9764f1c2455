//go:build linux

package testdocker

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// engines are the two engines every test here runs against.
var engines = []struct {
	name  string
	start func(testing.TB) *Engine
}{{"Docker", Start}, {"Podman", StartPodman}}

// TestCloseLeavesNothing runs each engine with a container that runs, is
// exec'd into and is killed (Podman's conmon then runs `podman container
// cleanup` on its own, outside the API service), closes the engine and
// watches for a while that nothing it made comes back: no process naming
// its directory, no mount under it, no directory.
func TestCloseLeavesNothing(t *testing.T) {
	for _, c := range engines {
		t.Run(c.name, func(t *testing.T) {
			e := c.start(t)
			killed := e.Create(Spec{Name: "tdclean-killed"})
			running := e.Create(Spec{Name: "tdclean-running"})
			e.docker(nil, "start", killed, running)
			e.Exec(running, "true")
			// HostPID names the container's process as this test sees it.
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", e.HostPID(running)))
			if got := strings.ReplaceAll(string(cmdline), "\x00", " "); err != nil || got != "sleep 100000 " {
				t.Errorf("HostPID's process runs %q (%v), want the container's sleep", got, err)
			}
			e.Kill(killed)
			dir := e.dir
			e.Close()
			// Long enough for an exit command started by a container's
			// death to run to its end.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if left := leftovers(dir); left != "" {
					t.Fatalf("after Close: %s", left)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestAStopEndsTheCommandBySIGTERM: a test container's command ends on the
// engine's SIGTERM (exit 143) rather than waiting out the stop timeout for
// SIGKILL (137): a stop is as quick as a real service's, and what a test
// stops is stopped gracefully. (A command that ignored SIGTERM would end
// by the engine's SIGKILL after the 30 s stop timeout, with 137.)
func TestAStopEndsTheCommandBySIGTERM(t *testing.T) {
	for _, c := range engines {
		t.Run(c.name, func(t *testing.T) {
			e := c.start(t)
			for _, s := range []Spec{
				{Name: "tdstop-sleep"},
				{Name: "tdstop-sh", Cmd: []string{"sh", "-c", "touch /tmp/up; exec sleep 100000"}},
			} {
				id := e.Create(s)
				e.docker(nil, "start", id)
				e.docker(nil, "stop", "--time", "30", id)
				if st := e.Inspect(id).State; st.Running || st.ExitCode != 128+int(syscall.SIGTERM) {
					t.Errorf("%s after docker stop: running %v, exit code %d, want ended by SIGTERM (%d)",
						s.Name, st.Running, st.ExitCode, 128+int(syscall.SIGTERM))
				}
			}
		})
	}
}

// TestLeftoversSeesADirectoryAMountAndAProcess proves the check above can
// fail: it names each kind of leftover.
func TestLeftoversSeesADirectoryAMountAndAProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("a bind mount needs root")
	}
	dir := t.TempDir()
	if left := leftovers(filepath.Join(dir, "gone")); left != "" {
		t.Errorf("nothing there, yet: %q", left)
	}
	if left := leftovers(dir); !strings.Contains(left, "directory "+dir) {
		t.Errorf("an existing directory: %q", left)
	}
	sub := filepath.Join(dir, "m")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(sub, sub, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(sub, syscall.MNT_DETACH) })
	cmd := exec.Command("sleep", "60")
	cmd.Dir = sub
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	left := leftovers(dir)
	for _, want := range []string{"mount " + sub, fmt.Sprintf("process %d", cmd.Process.Pid)} {
		if !strings.Contains(left, want) {
			t.Errorf("leftovers %q lack %q", left, want)
		}
	}
}
