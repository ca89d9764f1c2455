//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/wire"
)

// Benchmark 1: restore against the critical path.
//
// A DAG of N components with known start latencies (10–100 ms, what a
// connect and handshake cost; up to three required dependencies each among
// the 50 components before it) is restored by:
//
//   - rouse, in-process: agent.New with the real store and REST API, over
//     components of a bench-only kind whose Run waits its latency and
//     reports ready (the instant is taken in the component, so this is the
//     orchestrator's own overhead, free of process and network costs).
//   - rouse, the real binary: every component an http tracker polling a
//     local server that answers after the component's latency; ready when
//     that first poll is stored. The all-ready time is the wake record's
//     restore duration. (Exec components would cost one process each: at
//     N = 1,000 on a 2-core machine that measures fork/exec, not the
//     scheduler; the supervisord benchmark covers exec components.)
//   - sequential with a per-component timeout (10 s, never reached here):
//     one after the other in a topological order — what a simple app does.
//   - start-order groups: topological levels, each group started when the
//     slowest member of the one before is ready.
//
// The two reference strategies are computed exactly from the latencies
// with zero overhead, which only flatters them.

// dag is one synthetic graph.
type dag struct {
	names    []string
	latency  []time.Duration
	requires [][]int
}

func makeDAG(n int, seed uint64) dag {
	rng := rand.New(rand.NewPCG(seed, 2))
	g := dag{names: make([]string, n), latency: make([]time.Duration, n), requires: make([][]int, n)}
	for i := range n {
		g.names[i] = fmt.Sprintf("c%04d", i)
		g.latency[i] = 10*time.Millisecond + time.Duration(rng.Int64N(int64(90*time.Millisecond)))
		if i > 0 {
			for range rng.IntN(4) {
				d := max(0, i-1-rng.IntN(min(i, 50)))
				if !slices.Contains(g.requires[i], d) {
					g.requires[i] = append(g.requires[i], d)
				}
			}
		}
	}
	return g
}

// criticalPath is the longest chain of latencies; hops its length.
func (g dag) criticalPath() (d time.Duration, hops int) {
	finish := make([]time.Duration, len(g.names))
	depth := make([]int, len(g.names))
	for i := range g.names {
		var start time.Duration
		for _, r := range g.requires[i] {
			if finish[r] > start || (finish[r] == start && depth[r]+1 > depth[i]) {
				start, depth[i] = finish[r], depth[r]
			}
		}
		depth[i]++
		finish[i] = start + g.latency[i]
		if finish[i] > d {
			d, hops = finish[i], depth[i]
		}
	}
	return d, hops
}

// sequential: one at a time, each bounded by timeout.
func (g dag) sequential(timeout time.Duration) time.Duration {
	var total time.Duration
	for _, l := range g.latency {
		total += min(l, timeout)
	}
	return total
}

// groups: topological levels, each waiting for its slowest member.
func (g dag) groups() time.Duration {
	level := make([]int, len(g.names))
	slowest := map[int]time.Duration{}
	for i := range g.names {
		for _, r := range g.requires[i] {
			level[i] = max(level[i], level[r]+1)
		}
		slowest[level[i]] = max(slowest[level[i]], g.latency[i])
	}
	var total time.Duration
	for _, d := range slowest {
		total += d
	}
	return total
}

// yamlDeps renders component i's depends_on.
func (g dag) yamlDeps(i int) string {
	if len(g.requires[i]) == 0 {
		return ""
	}
	var ds []string
	for _, r := range g.requires[i] {
		ds = append(ds, g.names[r])
	}
	return "\n    depends_on: [" + strings.Join(ds, ", ") + "]"
}

