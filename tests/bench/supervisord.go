//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// Benchmark 5: against supervisord and pm2. Programs (./pidlisten, built
// for the run) wait ~200 ms, then accept on their port and write their pid
// to each connection. Each side supervises the same number of
// them; the time measured is from "restart everything" —
// `supervisorctl restart all` for supervisord, `pm2 restart all` for pm2 (a
// private daemon, its own PM2_HOME), POST /api/v1/wake for rouse (exec
// components with restart_on_wake: true) — until every program has a NEW
// pid listening. Each program, once it listens, reports its address and pid
// to this program over loopback (the instant it can accept); the time of
// the last report is the figure, for all three alike, and each port is then
// checked to answer with the reported pid. Until 2026-11 this program polled
// the 50 ports every 2 ms instead: 25,000 connects a second, a whole core of
// the two, which slowed most the contender that needs the CPU in that
// window. Rounds alternate (three in the full run); the median is kept.
// Until 2026-11 the programs were this program run again (a 16–24 MB
// binary with every package init of the bench, ~3 ms of CPU to start each,
// and fifty of them start at once on every restart); pidlisten is a
// command of its own with nothing else in it, the same for all three.

const (
	helperArg    = "-rouse-bench-helper"
	programDelay = 200 * time.Millisecond
)

type supervisorMatch struct {
	Programs       int       `json:"programs"`
	SupervisordMS  float64   `json:"supervisord_ms"`
	PM2MS          float64   `json:"pm2_ms"`
	RouseMS        float64   `json:"rouse_ms"`
	Ratio          float64   `json:"ratio_supervisord_over_rouse"`
	PM2Ratio       float64   `json:"ratio_pm2_over_rouse"`
	SupervisordRun []float64 `json:"supervisord_runs_ms"`
	PM2Runs        []float64 `json:"pm2_runs_ms"`
	RouseRuns      []float64 `json:"rouse_runs_ms"`
	// RouseCPUMS is the agent's own CPU (its threads, children excluded)
	// from the wake request until the wake's done event, median.
	RouseCPUMS   float64   `json:"rouse_agent_cpu_ms"`
	RouseCPURuns []float64 `json:"rouse_agent_cpu_runs_ms"`
	// RouseDoneMS is from the wake request until the wake's done event
	// (the time the agent stamped on it): every program marked ready,
	// when dependents could start. Median.
	RouseDoneMS   float64   `json:"rouse_wake_done_ms"`
	RouseDoneRuns []float64 `json:"rouse_wake_done_runs_ms"`
}

