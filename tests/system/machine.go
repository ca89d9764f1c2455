//go:build linux

// Package system checks rouse under a real systemd 252 with the real
// systemd-logind and D-Bus: each run boots systemd as PID 1 of new
// namespaces (Machine), installs rouse as the README says, and drives real
// `systemctl suspend` cycles, kills, a watchdog timeout and a bad config.
//
// The machine never touches the host (see PITFALLS, "systemd and logind for
// real, in a namespace"): systemd runs in container mode (container= in its
// environment) in private pid, mount, uts, ipc and net namespaces (only lo
// up) and in a private sub-cgroup; /etc, /var and /usr/local are overlays
// whose upper dirs live in the test's directory; /run, /tmp, /home and /dev
// are fresh tmpfs; /proc/sys and /sys are read-only; every generator and
// every unit that would reach the host (udev, sysctl, modules, binfmt,
// random seed, time sync, tmpfiles cleaning, getty, every enabled
// third-party service and timer) is masked, and it boots a target of its own
// (basic.target, D-Bus, logind). The only fake is a plain file bind-mounted
// over /sys/power/state so the kernel write returns. Everything is removed
// by PID afterwards: a SIGKILL of that systemd ends the namespace, then the
// cgroups it made are removed deepest first.
//
// It needs root, unshare and nsenter (util-linux), systemd, dbus, polkitd
// and curl: scripts/test-deps.sh installs them. Without them it fails.
package system

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed inner.sh
var innerScript string

// Machine is one systemd booted in namespaces of its own.
type Machine struct {
	t       testing.TB
	Dir     string // overlay upper dirs, the fake power state, the console log
	PID     int    // the host's pid of the machine's systemd (PID 1 inside)
	cmd     *exec.Cmd
	cgroups []string
}

// masked are the units that would reach outside the machine or cost time.
var masked = []string{
	"systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
	"systemd-udevd-control.socket", "systemd-udevd-kernel.socket", "kmod-static-nodes.service",
	"proc-sys-fs-binfmt_misc.automount", "systemd-binfmt.service", "systemd-modules-load.service",
	"systemd-random-seed.service", "systemd-sysctl.service", "systemd-tmpfiles-setup-dev.service",
	"systemd-firstboot.service", "systemd-repart.service", "systemd-pcrphase-sysinit.service",
	"systemd-pcrphase.service", "systemd-machine-id-commit.service", "sys-kernel-config.mount",
	"sys-kernel-debug.mount", "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
	"dev-hugepages.mount", "dev-mqueue.mount", "systemd-ask-password-console.path",
	"systemd-ask-password-wall.path", "systemd-timesyncd.service", "systemd-tmpfiles-clean.timer",
	"getty.target", "getty@tty1.service", "console-getty.service", "systemd-journald-audit.socket",
	"systemd-remount-fs.service", "systemd-hwdb-update.service", "systemd-pstore.service",
	"systemd-boot-update.service", "ldconfig.service", "systemd-sysusers.service", "tmp.mount",
}

const target = `[Unit]
Description=rouse system test
Requires=basic.target dbus.socket systemd-logind.service
After=basic.target dbus.socket systemd-logind.service
AllowIsolate=yes
`

// logind logs each signal it sends at debug level: the figures of the
// suspend cycles are read from there.
const logindDebug = `[Service]
Environment=SYSTEMD_LOG_LEVEL=debug
`

