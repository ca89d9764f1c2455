//go:build linux

// Package testdocker runs a private container engine for tests: Docker's
// dockerd (Start) or Podman's Docker-compatible API service (StartPodman),
// each on its own unix socket, data root, run root and cgroup parent. dockerd
// runs with iptables, IP forwarding, masquerading and the default bridge all
// off, so it changes nothing in the machine's network; containers use the
// host's network namespace (NetworkMode "host") with either engine.
//
// Nothing is pulled: Image builds a small image from Debian's busybox-static
// with `docker import` (a tar of a directory holding /bin/busybox and its
// applet links) and Docker's tini, which runs as each container's PID 1 and
// passes the stop signal on to the command, so that a stop ends it at once.
//
// Setting up and looking at containers goes through the docker CLI (create,
// import, inspect, kill, pause, exec, rm), a client independent of the one
// under test; Client is rouse's own Engine API client of this engine, for
// what a test follows from Go (the event stream).
//
// Each engine runs in a PID and mount namespace of its own, whose init is
// Docker's tini (docker-init, shipped with docker.io): what the engine starts
// and loses track of (Podman's conmon and the `podman container cleanup` it
// runs when a container or exec session ends, containerd's shims) is
// adopted and reaped by that init instead of the machine's, and the engine's
// mounts (Podman's storage bind-mounts its overlay directory onto itself,
// dockerd's overlay2 layers) never reach the machine's mount table.
//
// Close, which runs when the test ends, removes the engine and everything
// it made: the containers (forced), the engine by its PID (SIGTERM, SIGKILL
// after a guard), then the namespace by its init's PID (SIGKILL; the kernel
// kills every process left in it, and the init is reaped only after the
// last of them), which takes every mount made inside with it; then the
// directory, and the cgroup parent. It fails the test if a process, mount
// or directory of the engine is left.
package testdocker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rouse-dev/rouse/internal/engine"
)

// Guards against a hung engine; never speed expectations.
const (
	startGuard = 90 * time.Second
	stopGuard  = 30 * time.Second
)

// Engine is a private dockerd owned by one test.
type Engine struct {
	t      testing.TB
	podman bool
	dir    string
	sock   string
	cgroup string

	// The namespaces' init (docker-init as PID 1), a child of the test
	// process; nsDone is closed once it is reaped.
	ns     *exec.Cmd
	nsDone <-chan struct{}

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   <-chan struct{}
	client *engine.Client

	closeOnce sync.Once
}

// Start runs a private dockerd for t and waits until it answers. It fails
// the test when dockerd is missing (scripts/test-deps.sh installs Debian's
// docker.io, with the docker CLI) or when the test does not run as root.
func Start(t testing.TB) *Engine { return start(t, false) }

// StartPodman runs a private `podman system service` (Podman's
// Docker-compatible API) for t and waits until it answers. It fails the test
// when podman is missing (scripts/test-deps.sh installs Debian's podman).
// Podman runs HEALTHCHECKs from systemd timers, which a test has not got:
// specs with Health are for Start's dockerd.
func StartPodman(t testing.TB) *Engine { return start(t, true) }