// runHelperIfAsked turns this process into a bench helper when asked.
func runHelperIfAsked() {
	if len(os.Args) < 3 || os.Args[1] != helperArg {
		return
	}
	if err := helper(os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func helper(mode string, args []string) error {
	switch mode {
	case "servebytes":
		return serveBytes(args)
	case "polls":
		return barePolls(args)
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// helperArgv is the command line of the program on addr: it reports to
// report once it listens; marker tags it.
func helperArgv(helper, addr, marker, report string) []string {
	return []string{helper, addr, programDelay.String(), marker, report}
}

// pidAt returns the pid the program on addr answers with, or "".
func pidAt(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// listening collects the programs' reports: which pid listens on which
// address, and since when.
type listening struct {
	l    net.Listener
	mu   sync.Mutex
	cond *sync.Cond
	pid  map[string]string
	at   map[string]time.Time
	wg   sync.WaitGroup
}

func newListening(t *tb) *listening {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("report listener: %v", err)
	}
	ls := &listening{l: l, pid: map[string]string{}, at: map[string]time.Time{}}
	ls.cond = sync.NewCond(&ls.mu)
	ls.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ls.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				at := time.Now()
				addr, pid, ok := strings.Cut(strings.TrimSpace(line), " ")
				if err != nil || !ok {
					return
				}
				ls.mu.Lock()
				ls.pid[addr], ls.at[addr] = pid, at
				ls.cond.Broadcast()
				ls.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		ls.wg.Wait()
	})
	return ls
}

func (ls *listening) addr() string { return ls.l.Addr().String() }

// waitNewPids waits until every address has reported a pid other than
// old's (any pid when old is empty), checks that each port answers with
// it, and returns the pids and how long after t0 the last report came.
func (ls *listening) waitNewPids(t *tb, who string, addrs []string, old map[string]string, t0 time.Time) (map[string]string, time.Duration) {
	stop := time.AfterFunc(harness.StartGuard, func() {
		ls.mu.Lock()
		ls.cond.Broadcast()
		ls.mu.Unlock()
	})
	defer stop.Stop()
	ls.mu.Lock()
	var missing []string
	for {
		missing = missing[:0]
		for _, a := range addrs {
			if p := ls.pid[a]; p == "" || p == old[a] {
				missing = append(missing, a)
			}
		}
		if len(missing) == 0 || time.Since(t0) >= harness.StartGuard {
			break
		}
		ls.cond.Wait()
	}
	got := map[string]string{}
	var last time.Duration
	for _, a := range addrs {
		got[a] = ls.pid[a]
		last = max(last, ls.at[a].Sub(t0))
	}
	ls.mu.Unlock()
	if len(missing) > 0 {
		t.Fatalf("%s: %d of %d programs reported a new pid within %v (missing %v)", who, len(addrs)-len(missing), len(addrs), harness.StartGuard, missing)
	}
	for _, a := range addrs { // not timed: the report was the truth
		if p := pidAt(a); p != got[a] {
			t.Fatalf("%s: %s answers with pid %q, but pid %s reported it listens there", who, a, p, got[a])
		}
	}
	return got, last
}

func benchSupervisord(t *tb, o options) *supervisorMatch {
	sd, err := exec.LookPath("supervisord")
	if err != nil {
		t.Fatalf("supervisord not found (scripts/test-deps.sh installs Debian's supervisor): %v", err)
	}
	ctl, err := exec.LookPath("supervisorctl")
	if err != nil {
		t.Fatalf("supervisorctl not found: %v", err)
	}
	dir, err := os.MkdirTemp("", "rouse-bench-pidlisten")
	if err != nil {
		t.Fatalf("temp: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	helper, err := buildCommand(dir, "./tests/bench/pidlisten")
	if err != nil {
		t.Fatalf("%v", err)
	}
	// supervisord's programs carry their own marker: rouse's are checked
	// for survivors when its agent stops, supervisord's must not count.
	marker, svMarker := harness.NewMarker(), harness.NewMarker()
	t.Cleanup(func() {
		for _, p := range harness.Survivors(svMarker) {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	})
	// Ports below the ephemeral range: a client socket (a readiness
	// check, a report) could otherwise hold a program's port in the
	// instant it restarts.
	used := map[string]bool{}
	addrs := func() []string {
		var as []string
		for len(as) < o.Programs {
			a := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(10000))
			if used[a] {
				continue
			}
			l, err := net.Listen("tcp", a)
			if err != nil {
				continue
			}
			l.Close()
			used[a] = true
			as = append(as, a)
		}
		return as
	}

	// The three start at once, and stop at once: only the restarts are
	// measured, one after the other.
	var stopMu sync.Mutex
	var stops []func()
	atStop := func(f func()) {
		stopMu.Lock()
		stops = append(stops, f)
		stopMu.Unlock()
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, f := range stops {
			wg.Go(f)
		}
		wg.Wait()
	})
	sAddrs, rAddrs, pAddrs := addrs(), addrs(), addrs()
	ls := newListening(t)
	var (
		conf, supLog func() string
		sPids, rPids map[string]string
		ag           *harness.Agent
		pm           *pm2
	)
	parallel(t,
		func() { conf, supLog, sPids = startSupervisord(t, ls, sd, helper, sAddrs, svMarker, atStop) },
		func() {
			var cfg strings.Builder
			cfg.WriteString("scheduler: {enabled: false}\ntrackers:\n")
			for i, a := range rAddrs {
				fmt.Fprintf(&cfg, "  - name: p%02d\n    kind: exec\n    command: %s\n    env: %s\n    ready: {tcp: %q}\n    restart_on_wake: true\n",
					i, harness.YAMLList(helperArgv(helper, a, marker, ls.addr())), harness.ExecEnv(marker), a)
			}
			p := harness.NewPower(t, false)
			ag = harness.Start(t, o.RouseBin, harness.Options{Config: cfg.String(), BusAddr: p.Addr(), Marker: marker})
			atStop(ag.Stop)
			waitLastWake(t, ag.Client)
			rPids, _ = ls.waitNewPids(t, "rouse", rAddrs, nil, time.Now())
		},
		func() { pm = startPM2(t, ls, helper, pAddrs, svMarker, atStop) },
	)

	m := &supervisorMatch{Programs: o.Programs}
	var sd1, rd1, pd1, cpu, done []time.Duration
	for range o.SupervisorRuns {
		t0 := time.Now()
		out, err := exec.Command(ctl, "-c", conf(), "restart", "all").CombinedOutput()
		if err != nil {
			t.Fatalf("supervisorctl restart all: %v: %s\n%s", err, out, supLog())
		}
		var d time.Duration
		sPids, d = ls.waitNewPids(t, "supervisord", sAddrs, sPids, t0)
		sd1 = append(sd1, d)

		var cpu0 int64
		t0, doneAt, w := wakeAndFollow(t, ag.Client, func() { cpu0 = procCPUns(t, ag.Pid()) })
		cpu = append(cpu, time.Duration(procCPUns(t, ag.Pid())-cpu0))
		if w.Restore.Ready != o.Programs {
			t.Fatalf("wake %d: %d of %d programs ready", w.ID, w.Restore.Ready, o.Programs)
		}
		rPids, d = ls.waitNewPids(t, "rouse", rAddrs, rPids, t0)
		rd1 = append(rd1, d)
		done = append(done, doneAt.Sub(t0))

		pd1 = append(pd1, pm.restartAll(t))
	}
	for i := range sd1 {
		m.SupervisordRun = append(m.SupervisordRun, ms(sd1[i]))
		m.RouseRuns = append(m.RouseRuns, ms(rd1[i]))
		m.RouseCPURuns = append(m.RouseCPURuns, ms(cpu[i]))
		m.RouseDoneRuns = append(m.RouseDoneRuns, ms(done[i]))
		m.PM2Runs = append(m.PM2Runs, ms(pd1[i]))
	}
	m.SupervisordMS, m.RouseMS, m.PM2MS = ms(median(sd1)), ms(median(rd1)), ms(median(pd1))
	m.RouseCPUMS = ms(median(cpu))
	m.RouseDoneMS = ms(median(done))
	m.Ratio = round2(float64(median(sd1)) / float64(median(rd1)))
	m.PM2Ratio = round2(float64(median(pd1)) / float64(median(rd1)))
	return m
}

// startSupervisord runs supervisord over the programs on addrs and waits
// until they all answer; conf is its config file, supLog what it said.
func startSupervisord(t *tb, ls *listening, sd, helper string, addrs []string, marker string, atStop func(func())) (conf, supLog func() string, pids map[string]string) {
	dir, err := os.MkdirTemp("", "sv") // short: the control socket path is bounded
	if err != nil {
		t.Fatalf("temp: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	file := filepath.Join(dir, "supervisord.conf")
	var b strings.Builder
	fmt.Fprintf(&b, "[unix_http_server]\nfile=%s/s.sock\n\n[supervisord]\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\nchildlogdir=%s\nnodaemon=true\nloglevel=warn\n\n", dir, dir, dir, dir)
	fmt.Fprintf(&b, "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n[supervisorctl]\nserverurl=unix://%s/s.sock\n\n", dir)
	for i, a := range addrs {
		fmt.Fprintf(&b, "[program:p%02d]\ncommand=%s\nstartsecs=0\nautorestart=false\nstopwaitsecs=5\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n", i, strings.Join(helperArgv(helper, a, marker, ls.addr()), " "))
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("conf: %v", err)
	}
	sup := exec.Command(sd, "-c", file)
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var mu sync.Mutex
	var log strings.Builder
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return log.Write(p)
	})
	sup.Stdout, sup.Stderr = w, w
	if err := sup.Start(); err != nil {
		t.Fatalf("start supervisord: %v", err)
	}
	supDone := make(chan struct{})
	go func() { _ = sup.Wait(); close(supDone) }()
	atStop(func() {
		_ = sup.Process.Signal(syscall.SIGTERM)
		select {
		case <-supDone:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-sup.Process.Pid, syscall.SIGKILL)
			<-supDone
		}
	})
	pids, _ = ls.waitNewPids(t, "supervisord", addrs, nil, time.Now())
	return func() string { return file }, func() string {
		mu.Lock()
		defer mu.Unlock()
		return log.String()
	}, pids
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// parallel runs fs at once and waits for them all; a Fatal in one aborts
// the benchmark once they have all returned.
func parallel(t *tb, fs ...func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var abort any
	for _, f := range fs {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					if abort == nil {
						abort = p
					}
					mu.Unlock()
				}
			}()
			f()
		})
	}
	wg.Wait()
	if abort != nil {
		panic(abort)
	}
}

