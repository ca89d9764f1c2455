//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// Benchmark 5: against supervisord. Programs (this program run again as
// "pidlisten") wait ~200 ms, then accept on their port and write their pid
// to each connection. Each side supervises the same number of them; the
// time measured is from "restart everything" — `supervisorctl restart all`
// for supervisord, POST /api/v1/wake for rouse (exec components with
// restart_on_wake: true) — until every port answers with a NEW pid, polled
// by this program every 2 ms for both. Three rounds each, alternating;
// the median is kept.

const (
	helperArg      = "-rouse-bench-helper"
	programDelay   = 200 * time.Millisecond
	supervisorRuns = 3
)

type supervisorMatch struct {
	Programs       int       `json:"programs"`
	SupervisordMS  float64   `json:"supervisord_ms"`
	RouseMS        float64   `json:"rouse_ms"`
	Ratio          float64   `json:"ratio_supervisord_over_rouse"`
	SupervisordRun []float64 `json:"supervisord_runs_ms"`
	RouseRuns      []float64 `json:"rouse_runs_ms"`
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
	if mode != "pidlisten" || len(args) < 2 {
		return fmt.Errorf("want pidlisten ADDR DELAY [MARKER], got %s %q", mode, args)
	}
	delay, err := time.ParseDuration(args[1])
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-time.After(delay):
	case <-term:
		return nil
	}
	var l net.Listener
	for range 200 { // the previous instance may hold the port a moment longer
		if l, err = net.Listen("tcp", args[0]); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%d\n", os.Getpid())
			c.Close()
		}
	}()
	<-term
	return l.Close()
}

func helperArgv(addr, marker string) []string {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return []string{self, helperArg, "pidlisten", addr, programDelay.String(), marker}
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

// waitNewPids polls every address until it answers with a pid other than
// old's (any pid when old is empty), and returns the pids and how long
// since t0 the last one took.
func waitNewPids(t *tb, who string, addrs []string, old map[string]string, t0 time.Time) (map[string]string, time.Duration) {
	var mu sync.Mutex
	got := map[string]string{}
	var last time.Duration
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(t0) < harness.StartGuard {
				if p := pidAt(a); p != "" && p != old[a] {
					mu.Lock()
					got[a] = p
					last = max(last, time.Since(t0))
					mu.Unlock()
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if len(got) != len(addrs) {
		var missing []string
		for _, a := range addrs {
			if got[a] == "" {
				missing = append(missing, a)
			}
		}
		t.Fatalf("%s: %d of %d programs answered with a new pid within %v (missing %v)", who, len(got), len(addrs), harness.StartGuard, missing)
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
	// supervisord's programs carry their own marker: rouse's are checked
	// for survivors when its agent stops, supervisord's must not count.
	marker, svMarker := harness.NewMarker(), harness.NewMarker()
	t.Cleanup(func() {
		for _, p := range harness.Survivors(svMarker) {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	})
	// Ports below the ephemeral range: the 2 ms polling opens thousands
	// of client sockets, and one of them could hold a program's port in
	// the instant it restarts.
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

	// supervisord
	sAddrs := addrs()
	dir, err := os.MkdirTemp("", "sv") // short: the control socket path is bounded
	if err != nil {
		t.Fatalf("temp: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	conf := filepath.Join(dir, "supervisord.conf")
	var b strings.Builder
	fmt.Fprintf(&b, "[unix_http_server]\nfile=%s/s.sock\n\n[supervisord]\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\nchildlogdir=%s\nnodaemon=true\nloglevel=warn\n\n", dir, dir, dir, dir)
	fmt.Fprintf(&b, "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n[supervisorctl]\nserverurl=unix://%s/s.sock\n\n", dir)
	for i, a := range sAddrs {
		fmt.Fprintf(&b, "[program:p%02d]\ncommand=%s\nstartsecs=0\nautorestart=false\nstopwaitsecs=5\nstdout_logfile=NONE\nstderr_logfile=NONE\n\n", i, strings.Join(helperArgv(a, svMarker), " "))
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("conf: %v", err)
	}
	sup := exec.Command(sd, "-c", conf)
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var supLog strings.Builder
	sup.Stdout, sup.Stderr = &supLog, &supLog
	if err := sup.Start(); err != nil {
		t.Fatalf("start supervisord: %v", err)
	}
	supDone := make(chan struct{})
	go func() { _ = sup.Wait(); close(supDone) }()
	t.Cleanup(func() {
		_ = sup.Process.Signal(syscall.SIGTERM)
		select {
		case <-supDone:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-sup.Process.Pid, syscall.SIGKILL)
			<-supDone
		}
	})
	sPids, _ := waitNewPids(t, "supervisord", sAddrs, nil, time.Now())

	// rouse
	rAddrs := addrs()
	var cfg strings.Builder
	cfg.WriteString("scheduler: {enabled: false}\ntrackers:\n")
	for i, a := range rAddrs {
		fmt.Fprintf(&cfg, "  - name: p%02d\n    kind: exec\n    command: %s\n    env: %s\n    ready: {tcp: %q}\n    restart_on_wake: true\n",
			i, harness.YAMLList(helperArgv(a, marker)), harness.ExecEnv(marker), a)
	}
	p := harness.NewPower(t, false)
	ag := harness.Start(t, o.RouseBin, harness.Options{Config: cfg.String(), BusAddr: p.Addr(), Marker: marker})
	defer ag.Stop()
	waitLastWake(t, ag.Client)
	rPids, _ := waitNewPids(t, "rouse", rAddrs, nil, time.Now())

	m := &supervisorMatch{Programs: o.Programs}
	var sd1, rd1 []time.Duration
	for range supervisorRuns {
		t0 := time.Now()
		out, err := exec.Command(ctl, "-c", conf, "restart", "all").CombinedOutput()
		if err != nil {
			t.Fatalf("supervisorctl restart all: %v: %s\n%s", err, out, supLog.String())
		}
		var d time.Duration
		sPids, d = waitNewPids(t, "supervisord", sAddrs, sPids, t0)
		sd1 = append(sd1, d)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t0 = time.Now()
		w, err := ag.Client.Wake(ctx)
		cancel()
		if err != nil {
			t.Fatalf("wake: %v", err)
		}
		rPids, d = waitNewPids(t, "rouse", rAddrs, rPids, t0)
		rd1 = append(rd1, d)
		ag.WaitWakeDone(harness.StartGuard, w.ID)
	}
	for i := range sd1 {
		m.SupervisordRun = append(m.SupervisordRun, ms(sd1[i]))
		m.RouseRuns = append(m.RouseRuns, ms(rd1[i]))
	}
	m.SupervisordMS, m.RouseMS = ms(median(sd1)), ms(median(rd1))
	m.Ratio = round2(float64(median(sd1)) / float64(median(rd1)))
	return m
}

func printSupervisord(w io.Writer, m *supervisorMatch) {
	fmt.Fprintf(w, "5. Restart everything: %d programs that need %v before they accept, to all ports answering anew\n", m.Programs, programDelay)
	fmt.Fprintf(w, "   supervisorctl restart all   %8.1f ms  (runs %v)\n", m.SupervisordMS, m.SupervisordRun)
	fmt.Fprintf(w, "   rouse POST /api/v1/wake     %8.1f ms  (runs %v)\n", m.RouseMS, m.RouseRuns)
	fmt.Fprintf(w, "   supervisord / rouse         %8.2f×\n\n", m.Ratio)
}
