//go:build linux

// Package harness runs the real rouse binary for the end-to-end tests in
// tests/: it builds the binary once per test package, starts it on a
// private D-Bus with a fake logind, a temporary data directory and a free
// loopback port, captures its log, hands out an API client, and stops it
// with SIGTERM, checking the exit status and that no process it started
// survives.
//
// Every agent run carries a per-run marker: in the agent's environment,
// and (by the tests' configs, through ExecEnv) in the environment and argv
// of every exec child. Survivors scans /proc for the marker, so an orphan
// is found even after it was reparented.
//
// Exec components run the test binary itself as small helper servers
// (HelperCommand); a test package's TestMain calls RunHelperIfAsked first.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

	"github.com/rouse-dev/rouse/client"
)

// MarkerEnv is the variable that carries a run's marker.
const MarkerEnv = "ROUSE_E2E_MARKER"

// Guard timeouts: generous bounds against a hung process, never speed
// expectations.
const (
	StartGuard = 60 * time.Second
	StopGuard  = 60 * time.Second
)

// Build compiles ./cmd/rouse of this checkout into dir and returns the
// binary's path. It is meant for TestMain (once per test package), from
// the main module or from a module that replaces rouse with this checkout.
func Build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "rouse")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rouse")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/rouse: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot is the directory of the rouse module as the current module
// resolves it: the root of this checkout from the main module, and the
// replace target from a module of its own under tests/ (tests/browser).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/rouse-dev/rouse").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/rouse-dev/rouse: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("the rouse module has no directory here: run the tests from inside this repository")
	}
	return dir, nil
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Options start one agent.
type Options struct {
	// Config is the YAML config; it is written 0600 into the run's directory.
	Config string
	// DataDir is the data directory; "" makes a fresh one. Pass the same
	// one to restart an agent on its store.
	DataDir string
	// BusAddr is DBUS_SYSTEM_BUS_ADDRESS for the agent (a private bus).
	// Required: an e2e agent never talks to the machine's own bus.
	BusAddr string
	// Listen is the API address; "" picks a free port.
	Listen string
	// Env adds variables to the agent's environment.
	Env []string
	// Args are extra arguments after "run".
	Args []string
	// Marker tags the run; "" makes a fresh one. Configs use it via ExecEnv.
	Marker string
}

// Agent is one running rouse.
type Agent struct {
	t       testing.TB
	Bin     string
	DataDir string
	Listen  string
	Marker  string
	Config  string // path of the config file
	Client  *client.Client

	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
	err  error // Wait's result, after done
}

var markerSeq struct {
	sync.Mutex
	n int
}

// NewMarker returns a marker unique to this test process.
func NewMarker() string {
	markerSeq.Lock()
	defer markerSeq.Unlock()
	markerSeq.n++
	return fmt.Sprintf("rouse-e2e-%d-%d", os.Getpid(), markerSeq.n)
}

// Start runs `rouse run` with o and waits until /healthz answers and the
// token exists. The agent is stopped (and checked) in t.Cleanup unless the
// test stopped it first.
func Start(t testing.TB, bin string, o Options) *Agent {
	t.Helper()
	if o.BusAddr == "" {
		t.Fatal("harness: Options.BusAddr is required (a private bus)")
	}
	dir := t.TempDir()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	if o.Listen == "" {
		o.Listen = FreeAddr(t)
	}
	if o.Marker == "" {
		o.Marker = NewMarker()
	}
	cfgPath := filepath.Join(dir, "rouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(o.Config), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	a := &Agent{t: t, Bin: bin, DataDir: o.DataDir, Listen: o.Listen, Marker: o.Marker, Config: cfgPath,
		log: &logBuffer{}, done: make(chan struct{})}
	args := append([]string{"run", "--config", cfgPath, "--data", o.DataDir, "--listen", o.Listen}, o.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(agentEnv(), "DBUS_SYSTEM_BUS_ADDRESS="+o.BusAddr, MarkerEnv+"="+o.Marker)
	cmd.Env = append(cmd.Env, o.Env...)
	cmd.Stdout = a.log
	cmd.Stderr = a.log
	// Its own group: a terminal signal to the test never reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rouse: %v", err)
	}
	a.cmd = cmd
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			a.Stop()
		}
		if t.Failed() {
			t.Logf("rouse log (%s):\n%s", a.Marker, a.Log())
		}
	})
	a.waitUp()
	return a
}