type restoreResult struct {
	N                 int     `json:"n"`
	CriticalPathMS    float64 `json:"critical_path_ms"`
	CriticalPathHops  int     `json:"critical_path_hops"`
	InProcessMS       float64 `json:"rouse_inprocess_ms"`
	InProcessRatio    float64 `json:"rouse_inprocess_ratio"`
	BinaryMS          float64 `json:"rouse_binary_ms"`
	BinaryRatio       float64 `json:"rouse_binary_ratio"`
	SequentialMS      float64 `json:"sequential_ms"`
	SequentialRatio   float64 `json:"sequential_ratio"`
	GroupsMS          float64 `json:"groups_ms"`
	GroupsRatio       float64 `json:"groups_ratio"`
	InProcessRuns     int     `json:"runs"`
	InProcessWorstRat float64 `json:"rouse_inprocess_worst_ratio"`
}

func benchRestore(t *tb, o options) []restoreResult {
	var out []restoreResult
	for _, n := range o.Ns {
		g := makeDAG(n, o.ProbeSeed)
		crit, hops := g.criticalPath()
		r := restoreResult{N: n, CriticalPathMS: ms(crit), CriticalPathHops: hops, InProcessRuns: o.RestoreRuns}
		in := inProcessRestore(t, g, o.RestoreRuns)
		r.InProcessMS = ms(median(in))
		r.InProcessRatio = round2(float64(median(in)) / float64(crit))
		r.InProcessWorstRat = round2(float64(slices.Max(in)) / float64(crit))
		bin := binaryRestore(t, o, g, o.RestoreRuns)
		r.BinaryMS = ms(median(bin))
		r.BinaryRatio = round2(float64(median(bin)) / float64(crit))
		r.SequentialMS = ms(g.sequential(10 * time.Second))
		r.SequentialRatio = round2(float64(g.sequential(10*time.Second)) / float64(crit))
		r.GroupsMS = ms(g.groups())
		r.GroupsRatio = round2(float64(g.groups()) / float64(crit))
		out = append(out, r)
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func printRestore(w io.Writer, rs []restoreResult) {
	fmt.Fprintln(w, "1. Restore vs. the critical path (all-ready / critical path; goal ≤ 1.02)")
	fmt.Fprintf(w, "%7s %9s %5s | %22s | %22s | %22s | %22s\n", "N", "crit ms", "hops",
		"rouse in-process", "rouse binary (http)", "sequential", "start-order groups")
	for _, r := range rs {
		fmt.Fprintf(w, "%7d %9.1f %5d | %11.1f ms %6.3f× | %11.1f ms %6.3f× | %11.1f ms %6.2f× | %11.1f ms %6.2f×\n",
			r.N, r.CriticalPathMS, r.CriticalPathHops, r.InProcessMS, r.InProcessRatio, r.BinaryMS, r.BinaryRatio,
			r.SequentialMS, r.SequentialRatio, r.GroupsMS, r.GroupsRatio)
	}
	fmt.Fprintln(w)
}

// --- in-process ---

// probeKind is the bench-only component kind: Run waits its latency,
// reports ready and records when.
const probeKind = "benchprobe"

type probeOptions struct {
	Latency time.Duration `yaml:"latency"`
}

// probeReady records each probe's last ready instant (unix ns) by name.
var probeReady sync.Map

type probe struct {
	name    string
	latency time.Duration
}

func (p *probe) Run(ctx context.Context, h trackers.Host) error {
	h.Report(trackers.StateStarting, nil)
	select {
	case <-time.After(p.latency):
	case <-ctx.Done():
		return nil
	}
	probeReady.Store(p.name, time.Now().UnixNano())
	h.Report(trackers.StateReady, nil)
	<-ctx.Done()
	return nil
}

// probeKinds is the only kind the in-process agent is given.
var probeKinds = trackers.NewKinds(trackers.Kind{
	Name:       probeKind,
	NewOptions: func() any { return &probeOptions{} },
	New: func(opts any, deps trackers.Deps) (trackers.Component, error) {
		return &probe{name: deps.Name, latency: opts.(*probeOptions).Latency}, nil
	},
})

// probeConfig is the YAML config of g as probe components.
func probeConfig(g dag) string {
	var b strings.Builder
	b.WriteString("deadlines: {tracker: 60s, wake: 10m}\nscheduler: {enabled: false}\nlog: {level: warn}\ntrackers:\n")
	for i, name := range g.names {
		fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n    latency: %s%s\n", name, probeKind, g.latency[i], g.yamlDeps(i))
	}
	return b.String()
}

// inProc is an agent run in this process.
type inProc struct {
	c    *client.Client
	stop func()
}

// startInProcess runs agent.New on cfgYAML with a fresh data directory
// and waits until its first restore is done.
func startInProcess(t *tb, cfgYAML string) *inProc {
	cfg, err := config.Parse("bench.yaml", []byte(cfgYAML), probeKinds)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	dir := t.TempDir()
	listen := harness.FreeAddr(t)
	a, err := agent.New(agent.Options{Config: cfg, Kinds: probeKinds, DataDir: filepath.Join(dir, "data"), Listen: listen,
		Logger: quietLogger(), Version: "bench"})
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	p := &inProc{stop: func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("in-process agent: %v", err)
				}
			case <-time.After(harness.StopGuard):
				t.Errorf("in-process agent did not stop within %v", harness.StopGuard)
			}
		})
	}}
	t.Cleanup(p.stop)
	waitHealthz(t, listen, done)
	c, err := client.FromEnv(listen, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(c.Close)
	p.c = c
	waitLastWake(t, c)
	return p
}

