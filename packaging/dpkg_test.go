package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testDpkg installs the package for real with dpkg -i, runs the installed
// binary, and purges it, all inside a throwaway root: the host's dpkg
// database, /usr, /etc and /var are never written, and the test checks that
// they were not. It needs root, as CI is: without root it fails and says so
// rather than passing on a check that did not happen.
func testDpkg(t *testing.T, pkg string) {
	t.Run("DpkgInstallRunsAndPurges", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("the package test installs the .deb with dpkg -i and purges it in a throwaway root (mount namespace, overlay over /, chroot): run it as root (CI does)")
		}
		for _, tool := range []string{"unshare", "nsenter", "mountpoint", "chroot", "dpkg", "dpkg-query"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s not found (util-linux, coreutils and dpkg provide it): %v", tool, err)
			}
		}
		before := hostState()
		// Registered first, so it runs after the root is torn down.
		t.Cleanup(func() {
			after := hostState()
			for _, k := range slices.Sorted(maps.Keys(before)) {
				if b, a := before[k], after[k]; a != b {
					t.Errorf("the host changed: %s was %s, is %s", k, b, a)
				}
			}
		})
		r := newThrowawayRoot(t, pkg)

		r.run(t, "dpkg", "-i", "/tmp/rouse.deb")
		if out := r.run(t, "/usr/bin/rouse", "version"); !strings.Contains(out, testVersion) {
			t.Fatalf("installed rouse version = %q", out)
		}
		r.run(t, "/usr/bin/rouse", "config", "check", "/etc/rouse/rouse.yaml")
		if st, err := os.Stat(r.path("/var/lib/rouse")); err != nil || !st.IsDir() {
			t.Fatalf("postinst made no /var/lib/rouse: %v", err)
		}
		r.run(t, "dpkg", "--purge", "rouse")
		for _, p := range []string{"/usr/bin/rouse", "/etc/rouse/rouse.yaml", "/var/lib/rouse", "/lib/systemd/system/rouse.service"} {
			if _, err := os.Stat(r.path(p)); !os.IsNotExist(err) {
				t.Errorf("%s still there after purge (%v)", p, err)
			}
		}
		// What a maintainer script might leave running: the teardown must
		// end it (it checks that no process of the root survives).
		r.run(t, "sh", "-c", "setsid sleep 3600 </dev/null >/dev/null 2>&1 &")
	})
}

// hostState is what a dpkg install on the host would change: the package's
// status, its files, the user and group databases, dpkg's database and log.
func hostState() map[string]string {
	s := map[string]string{}
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", "rouse").CombinedOutput()
	s["dpkg-query -W rouse"] = fmt.Sprintf("%q (%v)", strings.TrimSpace(string(out)), err)
	for _, p := range []string{
		"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
		"/var/lib/dpkg/status", "/var/lib/dpkg/info/rouse.list", "/var/log/dpkg.log",
		"/usr/bin/rouse", "/etc/rouse", "/var/lib/rouse",
		"/lib/systemd/system/rouse.service", "/usr/lib/systemd/user/rouse.service",
	} {
		s[p] = fileState(p)
	}
	return s
}

// fileState says whether p exists and, for a file, its size, modification
// time and sha256.
func fileState(p string) string {
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "absent"
	case err != nil:
		return err.Error()
	case !st.Mode().IsRegular():
		return st.Mode().String() + " " + st.ModTime().UTC().Format(time.RFC3339Nano)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes, modified %s, sha256 %s", st.Size(), st.ModTime().UTC().Format(time.RFC3339Nano), hex.EncodeToString(sum[:]))
}

// throwawayRoot is the host's file system seen through an overlay whose
// writes go to a tmpfs, in private mount, pid, net, uts and ipc namespaces:
// a shell chrooted into it is PID 1 there and waits on its stdin. Closing
// that ends the shell, the kernel kills whatever else runs in the pid
// namespace, and the mount namespace with its tmpfs and overlays goes away.
type throwawayRoot struct {
	dir    string // an empty directory on the host; the tmpfs is mounted on it only inside
	cmd    *exec.Cmd
	stdin  *os.File
	stderr bytes.Buffer
	pid    int    // the host's pid of PID 1 in the root
	pidNS  string // its pid namespace, as /proc/PID/ns/pid reads
}

