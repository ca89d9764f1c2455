//go:build linux

// Command bench measures rouse side by side with the approaches people use
// today, in one run, and prints one table per measurement followed by a
// final line holding every result as JSON:
//
//	go run ./tests/bench                 # the full run (about 5 minutes)
//	go run ./tests/bench -quick          # tiny sizes, a smoke run (CI)
//	go run ./tests/bench -only restore,idle -idle 60s
//
// The measurements, and how each is made (BENCHMARKS.md holds the results):
//
//  1. restore: all-ready time over the critical path for N components in a
//     DAG with known start latencies, for rouse and for two reference
//     strategies over the same latencies (see restore.go).
//  2. storm: GET /api/v1/health latency under a steady loopback load while
//     1,000 components restore.
//  3. cold: process start to the first 200 on /healthz with 1,000
//     components configured and a 50 MB store.
//  4. idle: CPU time, wakeups (context switches) per minute and RSS of an
//     idle agent, with the embedded default and with 50 components.
//  5. supervisord: 50 programs needing ~200 ms before they accept; time to
//     all ports accepting after "supervisorctl restart all" and after a
//     rouse wake.
//  6. presleep: PrepareForSleep(true) to the inhibitor lock's release, on a
//     50 MB store with a busy writer, against logind's 5 s.
//
// The rouse binary is built from this checkout as the packages build it
// (CGO_ENABLED=0, -trimpath, -ldflags=-s -w: packaging/main.go) unless
// -rouse names one: the memory measured is that of the binary users get.
// Helper processes (the programs supervised in 5.) are this program run
// again with a helper flag.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// options select what runs and how big.
type options struct {
	Ns             []int         // restore sizes
	RestoreRuns    int           // wakes measured per size
	StormN         int           // components restoring during the storm
	StormIdle      time.Duration // the storm's load on the idle agent
	ColdN          int           // components configured for the cold start
	ColdRuns       int           // cold starts measured
	StoreMB        int           // store size for cold start and pre-sleep
	Idle           time.Duration // idle measurement window
	IdleSettle     time.Duration // wait after the boot restore before it (see defaultOptions)
	Programs       int           // supervisord/pm2 comparison size
	SupervisorRuns int           // restarts of each
	Cycles         int           // pre-sleep repetitions
	PreSleepSettle time.Duration // before each: the writers are busy again
	StormRuns      int           // wakes with and without the health load
	Parallel       bool          // run the benchmarks at once (the smoke run: its figures are no claim)
	Only           map[string]bool
	RouseBin       string
	ProbeSeed      uint64
}

// idleSettle is how long the idle step waits after the boot restore before
// its window opens. A restore arms a deadline for every component and
// every first request (10 s by default) and stops each once it is met; the
// runtime keeps a stopped timer in its heap until its time comes, so 10 s
// after the boot the runtime's threads wake once for them all (a perf
// trace of the 50-component agent: 46 context switches at boot + 10 s,
// nearly all the runtime's sysmon, then ~25 a minute). That is the boot's
// after-effect, once per boot or wake, not the idle cost: the window opens
// after it.
const idleSettle = 15 * time.Second

func defaultOptions() options {
	return options{Ns: []int{10, 100, 1000}, RestoreRuns: 3, StormN: 1000, StormIdle: 3 * time.Second,
		ColdN: 1000, ColdRuns: 5, StoreMB: 50, Idle: 15 * time.Second, IdleSettle: idleSettle,
		Programs: 50, SupervisorRuns: 3, Cycles: 5, PreSleepSettle: 3 * time.Second, StormRuns: 3, ProbeSeed: 1}
}

// quickOptions are the smoke run's tiny sizes.
func quickOptions() options {
	return options{Ns: []int{5}, RestoreRuns: 1, StormN: 50, StormIdle: 500 * time.Millisecond,
		ColdN: 20, ColdRuns: 2, StoreMB: 1, Idle: time.Second, IdleSettle: 200 * time.Millisecond,
		Programs: 3, SupervisorRuns: 1, Cycles: 1, PreSleepSettle: time.Second, StormRuns: 1, Parallel: true, ProbeSeed: 1}
}

// report is everything measured; it is the final JSON line.
type report struct {
	Machine     machine          `json:"machine"`
	Load        []stepLoad       `json:"load"`
	Goals       []goal           `json:"goals,omitempty"`
	Restore     []restoreResult  `json:"restore,omitempty"`
	Storm       *stormResult     `json:"storm,omitempty"`
	Cold        *coldResult      `json:"cold,omitempty"`
	Idle        []idleResult     `json:"idle,omitempty"`
	Supervisord *supervisorMatch `json:"supervisord,omitempty"`
	PreSleep    *preSleepResult  `json:"presleep,omitempty"`
	Errors      []string         `json:"errors,omitempty"`
}

func main() {
	harness.RunHelperIfAsked()
	runHelperIfAsked()
	o := defaultOptions()
	quick := flag.Bool("quick", false, "tiny sizes: a smoke run")
	ns := flag.String("n", "", "restore sizes, comma-separated (default 10,100,1000)")
	only := flag.String("only", "", "run only these: restore,storm,cold,idle,supervisord,presleep")
	idle := flag.Duration("idle", 0, "idle measurement window (default 15s; the long form is 60s)")
	bin := flag.String("rouse", "", "the rouse binary (default: build ./cmd/rouse)")
	flag.Parse()
	if *quick {
		o = quickOptions()
	}
	if *ns != "" {
		o.Ns = nil
		for _, s := range strings.Split(*ns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "bench: bad -n %q\n", *ns)
				os.Exit(2)
			}
			o.Ns = append(o.Ns, n)
		}
	}
	if *idle > 0 {
		o.Idle = *idle
	}
	if *only != "" {
		o.Only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			o.Only[strings.TrimSpace(s)] = true
		}
	}
	o.RouseBin = *bin
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r, err := run(o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if len(r.Errors) > 0 {
		os.Exit(1)
	}
}