// pm2 runs a private pm2 daemon (its own PM2_HOME) over the programs.
type pm2 struct {
	ls    *listening
	bin   string
	env   []string
	addrs []string
	pids  map[string]string
}

func startPM2(t *tb, ls *listening, helper string, addrs []string, marker string, atStop func(func())) *pm2 {
	bin, err := exec.LookPath("pm2")
	if err != nil {
		t.Fatalf("pm2 not found (scripts/test-deps.sh installs it with npm): %v", err)
	}
	home, err := os.MkdirTemp("", "pm2")
	if err != nil {
		t.Fatalf("temp: %v", err)
	}
	p := &pm2{ls: ls, bin: bin, env: append(os.Environ(), "PM2_HOME="+home), addrs: addrs}
	atStop(func() {
		_, _ = p.run("kill") // the daemon and its programs
		_ = os.RemoveAll(home)
	})
	type app struct {
		Name        string   `json:"name"`
		Script      string   `json:"script"`
		Args        []string `json:"args"`
		Interpreter string   `json:"interpreter"`
		Autorestart bool     `json:"autorestart"`
		KillTimeout int      `json:"kill_timeout"`
	}
	var eco struct {
		Apps []app `json:"apps"`
	}
	for i, a := range addrs {
		argv := helperArgv(helper, a, marker, ls.addr())
		eco.Apps = append(eco.Apps, app{Name: fmt.Sprintf("p%02d", i), Script: argv[0], Args: argv[1:],
			Interpreter: "none", KillTimeout: 5000})
	}
	b, err := json.Marshal(eco)
	if err != nil {
		t.Fatalf("ecosystem: %v", err)
	}
	file := filepath.Join(home, "ecosystem.config.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatalf("ecosystem: %v", err)
	}
	if out, err := p.run("start", file); err != nil {
		t.Fatalf("pm2 start: %v\n%s", err, out)
	}
	p.pids, _ = ls.waitNewPids(t, "pm2", addrs, nil, time.Now())
	return p
}