// setupRoot runs as PID 1 of the new namespaces. lowerdir=/ does not carry
// the mounts below /, so each of /usr, /etc, /var and /opt that is a mount
// of its own gets an overlay too (else dpkg would write into an empty
// directory and the host's database would not be there). /proc is the new
// pid namespace's, /dev holds only the few devices dpkg and the scripts
// use, /tmp and /run are empty tmpfs: no systemd, D-Bus or other socket of
// the host is reachable, so the maintainer scripts call no host service.
const setupRoot = `set -eu
dir=$1 pkg=$2
mount -t tmpfs -o mode=0700 rouse-pkgtest "$dir"
mkdir "$dir/upper" "$dir/work" "$dir/root"
root=$dir/root
mount -t overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" rouse-pkgtest "$root"
for d in usr etc var opt; do
	if mountpoint -q "/$d"; then
		mkdir "$dir/upper-$d" "$dir/work-$d"
		mount -t overlay -o "lowerdir=/$d,upperdir=$dir/upper-$d,workdir=$dir/work-$d" rouse-pkgtest "$root/$d"
	fi
done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid rouse-pkgtest "$root/dev"
for n in null zero full random urandom; do
	touch "$root/dev/$n"
	mount --bind "/dev/$n" "$root/dev/$n"
done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev rouse-pkgtest "$root/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev rouse-pkgtest "$root/run"
cp "$pkg" "$root/tmp/rouse.deb"
exec chroot "$root" /bin/sh -c 'echo ready; read -r _ || true'
`

// newThrowawayRoot makes the root with the package at /tmp/rouse.deb in
// it; it is torn down, and checked to be gone, when the test ends.
func newThrowawayRoot(t *testing.T, pkg string) *throwawayRoot {
	t.Helper()
	dir, err := os.MkdirTemp("", "rouse-pkgtest-")
	if err != nil {
		t.Fatal(err)
	}
	r := &throwawayRoot{dir: dir}
	stdin, toRoot, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromRoot, stdout, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer fromRoot.Close()
	// --kill-child: should unshare die, its child dies too; should this
	// process die, the root's stdin reaches EOF and it ends.
	r.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child=SIGKILL",
		"--net", "--uts", "--ipc", "sh", "-c", setupRoot, "setup", dir, pkg)
	r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = stdin, stdout, &r.stderr
	r.cmd.Env = rootEnv
	err = r.cmd.Start()
	stdin.Close()
	stdout.Close()
	if err != nil {
		toRoot.Close()
		os.Remove(dir)
		t.Fatalf("start unshare: %v", err)
	}
	r.stdin = toRoot
	t.Cleanup(func() { r.teardown(t) })

	_ = fromRoot.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := bufio.NewReader(fromRoot).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("the throwaway root did not come up (%q, %v); unshare said:\n%s", line, err, r.stderrText())
	}
	r.pid = r.initPID(t)
	if r.pidNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", r.pid)); err != nil {
		t.Fatalf("the root's pid namespace: %v", err)
	}
	return r
}

// rootEnv is the environment of everything run in the root: none of the
// test's (DPKG_ROOT, a fake systemctl first in PATH) leaks in.
var rootEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/root", "DEBIAN_FRONTEND=noninteractive"}

// initPID finds unshare's child: the shell that chrooted into the root.
func (r *throwawayRoot) initPID(t *testing.T) int {
	t.Helper()
	p := r.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, p))
	f := strings.Fields(string(b))
	if err != nil || len(f) != 1 {
		t.Fatalf("unshare's child: %q, %v", b, err)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// path is p inside the root as the host reaches it.
func (r *throwawayRoot) path(p string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", r.pid), p)
}

// run runs a command in the root (all its namespaces, chrooted) and fails
// the test if it fails.
func (r *throwawayRoot) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(r.pid), "-m", "-p", "-n", "-u", "-i", "-r", "-w", "--", name}, args...)...)
	cmd.Env = rootEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in the throwaway root): %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (r *throwawayRoot) stderrText() string {
	if r.cmd.ProcessState == nil {
		// Still running: Wait owns the buffer until then.
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
	return r.stderr.String()
}

// teardown ends the root and checks that nothing of it is left: no process
// in its pid namespace, no mount on or under its directory in the host's
// mount table, and the directory itself removed.
func (r *throwawayRoot) teardown(t *testing.T) {
	_ = r.stdin.Close()
	if r.cmd.ProcessState == nil {
		done := make(chan error, 1)
		go func() { done <- r.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the throwaway root ended with %v:\n%s", err, r.stderr.String())
			}
		case <-time.After(time.Minute):
			t.Errorf("the throwaway root did not end on EOF: killing it")
			if p, err := os.FindProcess(r.pid); err == nil && r.pid > 0 {
				_ = p.Kill()
			}
			_ = r.cmd.Process.Kill()
			<-done
		}
	}
	if r.pidNS != "" {
		procs, _ := filepath.Glob("/proc/[0-9]*/ns/pid")
		for _, p := range procs {
			if ns, err := os.Readlink(p); err == nil && ns == r.pidNS {
				t.Errorf("process %s of the throwaway root is still running", filepath.Base(filepath.Dir(filepath.Dir(p))))
			}
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("read the host's mounts: %v", err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == r.dir || strings.HasPrefix(f[4], r.dir+"/")) {
			t.Errorf("the host still has a mount of the throwaway root: %s", l)
		}
	}
	if err := os.Remove(r.dir); err != nil {
		t.Errorf("remove the throwaway root's directory: %v", err)
	}
}