// agentEnv is the test's environment minus what would point the agent
// elsewhere.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "ROUSE_") || k == "DBUS_SYSTEM_BUS_ADDRESS" || k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (a *Agent) waitUp() {
	a.t.Helper()
	deadline := time.Now().Add(StartGuard)
	base := "http://" + a.Listen
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-a.done:
			a.t.Fatalf("rouse exited during start (%v); log:\n%s", a.err, a.Log())
		default:
		}
		resp, err := hc.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("rouse did not answer /healthz within %v; log:\n%s", StartGuard, a.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	hc.CloseIdleConnections()
	c, err := client.FromEnv(a.Listen, a.DataDir)
	if err != nil {
		a.t.Fatalf("client: %v", err)
	}
	a.Client = c
	a.t.Cleanup(c.Close)
	// /healthz answers from boot step 0; the rest of the API waits for the
	// boot (config, store, units), which this call does too.
	ctx, cancel := context.WithTimeout(context.Background(), StartGuard)
	defer cancel()
	if _, err := c.Services(ctx); err != nil {
		a.t.Fatalf("rouse answered /healthz but not the API within %v: %v; log:\n%s", StartGuard, err, a.Log())
	}
}

// Pid is the agent's process id.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Log returns everything the agent wrote so far.
func (a *Agent) Log() string { return a.log.String() }

// Exited reports whether the process has ended.
func (a *Agent) Exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits for the exit, and fails the test unless the
// agent exited 0 and no process carrying its marker survives.
func (a *Agent) Stop() {
	a.t.Helper()
	if code := a.Terminate(); code != 0 {
		a.t.Errorf("rouse exited with %d after SIGTERM, want 0; log tail:\n%s", code, tail(a.Log(), 40))
	}
	if a.Client != nil {
		a.Client.Close()
	}
	a.CheckNoSurvivors()
}

// Terminate sends SIGTERM and returns the exit code (-1 for a signal).
func (a *Agent) Terminate() int {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(StopGuard):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
		a.t.Errorf("rouse did not exit within %v of SIGTERM; killed", StopGuard)
	}
	return a.cmd.ProcessState.ExitCode()
}

// CheckNoSurvivors fails the test if any process carries the marker. A
// child that is exiting right now gets a short grace to be reaped.
func (a *Agent) CheckNoSurvivors() {
	a.t.Helper()
	var left []Proc
	for range 50 {
		left = Survivors(a.Marker)
		if len(left) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range left {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	a.t.Errorf("processes of %s survived the agent: %v", a.Marker, left)
}

// WaitLog waits until the log contains s, up to guard.
func (a *Agent) WaitLog(s string, guard time.Duration) {
	a.t.Helper()
	Eventually(a.t, guard, "log line "+strconv.Quote(s), func() bool { return strings.Contains(a.Log(), s) })
}

// Proc is a process found by Survivors.
type Proc struct {
	Pid     int
	Cmdline string
}

func (p Proc) String() string { return fmt.Sprintf("%d %q", p.Pid, p.Cmdline) }

// Children lists the live processes that carry a's marker, a itself left
// out: what the agent started and has not stopped.
func (a *Agent) Children() []Proc {
	var out []Proc
	for _, p := range Survivors(a.Marker) {
		if p.Pid != a.Pid() {
			out = append(out, p)
		}
	}
	return out
}

// Survivors lists live processes whose environment or argv carries marker
// (zombies excluded: they are dead, only not yet reaped).
func Survivors(marker string) []Proc {
	if runtime.GOOS != "linux" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(cmdline, []byte(marker)) || bytes.Contains(environ, []byte(MarkerEnv+"="+marker+"\x00")) {
			out = append(out, Proc{Pid: pid, Cmdline: strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")})
		}
	}
	return out
}

// Eventually polls cond every 20 ms until it holds, failing the test after
// guard (a guard against a hang, not a speed expectation).
func Eventually(t testing.TB, guard time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", guard, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ctx returns a context bounded by guard, cancelled at the end of the test.
func Ctx(t testing.TB, guard time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logBuffer keeps the agent's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