// Boot starts a machine and waits until its systemd has finished booting.
// It is stopped and removed when the test ends.
func Boot(t testing.TB) *Machine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the real-systemd suite needs root (it boots systemd in namespaces of its own)")
	}
	for _, p := range []string{"/lib/systemd/systemd", "/lib/systemd/systemd-logind", "/usr/bin/dbus-daemon"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing (scripts/test-deps.sh installs systemd and dbus): %v", p, err)
		}
	}
	for _, c := range []string{"unshare", "nsenter", "curl", "ip"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is missing (scripts/test-deps.sh installs it): %v", c, err)
		}
	}
	m := &Machine{t: t, Dir: t.TempDir()}
	if err := m.prepare(); err != nil {
		t.Fatal(err)
	}
	if err := m.makeCgroups(); err != nil {
		m.removeCgroups()
		t.Fatal(err)
	}
	console, err := os.Create(filepath.Join(m.Dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	inner := filepath.Join(m.Dir, "inner.sh")
	if err := os.WriteFile(inner, []byte(innerScript), 0o700); err != nil {
		t.Fatal(err)
	}
	// --kill-child and Pdeathsig: should the test process die without its
	// cleanup (a -timeout panic), the kernel kills the machine too.
	args := append([]string{"--pid", "--fork", "--kill-child=SIGKILL", "--mount", "--uts", "--ipc", "--net", "--propagation", "private",
		"--mount-proc", "/bin/sh", inner, m.Dir}, m.cgroups...)
	m.cmd = exec.Command("unshare", args...)
	m.cmd.Stdout, m.cmd.Stderr = console, console
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		m.removeCgroups()
		t.Fatalf("start unshare: %v", err)
	}
	t.Cleanup(m.stop)
	m.PID = m.waitPID1()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// systemctl answers "offline" until PID 1 has made its private socket.
	var out string
	for {
		out, err = m.run(ctx, nil, "systemctl", "is-system-running", "--wait")
		if !(strings.HasPrefix(out, "offline") || strings.Contains(out, "Failed to connect to bus")) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := strings.TrimSpace(out); err != nil && st != "degraded" {
		failed, _ := m.Run("systemctl", "--failed", "--no-pager")
		t.Fatalf("the machine did not boot: %q %v\n%s\nconsole:\n%s", st, err, failed, m.console())
	}
	return m
}

// prepare writes the overlay's upper /etc: masks, the target, logind's
// debug drop-in; and the fake /sys/power/state.
func (m *Machine) prepare() error {
	if err := os.WriteFile(filepath.Join(m.Dir, "power-state"), []byte("freeze mem disk\n"), 0o644); err != nil {
		return err
	}
	sys := filepath.Join(m.Dir, "etc.upper", "systemd", "system")
	gens := filepath.Join(m.Dir, "etc.upper", "systemd", "system-generators")
	for _, d := range []string{sys, gens, filepath.Join(sys, "systemd-logind.service.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	names := append([]string{}, masked...)
	// Every unit the host enabled (docker, databases, apt timers, ...).
	wants, _ := filepath.Glob("/etc/systemd/system/*.wants/*")
	for _, w := range wants {
		names = append(names, filepath.Base(w))
	}
	for _, n := range names {
		_ = os.Remove(filepath.Join(sys, n))
		if err := os.Symlink("/dev/null", filepath.Join(sys, n)); err != nil {
			return err
		}
	}
	// No generator runs: no fstab mounts, no SysV services.
	for _, dir := range []string{"/lib/systemd/system-generators", "/usr/lib/systemd/system-generators"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			_ = os.Symlink("/dev/null", filepath.Join(gens, e.Name()))
		}
	}
	if err := os.WriteFile(filepath.Join(sys, "rouse-systest.target"), []byte(target), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(sys, "systemd-logind.service.d", "debug.conf"), []byte(logindDebug), 0o644)
}

// makeCgroups creates the machine's private cgroups beside this process's:
// one on a unified (v2) machine, the named systemd and the unified one on a
// hybrid machine.
func (m *Machine) makeCgroups() error {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	name := "rouse-systest-" + filepath.Base(m.Dir)
	paths := map[string]string{} // hierarchy line key -> our path
	sc := bufio.NewScanner(strings.NewReader(string(own)))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 {
			paths[parts[1]] = parts[2]
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		return err
	}
	const cgroup2Magic = 0x63677270
	var dirs []string
	if st.Type == cgroup2Magic {
		dirs = []string{filepath.Join("/sys/fs/cgroup", paths[""], name)}
	} else {
		if p, ok := paths["name=systemd"]; ok {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup/systemd", p, name))
		}
		if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup/unified", paths[""], name))
		}
		if len(dirs) == 0 {
			return errors.New("no systemd or unified cgroup hierarchy under /sys/fs/cgroup")
		}
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("make the machine's cgroup: %w", err)
		}
		m.cgroups = append(m.cgroups, d)
	}
	return nil
}

// waitPID1 returns the host pid of unshare's child, once it is systemd.
func (m *Machine) waitPID1() int {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", m.cmd.Process.Pid, m.cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ := strconv.Atoi(f[0])
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasSuffix(exe, "/systemd") {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatalf("systemd did not start in the namespaces; console:\n%s", m.console())
	return 0
}

func (m *Machine) console() string {
	b, _ := os.ReadFile(filepath.Join(m.Dir, "console.log"))
	return string(b)
}

// stop kills the machine's systemd (PID 1 of its namespace: everything in
// it dies), waits for unshare, and removes the cgroups.
func (m *Machine) stop() {
	if m.PID > 0 {
		_ = syscall.Kill(m.PID, syscall.SIGKILL)
	}
	if m.cmd != nil && m.cmd.Process != nil {
		done := make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = m.cmd.Process.Kill()
			<-done
		}
	}
	m.removeCgroups()
}

// removeCgroups removes every cgroup under the machine's, deepest first,
// retrying while the killed processes leave them.
func (m *Machine) removeCgroups() {
	for _, root := range m.cgroups {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var dirs []string
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			var last error
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
					last = err
				}
			}
			if last == nil || time.Now().After(deadline) {
				if last != nil {
					m.t.Errorf("cannot remove the machine's cgroup %s: %v", root, last)
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// run runs a command inside the machine (all its namespaces) with stdin.
func (m *Machine) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	full := append([]string{"-t", strconv.Itoa(m.PID), "-m", "-p", "-n", "-u", "-i", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Run runs a command inside the machine and returns its output.
func (m *Machine) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return m.run(ctx, nil, args...)
}

// Must runs a command inside the machine and fails the test if it fails.
func (m *Machine) Must(args ...string) string {
	m.t.Helper()
	out, err := m.Run(args...)
	if err != nil {
		m.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// Sh runs a shell script inside the machine.
func (m *Machine) Sh(script string) (string, error) { return m.Run("sh", "-c", script) }

// WriteFile writes a file inside the machine.
func (m *Machine) WriteFile(path string, data []byte, mode os.FileMode) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := fmt.Sprintf("mkdir -p %q && cat > %q && chmod %o %q", filepath.Dir(path), path, mode, path)
	if out, err := m.run(ctx, data, "sh", "-c", script); err != nil {
		m.t.Fatalf("write %s in the machine: %v\n%s", path, err, out)
	}
}

// Show returns properties of a unit (systemctl show); user: as that user's
// manager.
func (m *Machine) Show(unit string, props ...string) map[string]string {
	m.t.Helper()
	args := []string{"systemctl", "show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out := m.Must(args...)
	return parseProps(out)
}

func parseProps(out string) map[string]string {
	v := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k] = val
		}
	}
	return v
}

// Eventually polls cond until it holds or timeout passes (a guard against a
// hang, not a speed check).
func (m *Machine) Eventually(what string, timeout time.Duration, cond func() bool) {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			m.t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