// run measures what o selects, printing tables to w and the JSON line last.
func run(o options, w io.Writer) (*report, error) {
	r := &report{Machine: describeMachine()}
	printMachine(w, r.Machine)
	if o.RouseBin == "" {
		dir, err := os.MkdirTemp("", "rouse-bench-bin")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if o.RouseBin, err = buildRelease(dir); err != nil {
			return nil, err
		}
	}
	want := func(name string) bool { return o.Only == nil || o.Only[name] }
	var mu sync.Mutex // r.Errors, r.Load
	type stepOut struct {
		name string
		out  bytes.Buffer
	}
	var outs []*stepOut
	var wg sync.WaitGroup
	step := func(name string, f func(t *tb, w io.Writer)) {
		if !want(name) {
			return
		}
		so := &stepOut{name: name}
		outs = append(outs, so)
		body := func() {
			t := newTB(name)
			before, t0 := loadAvg(), time.Now()
			defer func() {
				l := stepLoad{Step: name, Before: before, After: loadAvg(), Seconds: round2(time.Since(t0).Seconds())}
				mu.Lock()
				r.Load = append(r.Load, l)
				mu.Unlock()
				fmt.Fprintf(&so.out, "   load average (1, 5, 15 min) before %s: %s, after: %s (%.1f s)\n\n", name, l.Before, l.After, l.Seconds)
			}()
			fail := func(msg string) {
				mu.Lock()
				defer mu.Unlock()
				r.Errors = append(r.Errors, name+": "+msg)
			}
			aborted := false
			func() {
				defer t.finish()
				defer func() {
					if p := recover(); p != nil {
						a, ok := p.(errAbort)
						if !ok {
							panic(fmt.Sprintf("%v\n%s", p, debug.Stack()))
						}
						msg := a.msg
						if len(msg) > 600 {
							msg = msg[:600] + "…"
						}
						aborted = true
						fail(msg)
					}
				}()
				f(t, &so.out)
			}()
			if t.Failed() && !aborted {
				fail("failed (see the log above)")
			}
		}
		if !o.Parallel {
			body()
			_, _ = w.Write(so.out.Bytes()) // as it goes: the full run is long
			so.out.Reset()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body()
		}()
	}
	step("restore", func(t *tb, w io.Writer) { r.Restore = benchRestore(t, o); printRestore(w, r.Restore) })
	step("storm", func(t *tb, w io.Writer) { r.Storm = benchStorm(t, o); printStorm(w, r.Storm) })
	step("idle", func(t *tb, w io.Writer) { r.Idle = benchIdle(t, o); printIdle(w, r.Idle) })
	step("supervisord", func(t *tb, w io.Writer) {
		r.Supervisord = benchSupervisord(t, o)
		printSupervisord(w, r.Supervisord)
	})
	step("presleep", func(t *tb, w io.Writer) { r.PreSleep = benchPreSleep(t, o); printPreSleep(w, r.PreSleep) })
	// Cold start last: it measures the newest boot path of the binary.
	step("cold", func(t *tb, w io.Writer) { r.Cold = benchCold(t, o); printCold(w, r.Cold) })
	wg.Wait()
	for _, so := range outs { // parallel: in order once all are done
		_, _ = w.Write(so.out.Bytes())
	}
	sort.SliceStable(r.Load, func(i, j int) bool { return stepIndex(r.Load[i].Step) < stepIndex(r.Load[j].Step) })
	r.Goals = goals(r)
	printGoals(w, r.Goals)
	for _, e := range r.Errors {
		fmt.Fprintln(w, "ERROR", e)
	}
	line, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	fmt.Fprintf(w, "%s\n", line)
	return r, nil
}

// machine is where the numbers came from.
type machine struct {
	CPUs     int    `json:"cpus"`
	Model    string `json:"model"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	GoOS     string `json:"goos"`
	GoArch   string `json:"goarch"`
	Go       string `json:"go"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoOS: runtime.GOOS, GoArch: runtime.GOARCH, Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				m.MemoryMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func printMachine(w io.Writer, m machine) {
	fmt.Fprintf(w, "machine: %d CPUs (%s), %d MB, Linux %s, %s %s/%s\n\n", m.CPUs, m.Model, m.MemoryMB, m.Kernel, m.Go, m.GoOS, m.GoArch)
}

// ms renders a duration in milliseconds with one decimal.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// round2 rounds to two decimals for the JSON line.
func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// quietLogger drops an in-process agent's log (ROUSE_BENCH_LOG=1 shows it).
func quietLogger() *slog.Logger {
	if os.Getenv("ROUSE_BENCH_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// stepLoad is the machine's load average around one benchmark: the
// machine is shared, and a figure means little without it.
type stepLoad struct {
	Step    string  `json:"step"`
	Before  string  `json:"before"`
	After   string  `json:"after"`
	Seconds float64 `json:"seconds"` // how long the step took
}

// loadAvg is /proc/loadavg's three averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// stepIndex orders the steps as the tables are numbered.
func stepIndex(name string) int {
	return slices.Index([]string{"restore", "storm", "cold", "idle", "supervisord", "presleep"}, name)
}

// buildRelease compiles ./cmd/rouse into dir as packaging/main.go does for
// the packages, and returns the binary's path.
func buildRelease(dir string) (string, error) { return buildCommand(dir, "./cmd/rouse") }

// buildCommand compiles the command pkg of this module into dir as a
// release is built (CGO_ENABLED=0, -trimpath, -ldflags=-s -w) and returns
// the binary's path.
func buildCommand(dir, pkg string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return bin, nil
}
