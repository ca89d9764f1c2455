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
// applet links).
//
// Setting up and looking at containers goes through the docker CLI (create,
// import, inspect, kill, pause, exec, rm), a client independent of the one
// under test; Client is rouse's own Engine API client of this engine, for
// what a test follows from Go (the event stream).
//
// The engine and everything it made are removed when the test ends: the
// containers (forced), then dockerd by its PID (SIGTERM, SIGKILL after a
// guard), its managed containerd with it, the mounts left under its
// directory, the directory, and the cgroup parent.
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	client *engine.Client
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
	for _, b := range []string{bin, "docker"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("testdocker: %s not found (install Debian's %s and docker.io; scripts/test-deps.sh does): %v", b, pkg, err)
		}
	}
	// A short directory: unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "tdock")
	if err != nil {
		t.Fatalf("testdocker: %v", err)
	}
	e := &Engine{t: t, podman: podman, dir: dir, sock: filepath.Join(dir, "d.sock"),
		cgroup: fmt.Sprintf("rouse-testdocker-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)}
	t.Cleanup(e.cleanup)
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
	cmd := exec.Command("dockerd", args...)
	if e.podman {
		cmd = exec.Command("podman", "--root", filepath.Join(e.dir, "data"), "--runroot", filepath.Join(e.dir, "exec"),
			"--tmpdir", filepath.Join(e.dir, "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--runtime", "runc", // crun refuses this machine's hybrid cgroup layout
			"system", "service", "--time=0", e.Host())
	}
	log, err := os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatalf("testdocker: %v", err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Close()
		e.t.Fatalf("testdocker: start dockerd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(done)
	}()
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
	if e.podman {
		args = append(args, "--cgroup-parent", "/"+e.cgroup) // dockerd takes it as a daemon flag
		// Podman's compat API raises the open-files and process limits to its own maxima,
		// which a sandbox without CAP_SYS_RESOURCE refuses; ask for less.
		args = append(args, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
	}
	args = append(args, e.Image())
	if len(s.Cmd) == 0 {
		args = append(args, "sleep", "100000")
	} else {
		args = append(args, s.Cmd...)
	}
	return strings.TrimSpace(string(e.docker(nil, args...)))
}

// Inspect returns the container as `docker inspect` shows it.
func (e *Engine) Inspect(id string) engine.Container {
	e.t.Helper()
	var cs []engine.Container
	if err := json.Unmarshal(e.docker(nil, "container", "inspect", id), &cs); err != nil || len(cs) != 1 || cs[0].State == nil {
		e.t.Fatalf("testdocker: inspect %s: %v (%d containers)", id, err, len(cs))
	}
	return cs[0]
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
	// Whatever dockerd left mounted under its directory, deepest first.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mounts []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], e.dir+"/") {
				mounts = append(mounts, f[4])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(e.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Logf("testdocker: remove %s: %v", e.dir, err)
	}
	// The cgroup parent: one tree on cgroup v2, one per controller
	// hierarchy on v1 or a hybrid layout.
	removeCgroupTree(filepath.Join("/sys/fs/cgroup", e.cgroup))
	if hs, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, h := range hs {
			removeCgroupTree(filepath.Join("/sys/fs/cgroup", h.Name(), e.cgroup))
		}
	}
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
