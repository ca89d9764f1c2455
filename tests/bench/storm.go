//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/client"
)

// Benchmark 2: GET /api/v1/health under a steady loopback load (4 clients,
// back to back, one keep-alive connection each) while the real binary
// restores StormN http trackers (the restore benchmark's DAG and
// latencies) after POST /api/v1/wake. The same load on the idle agent
// just before is the baseline.

const stormClients = 4

type latencies struct {
	Count int     `json:"count"`
	Fails int     `json:"fails"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

type stormResult struct {
	N         int       `json:"n"`
	RestoreMS float64   `json:"restore_ms"`
	Idle      latencies `json:"idle"`
	Storm     latencies `json:"storm"`
}

func benchStorm(t *tb, o options) *stormResult {
	g := makeDAG(o.StormN, o.ProbeSeed)
	a := startOnDAG(t, o, g)
	defer a.Stop()

	r := &stormResult{N: o.StormN}
	r.Idle = loadWhile(t, a.Listen, a.DataDir, func() { time.Sleep(2 * time.Second) })
	r.Storm = loadWhile(t, a.Listen, a.DataDir, func() {
		_, d, ready := wakeAndWait(t, a.Client)
		if ready != o.StormN {
			t.Errorf("storm: only %d of %d ready", ready, o.StormN)
		}
		r.RestoreMS = ms(d)
	})
	return r
}

// loadWhile runs the health load while during runs, and summarises it.
func loadWhile(t *tb, listen, dataDir string, during func()) latencies {
	stop := make(chan struct{})
	var mu sync.Mutex
	var all []time.Duration
	fails := 0
	var wg sync.WaitGroup
	for range stormClients {
		c, err := client.FromEnv(listen, dataDir)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			var mine []time.Duration
			bad := 0
			for {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, mine...)
					fails += bad
					mu.Unlock()
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				_, err := c.Health(ctx)
				d := time.Since(t0)
				cancel()
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, d)
			}
		}()
	}
	during()
	close(stop)
	wg.Wait()
	return summarise(all, fails)
}

func summarise(ds []time.Duration, fails int) latencies {
	l := latencies{Count: len(ds), Fails: fails}
	if len(ds) == 0 {
		return l
	}
	slices.Sort(ds)
	pick := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	l.P50MS, l.P99MS, l.MaxMS = ms(pick(0.50)), ms(pick(0.99)), ms(ds[len(ds)-1])
	return l
}

func printStorm(w io.Writer, r *stormResult) {
	fmt.Fprintf(w, "2. GET /api/v1/health, %d clients back to back, while %d components restore (restore took %.0f ms)\n",
		stormClients, r.N, r.RestoreMS)
	fmt.Fprintf(w, "%-22s %8s %6s %9s %9s %9s\n", "", "requests", "fails", "p50 ms", "p99 ms", "max ms")
	for _, row := range []struct {
		name string
		l    latencies
	}{{"idle agent", r.Idle}, {"during the wake", r.Storm}} {
		fmt.Fprintf(w, "%-22s %8d %6d %9.2f %9.2f %9.2f\n", row.name, row.l.Count, row.l.Fails, row.l.P50MS, row.l.P99MS, row.l.MaxMS)
	}
	fmt.Fprintln(w)
}
