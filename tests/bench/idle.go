//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// Benchmark 4: idle cost. The real binary runs (on a private bus with a
// fake logind, so it holds its inhibitor lock as it would on a laptop);
// once its boot restore is done and 2 s have passed, CPU time
// (schedstat of every thread, in ns), context switches (voluntary and
// involuntary, summed over /proc/PID/task/*/status: every one is a wakeup
// of some thread) and RSS are read, and again after the window.
//
// Configs: the embedded default (store, scheduler with its maintenance
// job, the network tracker), and 50 components: 25 exec (sleep 3600,
// ready after 1 s) and 25 http trackers polling a local server every 60 s.
// Beside them, a reference (idleBare): a bare Go program doing only those
// 25 polls, measured the same way.

type idleResult struct {
	Config           string  `json:"config"`
	WindowS          float64 `json:"window_s"`
	CPUMSPerMin      float64 `json:"cpu_ms_per_min"`
	WakeupsPerMin    float64 `json:"wakeups_per_min"`
	RSSMB            float64 `json:"rss_mb"`
	RSSAnonMB        float64 `json:"rss_anon_mb"` // of which anonymous (heap, stacks)
	RSSFileMB        float64 `json:"rss_file_mb"` // of which the binary's pages (shared page cache)
	ThreadsAtTheEnd  int     `json:"threads"`
	ChildrenExcluded bool    `json:"children_excluded"`
}

// The idle configs' names.
const (
	idleDefault = "embedded default"
	idleFifty   = "50 components"
	idleBareGo  = "bare Go, 25 polls"
)

func benchIdle(t *tb, o options) []idleResult {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(srv.Close)
	var fifty strings.Builder
	fifty.WriteString("trackers:\n")
	for i := range 25 {
		fmt.Fprintf(&fifty, "  - {name: exec%02d, kind: exec, command: [sleep, \"3600\"]}\n", i)
	}
	for i := range 25 {
		fmt.Fprintf(&fifty, "  - {name: http%02d, kind: http, url: \"%s/items\", interval: 60s, needs_network: false, cursor: {from: none}}\n", i, srv.URL)
	}
	return []idleResult{
		idleOnce(t, o, idleDefault, string(config.DefaultYAML)),
		idleOnce(t, o, idleFifty, fifty.String()),
		idleBare(t, o, srv.URL+"/items"),
	}
}

// idleBare measures, as idleOnce measures the agent, a bare Go program
// (this one as a helper, in a process of its own) that does only what the
// 50-component agent does each minute: 25 GETs of url, each from its own
// goroutine with its own client and kept-alive connection, all due at the
// same instant, every 60 s, each body read to its end: what those polls
// cost a plain Go program written the obvious way, with no agent around
// them, beside the 50-component row.
func idleBare(t *tb, o options, url string) idleResult {
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("idle, bare Go: %v", err)
	}
	cmd := exec.Command(self, helperArg, "polls", url, "25", "60s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("idle, bare Go: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	r := idleWindow(t, o, cmd.Process.Pid)
	r.Config = idleBareGo
	return r
}

// barePolls is idleBare's program: URL N INTERVAL. It polls at
// once, as the trackers do when they start, then every INTERVAL on the
// same instants, until killed.
func barePolls(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("want polls URL N INTERVAL, got %q", args)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		return fmt.Errorf("polls: bad N %q", args[1])
	}
	every, err := time.ParseDuration(args[2])
	if err != nil || every <= 0 {
		return fmt.Errorf("polls: bad INTERVAL %q", args[2])
	}
	start := time.Now()
	errs := make(chan error, n)
	for range n {
		c := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: 10 * time.Second}
		go func() {
			for k := 0; ; k++ {
				time.Sleep(time.Until(start.Add(time.Duration(k) * every)))
				resp, err := c.Get(args[0])
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	return <-errs
}

func idleOnce(t *tb, o options, name, cfg string) idleResult {
	p := harness.NewPower(t, true)
	a := harness.Start(t, o.RouseBin, harness.Options{Config: cfg, BusAddr: p.Addr()})
	defer a.Stop()
	waitLastWake(t, a.Client)
	a.Client.Close()
	r := idleWindow(t, o, a.Pid())
	r.Config, r.ChildrenExcluded = name, true
	return r
}

// idleWindow waits o.IdleSettle, then measures process pid over o.Idle:
// its threads' CPU time and context switches per minute, and its memory
// and threads at the end.
func idleWindow(t *tb, o options, pid int) idleResult {
	time.Sleep(o.IdleSettle)
	cpu0, sw0 := procCPUns(t, pid), procSwitches(t, pid)
	t0 := time.Now()
	time.Sleep(o.Idle)
	cpu1, sw1 := procCPUns(t, pid), procSwitches(t, pid)
	win := time.Since(t0)
	perMin := func(v float64) float64 { return round2(v * float64(time.Minute) / float64(win)) }
	threads, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	return idleResult{WindowS: round2(win.Seconds()),
		CPUMSPerMin: perMin(float64(cpu1-cpu0) / 1e6), WakeupsPerMin: perMin(float64(sw1 - sw0)),
		RSSMB:     round2(float64(procStatusKB(t, pid, "VmRSS")) / 1024),
		RSSAnonMB: round2(float64(procStatusKB(t, pid, "RssAnon")) / 1024),
		RSSFileMB: round2(float64(procStatusKB(t, pid, "RssFile")) / 1024), ThreadsAtTheEnd: len(threads)}
}

// procSwitches sums the context switches of every thread of pid.
func procSwitches(t *tb, pid int) int64 {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("tasks: %v", err)
	}
	var n int64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue // the thread just ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, k := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
				if v, ok := strings.CutPrefix(line, k); ok {
					x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					n += x
				}
			}
		}
	}
	return n
}

// procStatusKB reads a "kB" field of /proc/PID/status.
func procStatusKB(t *tb, pid int, key string) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			x, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return x
		}
	}
	return 0
}

func printIdle(w io.Writer, rs []idleResult) {
	fmt.Fprintln(w, "4. Idle cost of the agent process (children excluded)")
	fmt.Fprintf(w, "%-18s %8s %13s %15s %8s %9s %9s %8s\n", "config", "window", "CPU ms/min", "wakeups/min", "RSS MB", "anon MB", "file MB", "threads")
	for _, r := range rs {
		fmt.Fprintf(w, "%-18s %7.0fs %13.2f %15.1f %8.1f %9.1f %9.1f %8d\n", r.Config, r.WindowS, r.CPUMSPerMin, r.WakeupsPerMin, r.RSSMB, r.RSSAnonMB, r.RSSFileMB, r.ThreadsAtTheEnd)
	}
	fmt.Fprintln(w)
}