// waitHealthz polls /healthz until 200; done ends it early with the
// agent's error.
func waitHealthz(t *tb, listen string, done <-chan error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(harness.StartGuard)
	for {
		select {
		case err := <-done:
			t.Fatalf("the agent exited during start: %v", err)
		default:
		}
		if resp, err := hc.Get("http://" + listen + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz within %v", harness.StartGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLastWake waits until the newest wake is done and returns its id.
func waitLastWake(t *tb, c *client.Client) int64 {
	var id int64
	harness.Eventually(t, 10*time.Minute, "the last restore to finish", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, err := c.Wakes(ctx, 1)
		if err != nil || len(ws) == 0 || !ws[0].Done {
			return false
		}
		id = ws[0].ID
		return true
	})
	return id
}

// errFollowed ends the event stream once the wake is done.
var errFollowed = errors.New("the wake is done")

// wakeAndWait POSTs a wake and follows it on the event stream (opened
// first, so nothing is missed) until its "done" event, which carries the
// wake record's restore summary.
func wakeAndWait(t *tb, c *client.Client) (t0 time.Time, restore time.Duration, ready int) {
	t0, _, w := wakeAndFollow(t, c, nil)
	return t0, time.Duration(w.Restore.DurationMS) * time.Millisecond, w.Restore.Ready
}

// wakeAndFollow is wakeAndWait returning the instant the agent stamped on
// the wake's done event and the wake record it carries; before, when set,
// runs just before the POST (a CPU reading).
func wakeAndFollow(t *tb, c *client.Client, before func()) (t0, doneAt time.Time, w wire.Wake) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	connected := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	type done struct {
		w  wire.Wake
		at time.Time
	}
	doneByID := map[int64]done{}
	want := int64(0)
	found := make(chan done, 1)
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- c.Events(ctx, client.StreamOptions{OnConnect: func() { once.Do(func() { close(connected) }) }},
			func(ev wire.Event) error {
				if ev.Wake == nil || ev.Wake.Phase != wire.PhaseDone || ev.Wake.Wake == nil {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				d := done{*ev.Wake.Wake, ev.At}
				doneByID[d.w.ID] = d
				if want != 0 && d.w.ID == want {
					found <- d
					return errFollowed
				}
				return nil
			})
	}()
	select {
	case <-connected:
	case err := <-streamErr:
		t.Fatalf("event stream: %v", err)
	case <-ctx.Done():
		t.Fatalf("the event stream did not open")
	}
	if before != nil {
		before()
	}
	t0 = time.Now()
	w, err := c.Wake(ctx)
	if err != nil {
		t.Fatalf("POST /api/v1/wake: %v", err)
	}
	mu.Lock()
	want = w.ID
	if done, ok := doneByID[want]; ok { // done before the POST's answer was read
		found <- done
	}
	mu.Unlock()
	var d done
	select {
	case d = <-found:
	case err := <-streamErr:
		t.Fatalf("event stream ended before wake %d was done: %v", w.ID, err)
	}
	cancel()
	if err := <-streamErr; err != nil && !errors.Is(err, errFollowed) && !errors.Is(err, context.Canceled) {
		t.Errorf("event stream: %v", err)
	}
	return t0, d.at, d.w
}

func inProcessRestore(t *tb, g dag, runs int) []time.Duration {
	p := startInProcess(t, probeConfig(g))
	defer p.stop()
	var out []time.Duration
	for range runs {
		t0, _, ready := wakeAndWait(t, p.c)
		if ready != len(g.names) {
			t.Fatalf("in-process restore of %d: only %d ready", len(g.names), ready)
		}
		var last int64
		for _, n := range g.names {
			v, _ := probeReady.Load(n)
			ns, _ := v.(int64)
			if ns < t0.UnixNano() {
				t.Fatalf("%s was not restarted by the wake", n)
			}
			last = max(last, ns)
		}
		out = append(out, time.Duration(last-t0.UnixNano()))
	}
	return out
}

// --- real binary, http trackers ---

// latencyServer answers GET /c/NAME after the latency of NAME in a dag with
// an empty item list, and counts requests.
type latencyServer struct {
	srv     *http.Server
	addr    string
	latency map[string]time.Duration
	mu      sync.Mutex
	hits    int
}

func newLatencyServer(t *tb, g dag) *latencyServer {
	lat := make(map[string]time.Duration, len(g.names))
	for i, n := range g.names {
		lat[n] = g.latency[i]
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &latencyServer{addr: l.Addr().String(), latency: lat}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/c/")
		s.mu.Lock()
		s.hits++
		s.mu.Unlock()
		select {
		case <-time.After(s.latency[name]):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
	})
	return s
}

// httpTrackerConfig is g as http trackers against srv (interval 1h: only
// starts and wakes poll).
func httpTrackerConfig(g dag, srv string) string {
	var b strings.Builder
	b.WriteString("deadlines: {tracker: 60s, wake: 10m}\nscheduler: {enabled: false}\nlog: {level: warn}\ntrackers:\n")
	for i, name := range g.names {
		fmt.Fprintf(&b, "  - name: %s\n    kind: http\n    url: http://%s/c/%s\n    interval: 1h\n    needs_network: false\n    cursor: {from: none}%s\n",
			name, srv, name, g.yamlDeps(i))
	}
	return b.String()
}

// startOnDAG starts the real binary with g as http trackers against a
// latency server, and returns it once its boot restore is done.
func startOnDAG(t *tb, o options, g dag) *harness.Agent {
	srv := newLatencyServer(t, g)
	p := harness.NewPower(t, false)
	a := harness.Start(t, o.RouseBin, harness.Options{Config: httpTrackerConfig(g, srv.addr), BusAddr: p.Addr()})
	waitLastWake(t, a.Client)
	return a
}

func binaryRestore(t *tb, o options, g dag, runs int) []time.Duration {
	a := startOnDAG(t, o, g)
	defer a.Stop()
	var out []time.Duration
	for range runs {
		_, d, ready := wakeAndWait(t, a.Client)
		if ready != len(g.names) {
			t.Fatalf("binary restore of %d: only %d ready: %s", len(g.names), ready, a.States())
		}
		out = append(out, d)
	}
	return out
}
