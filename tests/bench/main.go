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
// The rouse binary is built from this checkout unless -rouse names one.
// Helper processes (the programs supervised in 5.) are this program run
// again with a helper flag.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// options select what runs and how big.
type options struct {
	Ns        []int         // restore sizes
	StormN    int           // components restoring during the storm
	ColdN     int           // components configured for the cold start
	StoreMB   int           // store size for cold start and pre-sleep
	Idle      time.Duration // idle measurement window
	Programs  int           // supervisord comparison size
	Cycles    int           // pre-sleep repetitions
	Only      map[string]bool
	RouseBin  string
	ProbeSeed uint64
}

func defaultOptions() options {
	return options{Ns: []int{10, 100, 1000}, StormN: 1000, ColdN: 1000, StoreMB: 50,
		Idle: 15 * time.Second, Programs: 50, Cycles: 5, ProbeSeed: 1}
}

// quickOptions are the smoke run's tiny sizes.
func quickOptions() options {
	return options{Ns: []int{5, 20}, StormN: 50, ColdN: 20, StoreMB: 1,
		Idle: 2 * time.Second, Programs: 5, Cycles: 1, ProbeSeed: 1}
}

// report is everything measured; it is the final JSON line.
type report struct {
	Machine     machine          `json:"machine"`
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
		if o.RouseBin, err = harness.Build(dir); err != nil {
			return nil, err
		}
	}
	want := func(name string) bool { return o.Only == nil || o.Only[name] }
	step := func(name string, f func(t *tb)) {
		if !want(name) {
			return
		}
		t := newTB(name)
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
					r.Errors = append(r.Errors, name+": "+msg)
				}
			}()
			f(t)
		}()
		if t.Failed() && (len(r.Errors) == 0 || !strings.HasPrefix(r.Errors[len(r.Errors)-1], name+":")) {
			r.Errors = append(r.Errors, name+": failed (see the log above)")
		}
	}
	step("restore", func(t *tb) { r.Restore = benchRestore(t, o); printRestore(w, r.Restore) })
	step("storm", func(t *tb) { r.Storm = benchStorm(t, o); printStorm(w, r.Storm) })
	step("cold", func(t *tb) { r.Cold = benchCold(t, o); printCold(w, r.Cold) })
	step("idle", func(t *tb) { r.Idle = benchIdle(t, o); printIdle(w, r.Idle) })
	step("supervisord", func(t *tb) { r.Supervisord = benchSupervisord(t, o); printSupervisord(w, r.Supervisord) })
	step("presleep", func(t *tb) { r.PreSleep = benchPreSleep(t, o); printPreSleep(w, r.PreSleep) })
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