func (p *pm2) run(args ...string) ([]byte, error) {
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env
	return cmd.CombinedOutput()
}

// restartAll times `pm2 restart all` until every port answers anew.
func (p *pm2) restartAll(t *tb) time.Duration {
	t0 := time.Now()
	if out, err := p.run("restart", "all"); err != nil {
		t.Fatalf("pm2 restart all: %v\n%s", err, out)
	}
	var d time.Duration
	p.pids, d = p.ls.waitNewPids(t, "pm2", p.addrs, p.pids, t0)
	return d
}

func printSupervisord(w io.Writer, m *supervisorMatch) {
	fmt.Fprintf(w, "5. Restart everything: %d programs that need %v before they accept, to all ports answering anew\n", m.Programs, programDelay)
	fmt.Fprintf(w, "   supervisorctl restart all   %8.1f ms  (runs %v)\n", m.SupervisordMS, m.SupervisordRun)
	fmt.Fprintf(w, "   pm2 restart all             %8.1f ms  (runs %v)\n", m.PM2MS, m.PM2Runs)
	fmt.Fprintf(w, "   rouse POST /api/v1/wake     %8.1f ms  (runs %v)\n", m.RouseMS, m.RouseRuns)
	fmt.Fprintf(w, "     to the wake's done event  %8.1f ms  (runs %v; all %d marked ready)\n", m.RouseDoneMS, m.RouseDoneRuns, m.Programs)
	fmt.Fprintf(w, "     the agent's own CPU       %8.1f ms  (runs %v; wake request to its done event)\n", m.RouseCPUMS, m.RouseCPURuns)
	fmt.Fprintf(w, "   supervisord / rouse         %8.2f×\n", m.Ratio)
	fmt.Fprintf(w, "   pm2 / rouse                 %8.2f×\n\n", m.PM2Ratio)
}
