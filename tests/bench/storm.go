//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// Benchmark 2: GET /api/v1/health at a fixed rate (stormRate requests a
// second, open loop: a request is sent on schedule whether or not the
// previous ones have been answered, over a pool of keep-alive
// connections; gzip accepted, the body read and discarded, never
// decompressed or decoded) on the real
// binary with StormN http trackers (the restore benchmark's DAG and
// latencies). Measured:
//
//   - latency (request sent to the body's last byte) on the idle agent,
//     and during wakes;
//   - the agent's CPU per request: its CPU time (schedstat, all threads)
//     over the idle window, less its CPU over as long a window without the
//     load just before, divided by the requests answered;
//   - the floor: the same load on a bare net/http server (this program
//     run as a helper) answering every request with the agent's own
//     gzipped body, measured the same way; what no agent on Go's net/http
//     can go below on this machine;
//   - the restore itself with and without the load: wakes alternating, each followed on the event stream; the medians'
//     ratio is how much the polling slowed the restore (StormRuns wakes of
//     each).

// stormRate is the health load's requests a second.
const stormRate = 200

type latencies struct {
	Count int     `json:"count"`
	Fails int     `json:"fails"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

type stormResult struct {
	N              int       `json:"n"`
	Rate           int       `json:"rate_per_s"`
	BodyKB         float64   `json:"body_kb"`
	Idle           latencies `json:"idle"`
	Storm          latencies `json:"storm"`
	CPUPerReqMS    float64   `json:"agent_cpu_per_request_ms"`
	FloorCPUMS     float64   `json:"bare_server_cpu_per_request_ms"` // the same bytes from a bare net/http server
	RestoreMS      float64   `json:"restore_ms"`                     // median without the load
	RestoreLoadMS  float64   `json:"restore_under_load_ms"`
	Slowdown       float64   `json:"restore_slowdown"` // under load / without
	RestoreRuns    []float64 `json:"restore_runs_ms"`
	RestoreLoadRun []float64 `json:"restore_under_load_runs_ms"`
}

func benchStorm(t *tb, o options) *stormResult {
	g := makeDAG(o.StormN, o.ProbeSeed)
	a := startOnDAG(t, o, g)
	defer a.Stop()
	tok, err := os.ReadFile(filepath.Join(a.DataDir, wire.TokenFile))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	ld := newLoader(a.Listen, strings.TrimSpace(string(tok)))
	defer ld.close()
	r := &stormResult{N: o.StormN, Rate: stormRate}

	// The agent's own CPU without the load (what the boot restore leaves
	// behind: GC, the state writer) over the same window is subtracted.
	pid := a.Pid()
	cpu0 := procCPUns(t, pid)
	t0 := time.Now()
	time.Sleep(o.StormIdle)
	cpu1, quiet := procCPUns(t, pid), time.Since(t0)
	t0 = time.Now()
	idle := ld.runWhile(stormRate, func() { time.Sleep(o.StormIdle) })
	cpu2, busy := procCPUns(t, pid), time.Since(t0)
	r.Idle = idle.summary()
	r.BodyKB = round2(float64(idle.bodyBytes) / float64(max(1, idle.count())) / 1024)
	if n := idle.count(); n > 0 {
		base := float64(cpu1-cpu0) * float64(busy) / float64(quiet)
		r.CPUPerReqMS = round3(max(0, float64(cpu2-cpu1)-base) / 1e6 / float64(n))
	}

	r.FloorCPUMS = floorCPU(t, o, ld)

	var plain, loaded []time.Duration
	var during loadRun
	for range o.StormRuns {
		_, d, ready := wakeAndWait(t, a.Client)
		if ready != o.StormN {
			t.Errorf("storm: only %d of %d ready", ready, o.StormN)
		}
		plain = append(plain, d)
		run := ld.runWhile(stormRate, func() {
			_, d, ready = wakeAndWait(t, a.Client)
		})
		if ready != o.StormN {
			t.Errorf("storm: only %d of %d ready under load", ready, o.StormN)
		}
		loaded = append(loaded, d)
		during.add(run)
	}
	r.Storm = during.summary()
	r.RestoreMS, r.RestoreLoadMS = ms(median(plain)), ms(median(loaded))
	r.Slowdown = round3(float64(median(loaded)) / float64(median(plain)))
	for i := range plain {
		r.RestoreRuns = append(r.RestoreRuns, ms(plain[i]))
		r.RestoreLoadRun = append(r.RestoreLoadRun, ms(loaded[i]))
	}
	return r
}

// loader sends GET /api/v1/health at a fixed rate.
type loader struct {
	url, token string
	tr         *http.Transport
	hc         *http.Client
}

func newLoader(listen, token string) *loader {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return &loader{url: "http://" + listen + "/api/v1/health", token: token, tr: tr,
		hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (l *loader) close() { l.tr.CloseIdleConnections() }

// loadRun is what one load window saw.
type loadRun struct {
	mu        sync.Mutex
	lat       []time.Duration
	fails     int
	bodyBytes int64
}

func (r *loadRun) count() int { return len(r.lat) }

func (r *loadRun) add(o *loadRun) {
	r.lat = append(r.lat, o.lat...)
	r.fails += o.fails
	r.bodyBytes += o.bodyBytes
}

func (r *loadRun) summary() latencies { return summarise(r.lat, r.fails) }

// runWhile sends rate requests a second, on schedule, until during
// returns, then waits for the answers still due.
func (l *loader) runWhile(rate int, during func()) *loadRun {
	res := &loadRun{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sender sync.WaitGroup
	sender.Add(1)
	go func() {
		defer sender.Done()
		every := time.Second / time.Duration(rate)
		next := time.Now()
		for {
			next = next.Add(every)
			if d := time.Until(next); d > 0 {
				select {
				case <-stop:
					return
				case <-time.After(d):
				}
			} else {
				select {
				case <-stop:
					return
				default:
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.one(res)
			}()
		}
	}()
	during()
	close(stop)
	sender.Wait()
	wg.Wait()
	return res
}

// one sends a request and records its latency: sent to the body's last
// byte, the body discarded.
func (l *loader) one(res *loadRun) {
	req, err := http.NewRequest(http.MethodGet, l.url, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	// As browsers, curl --compressed and Go's own client ask; set here,
	// the transport leaves the body compressed: it is discarded unread.
	req.Header.Set("Accept-Encoding", "gzip")
	t0 := time.Now()
	resp, err := l.hc.Do(req)
	var n int64
	ok := err == nil
	if ok {
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ok = err == nil && resp.StatusCode == http.StatusOK
	}
	d := time.Since(t0)
	res.mu.Lock()
	defer res.mu.Unlock()
	if !ok {
		res.fails++
		return
	}
	res.lat = append(res.lat, d)
	res.bodyBytes += n
}

func summarise(ds []time.Duration, fails int) latencies {
	l := latencies{Count: len(ds), Fails: fails}
	if len(ds) == 0 {
		return l
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	pick := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	l.P50MS, l.P99MS, l.MaxMS = ms(pick(0.50)), ms(pick(0.99)), ms(ds[len(ds)-1])
	return l
}

func printStorm(w io.Writer, r *stormResult) {
	fmt.Fprintf(w, "2. GET /api/v1/health at %d req/s (open loop, gzip, body %.1f KB on the wire, discarded), %d components\n", r.Rate, r.BodyKB, r.N)
	fmt.Fprintf(w, "%-26s %8s %6s %9s %9s %9s\n", "", "requests", "fails", "p50 ms", "p99 ms", "max ms")
	for _, row := range []struct {
		name string
		l    latencies
	}{{"idle agent", r.Idle}, {fmt.Sprintf("during %d wakes", len(r.RestoreLoadRun)), r.Storm}} {
		fmt.Fprintf(w, "%-26s %8d %6d %9.2f %9.2f %9.2f\n", row.name, row.l.Count, row.l.Fails, row.l.P50MS, row.l.P99MS, row.l.MaxMS)
	}
	fmt.Fprintf(w, "   agent CPU per request: %.3f ms (a bare net/http server sending the same bytes, measured the same way: %.3f ms)\n", r.CPUPerReqMS, r.FloorCPUMS)
	fmt.Fprintf(w, "   restore without the load %.0f ms %v, with it %.0f ms %v: %.3f×\n\n",
		r.RestoreMS, r.RestoreRuns, r.RestoreLoadMS, r.RestoreLoadRun, r.Slowdown)
}

// procCPUns is the CPU time of every thread of pid, in ns (schedstat).
func procCPUns(t *tb, pid int) int64 {
	dir := filepath.Join("/proc", fmt.Sprint(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("tasks: %v", err)
	}
	var n int64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread just ended
		}
		var ns int64
		if _, err := fmt.Sscan(string(b), &ns); err == nil {
			n += ns
		}
	}
	return n
}

// round3 rounds to three decimals for the JSON line.
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// floorCPU is the CPU per request of a bare net/http server (this program
// as a helper, in a process of its own as the agent is) answering every
// request with the body the agent answered ld's request with, under the
// same load and measured as the agent is.
func floorCPU(t *tb, o options, ld *loader) float64 {
	req, err := http.NewRequest(http.MethodGet, ld.url, nil)
	if err != nil {
		t.Fatalf("floor: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+ld.token)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := ld.hc.Do(req)
	if err != nil {
		t.Fatalf("floor: the agent's body: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("floor: the agent's body: %v (encoding %q)", err, resp.Header.Get("Content-Encoding"))
	}
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatalf("floor: %v", err)
	}
	addr := harness.FreeAddr(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("floor: %v", err)
	}
	cmd := exec.Command(self, helperArg, "servebytes", addr, file)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("floor: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	bare := newLoader(addr, ld.token)
	defer bare.close()
	bare.url = "http://" + addr + "/"
	harness.Eventually(t, 10*time.Second, "the bare server to answer", func() bool {
		r := &loadRun{}
		bare.one(r)
		return r.count() == 1
	})
	pid := cmd.Process.Pid
	cpu0 := procCPUns(t, pid)
	t0 := time.Now()
	time.Sleep(o.StormIdle)
	cpu1, quiet := procCPUns(t, pid), time.Since(t0)
	t0 = time.Now()
	run := bare.runWhile(stormRate, func() { time.Sleep(o.StormIdle) })
	cpu2, busy := procCPUns(t, pid), time.Since(t0)
	n := run.count()
	if n == 0 || run.fails > 0 {
		t.Fatalf("floor: %d answers, %d failures", n, run.fails)
	}
	base := float64(cpu1-cpu0) * float64(busy) / float64(quiet)
	return round3(max(0, float64(cpu2-cpu1)-base) / 1e6 / float64(n))
}

// serveBytes is the floor's server: ADDR FILE, every request answered 200
// with FILE's bytes as gzipped JSON.
func serveBytes(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want servebytes ADDR FILE, got %q", args)
	}
	body, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	n := strconv.Itoa(len(body))
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", n)
		_, _ = w.Write(body)
	}))
}