func start(t testing.TB, podman bool) *Engine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("testdocker: a private engine needs root")
	}
	bin, pkg := "dockerd", "docker.io"
	if podman {
		bin, pkg = "podman", "podman"
	}
	for _, b := range []string{bin, "docker", "docker-init", "unshare", "nsenter"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("testdocker: %s not found (install Debian's %s, docker.io and util-linux; scripts/test-deps.sh does): %v", b, pkg, err)
		}
	}
	// A short directory: unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "tdock")
	if err != nil {
		t.Fatalf("testdocker: %v", err)
	}
	e := &Engine{t: t, podman: podman, dir: dir, sock: filepath.Join(dir, "d.sock"),
		cgroup: fmt.Sprintf("rouse-testdocker-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)}
	t.Cleanup(e.Close)
	e.startNamespace()
	e.launch()
	cli, err := engine.New(e.Host())
	if err != nil {
		t.Fatalf("testdocker: client: %v", err)
	}
	e.client = cli
	e.waitUp()
	return e
}

// Host is the engine's address (unix://…), for DOCKER_HOST or engine:.
func (e *Engine) Host() string { return "unix://" + e.sock }

// Client is rouse's Engine API client of this engine.
func (e *Engine) Client() *engine.Client { return e.client }

// docker runs the docker CLI against this engine and returns its standard
// output; a failure fails the test with its standard error.
func (e *Engine) docker(stdin io.Reader, args ...string) []byte {
	e.t.Helper()
	out, err := e.tryDocker(stdin, args...)
	if err != nil {
		e.t.Fatalf("testdocker: %v", err)
	}
	return out
}

func (e *Engine) tryDocker(stdin io.Reader, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", e.Host()}, args...)...)
	// A private config directory: no contexts, credential helpers or
	// plugins of the machine's user.
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(e.dir, "cli"), "DOCKER_CONTEXT=", "DOCKER_HOST=")
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// startNamespace starts the init of the engine's PID and mount namespaces
// and waits until it runs: PID 1 of a new PID namespace (Cloneflags), in a
// new mount namespace with private propagation and its own /proc (unshare),
// reaping whatever is orphaned in there (docker-init). Killed with the test
// process (Pdeathsig), should the test die without its cleanup.
func (e *Engine) startNamespace() {
	e.t.Helper()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--mount-proc",
		"docker-init", "--", "sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := e.startLogged(cmd, "init.log", cmd.Start)
	if err != nil {
		e.t.Fatalf("testdocker: start the engine's namespaces: %v", err)
	}
	e.ns, e.nsDone = cmd, done
	// Ready once unshare has mounted /proc and become docker-init.
	comm := filepath.Join("/proc", fmt.Sprint(cmd.Process.Pid), "comm")
	deadline := time.Now().Add(startGuard)
	for {
		b, _ := os.ReadFile(comm)
		if strings.TrimSpace(string(b)) == "docker-init" {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(e.dir, "init.log"))
			e.t.Fatalf("testdocker: the engine's namespaces ended at once: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("testdocker: the engine's namespaces were not up within %v", startGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startInNamespace starts cmd, which must run nsenter into the mount
// namespace, as a process of the engine's PID namespace: from a thread whose
// namespace for new children is the engine's (setns), put back before the
// thread serves other goroutines. The process stays a child of the test
// process, waited for by its PID.
func (e *Engine) startInNamespace(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/pid")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		theirs, err := os.Open(fmt.Sprintf("/proc/%d/ns/pid", e.ns.Process.Pid))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer theirs.Close()
		if err := unix.Setns(int(theirs.Fd()), unix.CLONE_NEWPID); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		err = cmd.Start()
		if rerr := unix.Setns(int(own.Fd()), unix.CLONE_NEWPID); rerr != nil {
			// The thread stays locked: the runtime ends it with this
			// goroutine.
			errc <- errors.Join(err, fmt.Errorf("setns back: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// startLogged starts cmd with start, its output appended to the file name
// in the engine's directory, and waits for it in a goroutine that closes
// the file and then the returned channel.
func (e *Engine) startLogged(cmd *exec.Cmd, name string, start func() error) (<-chan struct{}, error) {
	log, err := os.OpenFile(filepath.Join(e.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := start(); err != nil {
		log.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}()
	return done, nil
}

func (e *Engine) launch() {
	e.t.Helper()
	args := []string{
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
		"--data-root", filepath.Join(e.dir, "data"),
		"--exec-root", filepath.Join(e.dir, "exec"),
		"--pidfile", filepath.Join(e.dir, "d.pid"),
		"-H", e.Host(),
		"--cgroup-parent", e.cgroup,
		"--containerd-namespace", "rouse-test", "--containerd-plugins-namespace", "rouse-test-plugins",
	}
	argv := append([]string{"dockerd"}, args...)
	if e.podman {
		argv = []string{"podman", "--root", filepath.Join(e.dir, "data"), "--runroot", filepath.Join(e.dir, "exec"),
			"--tmpdir", filepath.Join(e.dir, "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--runtime", "runc", // crun refuses this machine's hybrid cgroup layout
			"system", "service", "--time=0", e.Host()}
	}
	// nsenter joins the mount namespace and execs the engine (no fork:
	// only the PID namespace makes nsenter fork, and that one is joined by
	// startInNamespace).
	cmd := exec.Command("nsenter", append([]string{fmt.Sprintf("--mount=/proc/%d/ns/mnt", e.ns.Process.Pid), "--"}, argv...)...)
	// No Pdeathsig: its thread is the one that joined the namespace; the
	// namespace's init has one and takes the engine with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done, err := e.startLogged(cmd, "dockerd.log", func() error { return e.startInNamespace(cmd) })
	if err != nil {
		e.t.Fatalf("testdocker: start dockerd: %v", err)
	}
	e.mu.Lock()
	e.cmd, e.done = cmd, done
	e.mu.Unlock()
}

func (e *Engine) waitUp() {
	e.t.Helper()
	deadline := time.Now().Add(startGuard)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := e.client.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		e.mu.Lock()
		done := e.done
		e.mu.Unlock()
		select {
		case <-done:
			e.t.Fatalf("testdocker: dockerd exited:\n%s", e.Log())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("testdocker: dockerd did not answer within %v: %v\n%s", startGuard, err, e.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log is the end of dockerd's log.
func (e *Engine) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop stops dockerd (SIGTERM, by PID) and waits for it; containers stop
// with it. Start brings it back on the same socket and data.
func (e *Engine) Stop() {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopGuard):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart starts a stopped engine again and waits until it answers.
func (e *Engine) Restart() {
	e.t.Helper()
	e.launch()
	e.waitUp()
}

// Image builds (once per engine) a busybox image from the machine's
// busybox-static and returns its reference.
func (e *Engine) Image() string {
	e.t.Helper()
	const ref = "rouse-test/bb:1"
	if _, err := e.tryDocker(nil, "image", "inspect", ref); err == nil {
		return ref
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		e.t.Fatalf("testdocker: /bin/busybox (install Debian's busybox-static): %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		if err := tw.WriteHeader(h); err != nil {
			e.t.Fatal(err)
		}
		if body != nil {
			if _, err := tw.Write(body); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	for _, d := range []string{"bin/", "tmp/", "etc/", "proc/", "sys/", "dev/"} {
		add(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o1777}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb)
	// docker-init is Debian's static tini (a link to tini-static).
	tini, err := exec.LookPath("docker-init")
	if err == nil {
		tini, err = filepath.EvalSymlinks(tini)
	}
	var ti []byte
	if err == nil {
		ti, err = os.ReadFile(tini)
	}
	if err != nil {
		e.t.Fatalf("testdocker: docker-init, Docker's tini (install Debian's docker.io): %v", err)
	}
	add(&tar.Header{Name: "bin/tini", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(ti))}, ti)
	for _, applet := range []string{"sh", "sleep", "httpd", "wget", "nc", "true", "false", "touch", "test", "cat", "echo", "rm", "kill"} {
		add(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil)
	}
	if err := tw.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.docker(&buf, "import", "-", ref)
	return ref
}

// Spec describes a test container.
type Spec struct {
	Name   string
	Cmd    []string          // default: sleep forever
	Health []string          // a CMD-SHELL health command; nil: no HEALTHCHECK
	Labels map[string]string // e.g. compose's
	// HealthInterval is the HEALTHCHECK's interval. Default 200ms.
	HealthInterval time.Duration
	StopTimeout    int // seconds; 0: the engine's default
}

// Create creates (does not start) a container on the host's network.
func (e *Engine) Create(s Spec) string {
	e.t.Helper()
	args := []string{"create", "--name", s.Name, "--network", "host"}
	for k, v := range s.Labels {
		args = append(args, "--label", k+"="+v)
	}
	if s.Health != nil {
		iv := s.HealthInterval
		if iv == 0 {
			iv = 200 * time.Millisecond
		}
		// A generous timeout: on a loaded machine a check that fails at
		// once must fail by its exit, not by the clock.
		args = append(args, "--health-cmd", strings.Join(s.Health, " "), "--health-interval", iv.String(),
			"--health-timeout", "60s", "--health-retries", "1")
	}
	if s.StopTimeout > 0 {
		args = append(args, "--stop-timeout", fmt.Sprint(s.StopTimeout))
	}
	// An init as PID 1, Docker's own (tini, which the image carries): it
	// passes the stop signal on to the command, which ends on SIGTERM as
	// any process does that is not PID 1, so a stop ends at once, as it
	// does for a real service. As PID 1 `sleep` or httpd would ignore
	// SIGTERM (the kernel drops a signal PID 1 has no handler for) and
	// every stop would wait out the stop timeout for the engine's SIGKILL.
	// (Not --init: Debian's Podman lacks its catatonit.)
	args = append(args, "--entrypoint", "/bin/tini")
	if e.podman {
		args = append(args, "--cgroup-parent", "/"+e.cgroup) // dockerd takes it as a daemon flag
		// Podman's compat API raises the open-files and process limits to its own maxima,
		// which a sandbox without CAP_SYS_RESOURCE refuses; ask for less.
		args = append(args, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
	}
	args = append(args, e.Image(), "--") // tini's: what follows is the command
	if len(s.Cmd) == 0 {
		args = append(args, "sleep", "100000")
	} else {
		args = append(args, s.Cmd...)
	}
	return strings.TrimSpace(string(e.docker(nil, args...)))
}

// Inspect returns the container as `docker inspect` shows it. Its
// State.Pid is a PID in the engine's namespace; HostPID is the test's.
func (e *Engine) Inspect(id string) engine.Container {
	e.t.Helper()
	var cs []engine.Container
	if err := json.Unmarshal(e.docker(nil, "container", "inspect", id), &cs); err != nil || len(cs) != 1 || cs[0].State == nil {
		e.t.Fatalf("testdocker: inspect %s: %v (%d containers)", id, err, len(cs))
	}
	return cs[0]
}

// HostPID is the PID of the container's command (Spec.Cmd) in the test's
// PID namespace, for signalling it behind the engine's back: the one child
// of the container's init. (Inspect's State.Pid is the init's, and counts
// in the engine's own PID namespace: never signal it.)
func (e *Engine) HostPID(id string) int {
	e.t.Helper()
	init := e.initPID(id)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", init, init))
	kids := strings.Fields(string(b))
	if err != nil || len(kids) != 1 {
		e.t.Fatalf("testdocker: the init of %s (PID %d) has children %q (%v), want its command", id, init, kids, err)
	}
	pid, err := strconv.Atoi(kids[0])
	if err != nil {
		e.t.Fatalf("testdocker: %v", err)
	}
	return pid
}

// initPID is the PID of the container's main process, its init, in the
// test's PID namespace. It is found by its PID in the engine's namespace
// (the second NSpid) among the descendants of the namespace's init.
func (e *Engine) initPID(id string) int {
	e.t.Helper()
	st := e.Inspect(id).State
	if !st.Running || st.Pid <= 0 {
		e.t.Fatalf("testdocker: %s does not run", id)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		e.t.Fatalf("testdocker: %v", err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		ns := statusField(pid, "NSpid")
		if len(ns) >= 2 && ns[1] == strconv.Itoa(st.Pid) && e.inNamespace(pid) {
			return pid
		}
	}
	e.t.Fatalf("testdocker: no process of the engine's namespace has PID %d there", st.Pid)
	return 0
}

// inNamespace reports whether pid descends from the namespaces' init.
func (e *Engine) inNamespace(pid int) bool {
	for range 64 {
		pp := statusField(pid, "PPid")
		if len(pp) != 1 {
			return false
		}
		ppid, err := strconv.Atoi(pp[0])
		if err != nil || ppid <= 1 {
			return false
		}
		if ppid == e.ns.Process.Pid {
			return true
		}
		pid = ppid
	}
	return false
}

// statusField is the fields of one line ("NSpid", "PPid") of
// /proc/PID/status.
func statusField(pid int, name string) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

// Running reports whether the container runs.
func (e *Engine) Running(id string) bool { return e.Inspect(id).State.Running }

// Kill sends SIGKILL to the container, as `docker kill` does.
func (e *Engine) Kill(id string) { e.docker(nil, "kill", "--signal", "KILL", id) }

// Pause freezes the container (`docker pause`).
func (e *Engine) Pause(id string) { e.docker(nil, "pause", id) }

// Unpause thaws a paused container; unlike the others it only logs a
// failure, for deferred clean-up.
func (e *Engine) Unpause(id string) {
	if _, err := e.tryDocker(nil, "unpause", id); err != nil {
		e.t.Logf("testdocker: %v", err)
	}
}

// Exec runs argv in the container and waits for it (`docker exec`,
// attached: Podman's compat API does not report the end of a detached
// exec).
func (e *Engine) Exec(id string, argv ...string) {
	e.t.Helper()
	e.docker(nil, append([]string{"exec", id}, argv...)...)
}

// Close removes the engine and everything it made; it runs by itself when
// the test ends.
func (e *Engine) Close() { e.closeOnce.Do(e.cleanup) }

func (e *Engine) cleanup() {
	if e.client != nil {
		e.mu.Lock()
		up := e.cmd != nil
		e.mu.Unlock()
		if up {
			if out, err := e.tryDocker(nil, "ps", "--all", "--quiet", "--no-trunc"); err == nil {
				if ids := strings.Fields(string(out)); len(ids) > 0 {
					_, _ = e.tryDocker(nil, append([]string{"rm", "--force"}, ids...)...)
				}
			}
		}
		e.client.Close()
	}
	e.Stop()
	e.stopNamespace()
	e.removeDir()
	// The cgroup parent: one tree on cgroup v2, one per controller
	// hierarchy on v1 or a hybrid layout.
	removeCgroupTree(filepath.Join("/sys/fs/cgroup", e.cgroup))
	if hs, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, h := range hs {
			removeCgroupTree(filepath.Join("/sys/fs/cgroup", h.Name(), e.cgroup))
		}
	}
	if left := leftovers(e.dir); left != "" {
		e.t.Errorf("testdocker: left behind: %s", left)
	}
}

// stopNamespace kills the namespaces' init by its PID and waits until it
// is reaped, which the kernel allows only once every other process of the
// PID namespace is gone; the mount namespace, and every mount in it, goes
// with the last of them.
func (e *Engine) stopNamespace() {
	if e.ns == nil {
		return
	}
	_ = e.ns.Process.Signal(syscall.SIGKILL)
	select {
	case <-e.nsDone:
	case <-time.After(stopGuard):
		e.t.Errorf("testdocker: the engine's namespaces (init PID %d) did not end within %v", e.ns.Process.Pid, stopGuard)
	}
}

// removeDir unmounts whatever is mounted under the engine's directory
// (deepest first, lazily) and removes it, again until it stays gone, within
// a bound. Nothing should be mounted here, nor come back: the mounts were
// made in the engine's mount namespace and every process that could write
// here is dead.
func (e *Engine) removeDir() {
	var err error
	for range 20 {
		mounts := mountsUnder(e.dir)
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
		err = os.RemoveAll(e.dir)
		time.Sleep(100 * time.Millisecond)
		if _, serr := os.Lstat(e.dir); errors.Is(serr, os.ErrNotExist) && len(mountsUnder(e.dir)) == 0 {
			return
		}
	}
	e.t.Errorf("testdocker: remove %s: %v", e.dir, err)
}

// leftovers describes what is left of an engine whose directory was dir: the
// directory itself, mounts at or under it in this mount namespace, and
// processes whose command line or working directory names it. "" is
// nothing.
func leftovers(dir string) string {
	var left []string
	if _, err := os.Lstat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	for _, m := range mountsUnder(dir) {
		left = append(left, "mount "+m)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", p.Name(), "cwd"))
		if bytes.Contains(cmdline, []byte(dir)) || cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			argv := strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " ")
			left = append(left, fmt.Sprintf("process %s (%.200s)", p.Name(), argv))
		}
	}
	return strings.Join(left, "; ")
}

// mountsUnder lists the mount points at or under dir in this mount
// namespace, in /proc/self/mountinfo's order (parents before children).
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	return mounts
}

// removeCgroupTree removes an (empty) cgroup directory tree, deepest first.
func removeCgroupTree(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, en := range entries {
		if en.IsDir() {
			removeCgroupTree(filepath.Join(dir, en.Name()))
		}
	}
	_ = os.Remove(dir)
}
