package exec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rouse-dev/rouse/trackers"
)

// daemonizing is a command whose leader stays in the foreground while it
// starts a daemon the ssh -f way: a subshell that calls setsid (a session and
// process group of its own) and forks again, the middle process exiting at
// once. The daemon writes its pid into dir/daemon.
func daemonizing(dir string) []string {
	pidFile := filepath.Join(dir, "daemon")
	return []string{"sh", "-c", `setsid sh -c 'sleep 300 & echo $! >` + pidFile + `.tmp; mv ` + pidFile + `.tmp ` + pidFile + `' </dev/null >/dev/null 2>&1 & exec sleep 300`}
}

// startJailed runs a Tracker on command with jails made by newJail.
func startJailed(t *testing.T, command []string, newJail func(string, *slog.Logger) (*jail, error)) (tr *Tracker, stop func() error) {
	t.Helper()
	tr, err := New(*opts(command...), trackers.Deps{Name: "tunnel/a", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tr.newJail = newJail
	stop = runUntilStopped(t, tr, newHost())
	return tr, stop
}

// readDaemon waits for the daemon's pid file.
func readDaemon(t *testing.T, dir string) int {
	t.Helper()
	var pid int
	eventually(t, "the daemon's pid", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "daemon"))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	// A failing test must not leave its daemon running on the machine
	// (the check that failed may be the one that should have stopped
	// it): kill it by pid at the end, if that pid is still this test's
	// daemon.
	t.Cleanup(func() {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// procGone reports whether pid has no /proc entry at all: neither running
// nor a zombie (so it was reaped).
func procGone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return errors.Is(err, os.ErrNotExist)
}

// checkEscaped fails unless pid has left the group and session of the
// tracker's child (the setsid really happened).
func checkEscaped(t *testing.T, tr *Tracker, pid int) {
	t.Helper()
	d, ok := readProc(pid)
	if !ok {
		t.Fatalf("the daemon %d is not running", pid)
	}
	if d.pgid == tr.Pid() {
		t.Fatalf("the daemon %d is still in the child's process group", pid)
	}
}

// zombieChildrenOfTest lists zombies whose parent is this test process.
func zombieChildrenOfTest() []int {
	var out []int
	for _, p := range scanProcs() {
		if p.ppid == os.Getpid() && p.zombie {
			out = append(out, p.pid)
		}
	}
	return out
}

// noZombiesLeft fails unless every child of the test that has exited is
// reaped soon. What a stop kills and the agent adopted (the middle process
// of a double fork, a daemon) is reaped by the reaper's loop on its
// SIGCHLD, which may come a moment after Stop has returned: the stop
// waits for the group to be gone, not for every adopted orphan's wait.
func noZombiesLeft(t *testing.T) {
	t.Helper()
	var z []int
	deadline := time.Now().Add(10 * time.Second)
	for z = zombieChildrenOfTest(); len(z) != 0 && time.Now().Before(deadline); z = zombieChildrenOfTest() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(z) != 0 {
		t.Fatalf("zombies left: %v", z)
	}
}

func TestSubreaperContainment(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	for _, c := range []struct {
		name string
		end  func(t *testing.T, tr *Tracker, stop func() error)
	}{
		{"StopLeavesNoDaemonAndNoZombie", func(t *testing.T, _ *Tracker, stop func() error) {
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		}},
		{"ALeaderThatExitsTakesItsDaemonAlong", func(t *testing.T, tr *Tracker, stop func() error) {
			if err := syscall.Kill(tr.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tr, stop := startJailed(t, daemonizing(dir), func(_ string, log *slog.Logger) (*jail, error) { return newReaperJail(log) })
			daemon := readDaemon(t, dir)
			checkEscaped(t, tr, daemon)
			eventually(t, "the daemon to be adopted by the subreaper", func() bool {
				d, ok := readProc(daemon)
				return ok && d.ppid == os.Getpid()
			})
			c.end(t, tr, stop)
			eventually(t, "the daemon to be killed and reaped", func() bool { return procGone(daemon) })
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			noZombiesLeft(t)
		})
	}
}

// foregroundDaemon is a command that starts a daemon the way
// TestDaemonizingChildIsContained's does, waiting for the middle process
// (so the leader has no child left, and the agent reaps no zombie of the
// run): the daemon leaves the group and session, is adopted by the
// subreaper, and is the only trace of the run outside the leader. It
// traps SIGTERM (writing dir/termed) and writes its pid into dir/daemon.
func foregroundDaemon(t *testing.T, dir string) []string {
	script := filepath.Join(dir, "daemon.sh")
	body := `trap "touch ` + dir + `/termed; exit 0" TERM
echo $$ >` + dir + `/daemon.tmp && mv ` + dir + `/daemon.tmp ` + dir + `/daemon
while :; do sleep 0.05; done
`
	if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"sh", "-c", "setsid sh -c 'sh " + script + " &' </dev/null >/dev/null 2>&1; exec sleep 300"}
}

// A run whose only trace outside its leader is an adopted daemon: the
// stop's look at the agent's children (jail.alone, jail.over, no /proc
// scan when the run is alone) must find it, send it SIGTERM and see it
// gone, whether the run is stopped or its leader dies.
func TestAdoptedDaemonIsFoundWithoutAScan(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		end    func(t *testing.T, tr *Tracker, stop func() error)
		termed bool // the daemon got SIGTERM first
	}{
		{"Stop", func(t *testing.T, _ *Tracker, stop func() error) {
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		}, true},
		{"LeaderKilled", func(t *testing.T, tr *Tracker, _ func() error) {
			if err := syscall.Kill(tr.Pid(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tr, stop := startJailed(t, foregroundDaemon(t, dir), func(_ string, log *slog.Logger) (*jail, error) { return newReaperJail(log) })
			daemon := readDaemon(t, dir)
			checkEscaped(t, tr, daemon)
			eventually(t, "the daemon to be adopted, the leader to have no child", func() bool {
				d, ok := readProc(daemon)
				kids, err := readPids(fmt.Sprintf("/proc/%d/task/%d/children", tr.Pid(), tr.Pid()))
				return ok && d.ppid == os.Getpid() && err == nil && len(kids) == 0
			})
			c.end(t, tr, stop)
			eventually(t, "the daemon to be stopped and reaped", func() bool { return procGone(daemon) })
			if _, err := os.Stat(filepath.Join(dir, "termed")); c.termed && err != nil {
				t.Errorf("the daemon was not sent SIGTERM before SIGKILL: %v", err)
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

// A run that is its leader alone is seen to be so, and over once the
// leader is reaped, from the agent's children alone.
func TestALoneRunNeedsNoScan(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	j, err := newReaperJail(log)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	cmd := osexec.Command("sleep", "300")
	cmd.SysProcAttr = sysProcAttr()
	cmd.Env = j.prepare(cmd.SysProcAttr, os.Environ())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j.started(cmd.Process.Pid)
	done := make(chan error, 1)
	holdReaper(log)
	defer releaseReaper()
	watchExit(cmd, j.id(), func(err error) { done <- err })
	eventually(t, "the child to run sleep", func() bool { return envToken(cmd.Process.Pid) == j.id() })
	if !j.alone() {
		t.Fatal("alone: false for a leader without children")
	}
	if err := killGroup(cmd.Process); err != nil {
		t.Fatal(err)
	}
	<-done
	if !j.over() {
		t.Fatal("over: false once the lone leader is reaped")
	}
	if err := j.kill(true); err != nil {
		t.Fatal(err)
	}
}

func TestReaperLeavesOSExecChildrenAlone(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	theReaper.acquire(slog.New(slog.DiscardHandler))
	defer theReaper.release()
	// A child os/exec waits for, already a zombie while the reaper runs:
	// its exit status stays for Wait.
	cmd := osexec.Command("sh", "-c", "exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the child to be a zombie", func() bool {
		p, ok := readProc(cmd.Process.Pid)
		return ok && p.zombie
	})
	for range 3 {
		reapAdopted()
	}
	err := cmd.Wait()
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("Wait: %v, want exit status 7", err)
	}
}

func TestCgroupContainment(t *testing.T) {
	own, err := ownCgroup()
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	// A private group under the test's own, removed at the end.
	base, err := os.MkdirTemp(own, "rouse-exec-test-")
	if err != nil {
		t.Skipf("cannot create a cgroup under %s: %v", own, err)
	}
	t.Cleanup(func() {
		if err := removeCgroup(base); err != nil {
			t.Errorf("removing the test's cgroup %s: %v", base, err)
		}
	})
	if _, err := os.Stat(filepath.Join(base, "cgroup.kill")); err != nil {
		t.Skipf("no cgroup.kill (Linux 5.14+): %v", err)
	}
	// Orphans go to the nearest subreaper: be one (and reap), so that no
	// zombie is left whatever init does.
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	theReaper.acquire(slog.New(slog.DiscardHandler))
	defer theReaper.release()

	dir := t.TempDir()
	var made []string
	tr, stop := startJailed(t, daemonizing(dir), func(name string, log *slog.Logger) (*jail, error) {
		j, err := newCgroupJail(base, name, log)
		if err == nil {
			made = append(made, j.dir)
		}
		return j, err
	})
	daemon := readDaemon(t, dir)
	checkEscaped(t, tr, daemon)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(daemon) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 1 || !strings.Contains(string(b), "/"+filepath.Base(made[0])+"\n") {
		t.Fatalf("the daemon is in %q, want the run's group %v", b, made)
	}
	if !strings.HasPrefix(filepath.Base(made[0]), "exec-tunnel%2Fa.") {
		t.Fatalf("group name %q", made[0])
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	eventually(t, "the daemon to be killed and reaped", func() bool { return procGone(daemon) })
	if _, err := os.Stat(made[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the run's group %s is still there: %v", made[0], err)
	}
	noZombiesLeft(t)
}

func TestTreeMembers(t *testing.T) {
	const self = 100
	procs := []proc{
		{pid: self, ppid: 1, pgid: self},
		{pid: 200, ppid: self, pgid: 200},               // the leader
		{pid: 201, ppid: 200, pgid: 200},                // its child
		{pid: 202, ppid: 201, pgid: 202},                // a grandchild in a group of its own
		{pid: 203, ppid: 1, pgid: 200},                  // left in the group, parent gone elsewhere
		{pid: 204, ppid: 201, pgid: 200, zombie: true},  // a zombie: not a member to kill
		{pid: 300, ppid: self, pgid: 300},               // another child of the agent, untagged
		{pid: 301, ppid: 300, pgid: 300},                // and its child
		{pid: 400, ppid: 7, pgid: 400},                  // unrelated
		{pid: 401, ppid: self, pgid: 401, zombie: true}, // a zombie child
	}
	check := func(got []int, want map[int]bool) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("members %v, want %v", got, want)
		}
		for _, pid := range got {
			if !want[pid] {
				t.Fatalf("members %v, want %v", got, want)
			}
		}
	}
	check(treeMembers(procs, self, 200, ""), map[int]bool{200: true, 201: true, 202: true, 203: true})

	// With a token: orphans of the run adopted by the agent, and theirs.
	procs = append(procs,
		proc{pid: 500, ppid: self, pgid: 500, token: "run"},               // a daemon of the run
		proc{pid: 501, ppid: 500, pgid: 500},                              // and its child
		proc{pid: 600, ppid: self, pgid: 600, token: "other"},             // another run's
		proc{pid: 601, ppid: self, pgid: 601, token: "run", zombie: true}, // dead
		proc{pid: 602, ppid: 7, pgid: 602, token: "run"},                  // not the agent's child
	)
	check(treeMembers(procs, self, 200, "run"), map[int]bool{200: true, 201: true, 202: true, 203: true, 500: true, 501: true})
}

func TestScanReadsTheTokensOfTheAgentsChildren(t *testing.T) {
	cmd := osexec.Command("sleep", "30")
	cmd.Env = []string{"A=1", idEnv + "=tok1", "B=2"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	eventually(t, "the child to have exec'd", func() bool { return envToken(cmd.Process.Pid) == "tok1" })
	for range 2 { // the second from the cache
		var found bool
		for _, p := range scanProcs() {
			if p.pid == cmd.Process.Pid {
				found = true
				if p.token != "tok1" {
					t.Fatalf("token %q, want tok1", p.token)
				}
			} else if p.ppid != os.Getpid() && p.token != "" {
				t.Fatalf("pid %d (not a child of the agent) has token %q", p.pid, p.token)
			}
		}
		if !found {
			t.Fatal("the child is not in the scan")
		}
	}
}

func TestCgroupName(t *testing.T) {
	for in, want := range map[string]string{
		"tunnel":      "tunnel",
		"a/b":         "a%2Fb",
		"..":          "%2E%2E",
		"cgroup.kill": "cgroup%2Ekill",
		"x y_z-1":     "x%20y_z-1",
	} {
		if got := cgroupName(in); got != want {
			t.Errorf("cgroupName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/sys/fs/a\040b`); got != "/sys/fs/a b" {
		t.Fatalf("unescapeMount: %q", got)
	}
}

func TestUserService(t *testing.T) {
	for dir, want := range map[string]bool{
		"/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/rouse.service":     true,
		"/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope": false,
		"/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope":                               false,
		"/sys/fs/cgroup/user.slice/user-1001.slice/user@1001.service/app.slice/rouse.service":     false,
		"/sys/fs/cgroup/system.slice/rouse.service":                                               false,
	} {
		if got := userService(dir, 1000); got != want {
			t.Errorf("userService(%q, 1000) = %v, want %v", dir, got, want)
		}
	}
}

// startContained runs the test binary as an agent (helperMain's "contain"
// mode with args) whose own cgroup is base ("": the test's), and returns it
// with its containment mode and its child's pid.
func startContained(t *testing.T, base string, args ...string) (agent *osexec.Cmd, mode string, child int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent = osexec.Command(exe, args...)
	agent.Env = append(os.Environ(), helperEnv+"=contain")
	agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if base != "" {
		fd, err := syscall.Open(base, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		agent.SysProcAttr.UseCgroupFD, agent.SysProcAttr.CgroupFD = true, fd
	}
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	var line string
	if line, err = bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("reading the helper agent's line: %v", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("helper agent said %q", line)
	}
	child, _ = strconv.Atoi(f[1])
	return agent, f[0], child
}

// cgroupOf is the cgroup v2 path of pid.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	t.Fatalf("no cgroup v2 line for %d in %q", pid, b)
	return ""
}

// An agent started in a delegated group moves itself into a leaf, runs each
// component in a group beside it, and the next agent removes what a killed
// one left there.
func TestDelegatedCgroupSetup(t *testing.T) {
	own, err := ownCgroup()
	if err != nil {
		t.Skipf("no cgroup v2 here: %v", err)
	}
	base, err := os.MkdirTemp(own, "rouse-exec-delegated-")
	if err != nil {
		t.Skipf("cannot create a cgroup under %s: %v", own, err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(base, "cgroup.kill"), []byte("1"), 0)
		if err := removeCgroup(base); err != nil {
			t.Errorf("removing the test's cgroup %s: %v", base, err)
		}
	})
	if _, err := os.Stat(filepath.Join(base, "cgroup.kill")); err != nil {
		t.Skipf("no cgroup.kill (Linux 5.14+): %v", err)
	}
	if err := unix.Setxattr(base, "trusted.delegate", []byte("1"), 0); err != nil {
		t.Skipf("cannot mark the test's cgroup delegated as systemd does: %v", err)
	}
	if err := becomeSubreaper(); err != nil { // orphans of the killed agent: reaped here
		t.Fatal(err)
	}
	theReaper.acquire(slog.New(slog.DiscardHandler))
	defer theReaper.release()
	rel := cgroupOf(t, os.Getpid())
	rel = strings.TrimSuffix(rel, "/") + "/" + filepath.Base(base)

	dir := t.TempDir()
	agent, mode, child := startContained(t, base, dir)
	if mode != modeCgroup {
		t.Fatalf("containment %q in a delegated group, want %q", mode, modeCgroup)
	}
	if got := cgroupOf(t, agent.Process.Pid); got != rel+"/agent" {
		t.Fatalf("the agent is in %s, want its leaf %s/agent", got, rel)
	}
	group := cgroupOf(t, child)
	if !strings.HasPrefix(group, rel+"/"+cgroupPrefix+"child.") {
		t.Fatalf("the child is in %s, want a group of its own beside the agent", group)
	}
	daemon := readDaemon(t, dir)
	if got := cgroupOf(t, daemon); got != group {
		t.Fatalf("the daemon is in %s, want the child's group %s", got, group)
	}

	// kill -9: the daemon outlives the agent, in its group.
	agent.Process.Kill()
	agent.Wait()
	if procGone(daemon) {
		t.Fatal("the daemon died with the agent: nothing left to sweep")
	}
	os.Remove(filepath.Join(dir, "daemon"))
	_, _, _ = startContained(t, base, dir)
	eventually(t, "the earlier agent's daemon to be killed", func() bool { return procGone(daemon) })
	if _, err := os.Stat(filepath.Join(filepath.Dir(base), filepath.Base(base), filepath.Base(group))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the earlier agent's group %s is still there: %v", group, err)
	}
}

// helperContain is helperMain's "contain" mode: an agent in its own
// (delegated) cgroup supervising a daemonizing command (its daemon's pid
// goes to args[0]/daemon; its group is recorded in args[1] if given); it
// prints the containment mode and the child's
// pid, then waits to be killed.
func helperContain(args []string) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	mode := agentContainment(log).mode
	o := DefaultOptions()
	o.Command = daemonizing(args[0])
	deps := trackers.Deps{Name: "child", Logger: log}
	if len(args) > 1 {
		deps.StateDir = args[1]
	}
	tr, err := New(*o, deps)
	if err != nil {
		os.Exit(3)
	}
	go tr.Run(context.Background(), newHost())
	for tr.Pid() == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println(mode, tr.Pid())
	select {}
}

// Without a cgroup, what a run daemonized outside its group still carries
// the run's token, which the group record keeps: the next agent kills it
// after the agent was killed with kill -9.
func TestStaleDaemonAfterAgentSIGKILL(t *testing.T) {
	if err := becomeSubreaper(); err != nil { // the daemon's new parent: reaped here
		t.Fatal(err)
	}
	theReaper.acquire(slog.New(slog.DiscardHandler))
	defer theReaper.release()
	dir, state := t.TempDir(), t.TempDir()
	agent, mode, child := startContained(t, "", dir, state)
	if mode != modeSubreaper {
		t.Skipf("the helper agent runs in %s mode here", mode)
	}
	daemon := readDaemon(t, dir)
	if d, _ := readProc(daemon); d.pgid == child {
		t.Fatal("the daemon did not leave the child's group")
	}
	eventually(t, "the group record", func() bool { return recordExists(t, state) })
	agent.Process.Kill()
	agent.Wait()
	eventually(t, "the child to die with the agent (Pdeathsig)", func() bool { return procGone(child) })
	if procGone(daemon) {
		t.Fatal("the daemon died with the agent: nothing left to sweep")
	}
	sweepStale(state, slog.New(slog.DiscardHandler))
	eventually(t, "the daemon to be killed", func() bool { return procGone(daemon) })
}

// What a readiness command daemonizes is part of the run it checks.
func TestReadyCommandIsContained(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "daemon")
	o := opts("sleep", "300")
	o.Ready.Command = []string{"sh", "-c", `[ -f ` + pidFile + ` ] || setsid sh -c 'sleep 300 & echo $! >` + pidFile + `.tmp; mv ` + pidFile + `.tmp ` + pidFile + `' </dev/null >/dev/null 2>&1`}
	tr, err := New(*o, trackers.Deps{Name: "checked", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tr.newJail = func(_ string, log *slog.Logger) (*jail, error) { return newReaperJail(log) }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	h := newHost()
	go func() { errc <- tr.Run(ctx, h) }()
	h.waitFor(t, 1, "ready", isState(trackers.StateReady))
	daemon := readDaemon(t, dir)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	eventually(t, "the check's daemon to be killed and reaped", func() bool { return procGone(daemon) })
}

// reapTestOrphans reaps what the test process adopted as a subreaper while
// no reaper ran (the children of helper agents killed with kill -9): left
// unreaped, they would pass to an init that may never reap them.
func reapTestOrphans() {
	if !subreaping.Load() {
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		reapAdopted()
		live := false
		for _, p := range scanProcs() {
			if p.ppid == os.Getpid() {
				live = true // still dying, or a zombie being reaped
			}
		}
		if !live {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
