//go:build linux

package exec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// freeAddr returns a loopback address nothing listens on (right now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// listenerCommand is an argv and env for a child that listens on addr after
// delay.
func listenerCommand(t *testing.T, addr string, delay time.Duration) ([]string, map[string]string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, addr, delay.String()}, map[string]string{helperEnv: "listen"}
}

// running is a real Tracker under Run in real time.
type running struct {
	tr   *Tracker
	host *fakeHost
	stop func() error
}

// runUntilStopped runs tr in the background and returns a stop that
// cancels it and returns what Run returned; the test's cleanup stops it too.
func runUntilStopped(t *testing.T, tr *Tracker, h trackers.Host) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- tr.Run(ctx, h) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return stop
}

func startReal(t *testing.T, o *Options) *running {
	t.Helper()
	return startRealWith(t, o, newHost())
}

func startRealWith(t *testing.T, o *Options, h *fakeHost) *running {
	t.Helper()
	tr, err := New(*o, trackers.Deps{Name: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stop := runUntilStopped(t, tr, h)
	return &running{tr: tr, host: h, stop: stop}
}

func opts(command ...string) *Options {
	o := DefaultOptions()
	o.Command = command
	return o
}

// groupMembers lists the live (not zombie) processes in process group pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		rest := b[bytes.LastIndexByte(b, ')')+2:]
		f := strings.Fields(string(rest))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// eventually polls cond until it holds, failing after a generous guard.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startAgent runs the test binary as an agent in miniature (helperMain's
// supervise modes, with args) and returns it with the pid of the child it
// supervises.
func startAgent(t *testing.T, mode string, args ...string) (agent *osexec.Cmd, child int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent = osexec.Command(exe, args...)
	agent.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		agent.Process.Kill()
		agent.Wait()
		t.Fatalf("reading the child pid: %v", err)
	}
	child, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil || child <= 0 {
		t.Fatalf("child pid %q", line)
	}
	return agent, child
}

func TestReadyChecks(t *testing.T) {
	t.Run("TCPReadyOnceTheChildListens", func(t *testing.T) {
		addr := freeAddr(t)
		o := DefaultOptions()
		o.Command, o.Env = listenerCommand(t, addr, 300*time.Millisecond)
		o.Ready.TCP = addr
		o.ReadyInterval = 50 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		rs := r.host.all()
		if rs[0].state != trackers.StateStarting {
			t.Fatalf("first report %v, want starting", rs[0])
		}
		if r.tr.Pid() <= 0 {
			t.Fatalf("Pid %d while running", r.tr.Pid())
		}
		if c, err := net.Dial("tcp", addr); err != nil {
			t.Fatalf("reported ready but %s refuses: %v", addr, err)
		} else {
			c.Close()
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if r.tr.Pid() != 0 {
			t.Fatalf("Pid %d after stop", r.tr.Pid())
		}
	})
	t.Run("HTTPReadyOnlyOnA2xx", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if hits.Add(1) <= 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		o := opts("sleep", "300")
		o.Ready.HTTP = srv.URL + "/health"
		o.ReadyInterval = 20 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		if n := hits.Load(); n < 4 {
			t.Fatalf("ready after %d requests, want the 4th (first 2xx)", n)
		}
		if n := r.host.count(func(r report) bool { return r.err != nil && strings.Contains(r.err.Error(), "503") }); n != 1 {
			t.Fatalf("want the 503 reported once, reports %v", r.host.all())
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("CommandReadyOnceItExitsZero", func(t *testing.T) {
		flag := filepath.Join(t.TempDir(), "up")
		o := opts("sh", "-c", `sleep 0.3; touch "$FLAG"; exec sleep 300`)
		o.Env = map[string]string{"FLAG": flag}
		o.Ready.Command = []string{"sh", "-c", `test -f "$FLAG"`}
		o.ReadyInterval = 20 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		if _, err := os.Stat(flag); err != nil {
			t.Fatalf("ready before the flag exists: %v", err)
		}
		if n := r.host.count(func(r report) bool { return r.err != nil && strings.Contains(r.err.Error(), "ready.command") }); n < 1 {
			t.Fatalf("want the failing check reported, got %v", r.host.all())
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("ACheckCommandThatHangsIsKilledAsAGroup", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "check.pid")
		o := opts("sleep", "300")
		o.Env = map[string]string{"PIDFILE": pidFile}
		o.Ready.Command = []string{"sh", "-c", `echo $$ > "$PIDFILE"; sleep 300 & sleep 300`}
		o.ReadyTimeout = 100 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "a failed check", func(r report) bool { return r.err != nil })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		if left := groupMembers(t, pgid); len(left) != 0 {
			t.Fatalf("check processes survived: %v", left)
		}
	})
	t.Run("NoCheckReadyAfterOneSecond", func(t *testing.T) {
		r := startReal(t, opts("sleep", "300"))
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		rs := r.host.all()
		if got := rs[len(rs)-1].at.Sub(rs[0].at); got < DefaultReadyAfter {
			t.Fatalf("ready %s after start, want at least %s", got, DefaultReadyAfter)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("NeverReadyStaysStarting", func(t *testing.T) {
		o := opts("sleep", "300")
		o.Ready.TCP = freeAddr(t)
		o.ReadyInterval = 20 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "a failing check", func(r report) bool { return r.err != nil })
		time.Sleep(1500 * time.Millisecond) // many checks' worth
		if n := r.host.count(isState(trackers.StateReady)); n != 0 {
			t.Fatalf("reported ready with nothing listening: %v", r.host.all())
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

func TestExitAndRestart(t *testing.T) {
	t.Run("ReportsTheExitStatusAndLastLineThenRestarts", func(t *testing.T) {
		o := opts("sh", "-c", "echo boom $$; exit 3")
		o.RestartBackoff = Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
		r := startReal(t, o)
		r.host.waitFor(t, 3, "exits", exitedReport)
		for _, rep := range r.host.all() {
			if exitedReport(rep) {
				msg := rep.err.Error()
				if !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "boom") {
					t.Fatalf("exit error %q lacks status or output", msg)
				}
			}
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Each run printed its own pid: the process really was restarted.
		seen := map[string]bool{}
		for _, l := range r.tr.Output() {
			seen[l] = true
		}
		if len(seen) < 3 {
			t.Fatalf("want 3 distinct runs in the output, got %q", r.tr.Output())
		}
	})
	t.Run("SweepsWhatTheExitedLeaderLeftInItsGroup", func(t *testing.T) {
		o := opts("sh", "-c", "sleep 300 & echo started; sleep 0.2; exit 1")
		o.RestartBackoff = Backoff{Initial: time.Hour, Max: time.Hour}
		r := startReal(t, o)
		eventually(t, "a pid", func() bool { return r.tr.Pid() > 0 })
		pgid := r.tr.Pid()
		r.host.waitFor(t, 1, "an exit", exitedReport)
		if left := groupMembers(t, pgid); len(left) != 0 {
			t.Fatalf("processes left in group %d: %v", pgid, left)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("AProgramThatCannotStartMakesRunFail", func(t *testing.T) {
		tr, err := New(*opts("rouse-no-such-program"), trackers.Deps{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		err = tr.Run(context.Background(), newHost())
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("Run error %v, want not found", err)
		}
	})
}

func TestStop(t *testing.T) {
	t.Run("KillsTheWholeGroupIncludingGrandchildren", func(t *testing.T) {
		o := opts("sh", "-c", "sleep 300 & sleep 300 & wait")
		o.ReadyAfter = 50 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		pgid := r.tr.Pid()
		eventually(t, "three processes in the group", func() bool { return len(groupMembers(t, pgid)) == 3 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if left := groupMembers(t, pgid); len(left) != 0 {
			t.Fatalf("survivors in group %d: %v", pgid, left)
		}
	})
	t.Run("KillsAGroupThatIgnoresSIGTERMAfterStopTimeout", func(t *testing.T) {
		o := opts("sh", "-c", `trap "" TERM; sleep 300 & wait; wait`)
		o.ReadyAfter = 50 * time.Millisecond
		o.StopTimeout = 200 * time.Millisecond
		r := startReal(t, o)
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		pgid := r.tr.Pid()
		eventually(t, "two processes in the group", func() bool { return len(groupMembers(t, pgid)) == 2 })
		start := time.Now()
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(start); took < o.StopTimeout {
			t.Fatalf("stopped in %s, before stop_timeout: SIGTERM was not ignored?", took)
		}
		if left := groupMembers(t, pgid); len(left) != 0 {
			t.Fatalf("survivors in group %d: %v", pgid, left)
		}
	})
}

func TestEnvironment(t *testing.T) {
	t.Run("OnlyTheAllowlistAndEnvReachTheChild", func(t *testing.T) {
		t.Setenv("ROUSE_API_TOKEN", "s3cret-token")
		t.Setenv("LANG", "C.UTF-8")
		o := opts("env")
		o.Env = map[string]string{"GREETING": "hello world"}
		o.RestartBackoff = Backoff{Initial: time.Hour, Max: time.Hour}
		r := startReal(t, o)
		r.host.waitFor(t, 1, "an exit", exitedReport)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		out := r.tr.Output()
		// ROUSE_EXEC_ID: the run's token when the agent is a subreaper.
		allowed := append(slices.Clone(EnvAllowlist), "GREETING", idEnv)
		for _, l := range out {
			if strings.Contains(l, "s3cret") {
				t.Fatalf("the token leaked: %q", l)
			}
			k, _, _ := strings.Cut(l, "=")
			if !slices.Contains(allowed, k) {
				t.Errorf("unexpected variable %q", l)
			}
		}
		for _, want := range []string{"GREETING=hello world", "LANG=C.UTF-8", "PATH=" + os.Getenv("PATH")} {
			if !slices.Contains(out, want) {
				t.Errorf("missing %q in %q", want, out)
			}
		}
	})
	t.Run("TildeAndTheDefaultDirAreTheHome", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		if err := os.MkdirAll(filepath.Join(home, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		script := "#!/bin/sh\necho \"pwd=$(pwd)\"\nexec sleep 300\n"
		if err := os.WriteFile(filepath.Join(home, "bin", "hello"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		o := opts("~/bin/hello")
		o.ReadyAfter = 10 * time.Millisecond
		r := startReal(t, o)
		want := "pwd=" + home
		eventually(t, "the child's pwd line", func() bool { return slices.Contains(r.tr.Output(), want) })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

func TestWorkingDirectory(t *testing.T) {
	t.Run("NoHomeMeansSlash", func(t *testing.T) {
		t.Setenv("HOME", filepath.Join(t.TempDir(), "nonexistent"))
		r := startReal(t, opts("sh", "-c", `echo "pwd=$(pwd)"; exec sleep 300`))
		eventually(t, "the child's pwd line", func() bool { return slices.Contains(r.tr.Output(), "pwd=/") })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("AMissingDirIsAnErrorThatNamesTheDirectory", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "gone")
		o := opts("sh", "-c", "exec sleep 300")
		tr, err := New(*o, trackers.Deps{Name: "test", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		tr.opts.Dir = missing // validated while it existed, removed since
		err = tr.Run(context.Background(), newHost())
		if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("Run: %v, want an error naming %s", err, missing)
		}
		if strings.Contains(err.Error(), `"sh"`) || strings.Contains(err.Error(), "fork/exec") {
			t.Fatalf("the error blames the program: %v", err)
		}
	})
	t.Run("ADirRemovedBetweenTheCheckAndTheForkIsStillTheDirectorysError", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "gone")
		sp, err := resolve([]string{"sh", "-c", "true"}, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		sp.dir = missing
		_, err = startProcess(sp, &sink{log: slog.New(slog.DiscardHandler), ring: newRing(1), lim: &limiter{rate: 1}}, slog.New(slog.DiscardHandler), nil)
		var de *dirError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), "/sh") {
			t.Fatalf("start: %v, want the directory's error", err)
		}
	})
	t.Run("AFileIsNotADirectory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := workDir(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("workDir: %v", err)
		}
	})
}

func TestResume(t *testing.T) {
	setup := func(t *testing.T, restart bool) *running {
		addr := freeAddr(t)
		o := DefaultOptions()
		o.Command, o.Env = listenerCommand(t, addr, 0)
		o.Ready.TCP = addr
		o.ReadyInterval = 20 * time.Millisecond
		o.RestartOnWake = restart
		r := startReal(t, o)
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
		return r
	}
	t.Run("WithoutRestartOnWakeThePidStays", func(t *testing.T) {
		r := setup(t, false)
		pid := r.tr.Pid()
		r.tr.Resume(context.Background())
		r.host.waitFor(t, 2, "ready again", isState(trackers.StateReady))
		if got := r.tr.Pid(); got != pid {
			t.Fatalf("pid %d → %d, want unchanged", pid, got)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("WithRestartOnWakeThePidChanges", func(t *testing.T) {
		r := setup(t, true)
		pid := r.tr.Pid()
		r.tr.Resume(context.Background())
		r.host.waitFor(t, 2, "ready again", isState(trackers.StateReady))
		if got := r.tr.Pid(); got == pid || got == 0 {
			t.Fatalf("pid %d → %d, want a new process", pid, got)
		}
		if left := groupMembers(t, pid); len(left) != 0 {
			t.Fatalf("the old process group survived: %v", left)
		}
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

func TestOutputLogging(t *testing.T) {
	t.Run("AChattyChildIsRateLimitedInTheLogButKeptInFull", func(t *testing.T) {
		capture := &captureHandler{}
		h := newHost()
		h.log = slog.New(capture)
		o := opts("sh", "-c", `i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done; exec sleep 300`)
		o.OutputLines = 500
		r := startRealWith(t, o, h)
		eventually(t, "200 lines kept", func() bool { return len(r.tr.Output()) == 200 })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		logged := capture.byMsg("child output")
		dropped := 0
		for _, rec := range capture.byMsg("child output rate-limited") {
			dropped += int(rec["dropped_lines"].(int64))
		}
		if len(logged) > 2*logRate {
			t.Fatalf("%d lines logged, want at most %d", len(logged), 2*logRate)
		}
		if len(logged)+dropped != 200 {
			t.Fatalf("logged %d + dropped %d, want 200", len(logged), dropped)
		}
		if rec := logged[0]; rec["stream"] != "stdout" || rec["line"] != "line 0" {
			t.Fatalf("first record %v", rec)
		}
	})
	t.Run("StderrIsReadToo", func(t *testing.T) {
		o := opts("sh", "-c", `echo oops >&2; exec sleep 300`)
		r := startReal(t, o)
		eventually(t, "the stderr line", func() bool { return slices.Contains(r.tr.Output(), "oops") })
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
	t.Run("TheExitErrorNamesTheLastLineEvenWhenNoLinesAreKept", func(t *testing.T) {
		o := opts("sh", "-c", `echo "fatal: no route" >&2; exit 255`)
		o.OutputLines = 0
		o.RestartBackoff = Backoff{Initial: time.Hour, Max: time.Hour}
		r := startReal(t, o)
		r.host.waitFor(t, 1, "an exit", exitedReport)
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		var msg string
		for _, rep := range r.host.all() {
			if exitedReport(rep) {
				msg = rep.err.Error()
			}
		}
		if !strings.Contains(msg, "exit status 255") || !strings.Contains(msg, "fatal: no route") {
			t.Fatalf("exit error %q", msg)
		}
		if len(r.tr.Output()) != 0 {
			t.Fatalf("kept %q with output_lines 0", r.tr.Output())
		}
	})
}

func TestParentDeath(t *testing.T) {
	t.Run("AChildDiesWithAnAgentKilledByKill9", func(t *testing.T) {
		agent, pid := startAgent(t, "supervise")
		if len(groupMembers(t, pid)) != 1 {
			t.Fatalf("the supervised child %d is not running", pid)
		}
		if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		agent.Wait()
		eventually(t, "the orphan to die", func() bool { return len(groupMembers(t, pid)) == 0 })
	})
}
