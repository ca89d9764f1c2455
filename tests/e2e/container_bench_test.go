//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	rclient "github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/internal/engine"
	"github.com/rouse-dev/rouse/internal/testdocker"
	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// BenchmarkContainerChain restores a chain of ten containers (each
// requires the one before; each restarted on the wake and healthy about
// 300 ms after it starts, by its own HEALTHCHECK) through the real binary
// and a private dockerd. It reports:
//
//   - restore/critical: the restore's wall time over its critical path
//     (the sum of the ten components' own bring-up times, as the wake
//     record gives them; in a chain every component is on the path);
//   - healthy→start-ms: the median time from the engine's
//     "health_status: healthy" event of one container to the agent's
//     "starting" event of the one that depends on it, both as their
//     senders timestamped them.
func BenchmarkContainerChain(b *testing.B) {
	e := testdocker.Start(b)
	p := harness.NewPower(b, true)
	pfx := fmt.Sprintf("chain-%d-", time.Now().UnixNano()%1e6)
	const n = 10
	cfg := baseConfig
	ids := map[string]string{} // container id → component name
	for i := range n {
		name := fmt.Sprintf("c%d", i)
		id := e.Create(testdocker.Spec{Name: pfx + name, StopTimeout: 1, HealthInterval: 100 * time.Millisecond,
			Health: []string{"test -f /tmp/up"},
			Cmd:    []string{"sh", "-c", "rm -f /tmp/up; sleep 0.3; touch /tmp/up; exec sleep 100000"}})
		ids[id] = name
		extra := "restart_on_wake: true"
		if i > 0 {
			extra += fmt.Sprintf("\ndepends_on: [c%d]", i-1)
		}
		cfg += containerEntry(name, pfx+name, e.Host(), extra)
	}
	a := harness.Start(b, bin, harness.Options{Config: cfg, BusAddr: p.Addr()})
	want := map[string]string{}
	for i := range n {
		want[fmt.Sprintf("c%d", i)] = "ready"
	}
	a.WaitStates(guard, want)
	a.WaitWakeDone(guard, a.LastWakeID())

	// Both event streams, for the whole run.
	var mu sync.Mutex
	healthy := map[string][]time.Time{}  // component → engine healthy times
	starting := map[string][]time.Time{} // component → agent starting times
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ev, err := e.Client().Events(ctx, engine.Filters{"type": {"container"}, "event": {"health_status"}})
	if err != nil {
		b.Fatal(err)
	}
	defer ev.Close()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range ev.C {
			if m.Action == "health_status: healthy" {
				mu.Lock()
				healthy[ids[m.Actor.ID]] = append(healthy[ids[m.Actor.ID]], time.Unix(0, m.TimeNano))
				mu.Unlock()
			}
		}
	}()
	rc := rclient.New("http://"+a.Listen, readToken(b, a))
	defer rc.Close()
	go func() {
		defer wg.Done()
		_ = rc.Events(ctx, rclient.StreamOptions{}, func(w wire.Event) error {
			if w.State != nil && w.State.State == "starting" {
				mu.Lock()
				starting[w.State.Name] = append(starting[w.State.Name], w.At)
				mu.Unlock()
			}
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond) // both streams subscribed

	var ratios []float64
	b.ResetTimer()
	for range b.N {
		last := a.LastWakeID()
		if _, err := rc.Wake(harness.Ctx(b, guard)); err != nil {
			b.Fatal(err)
		}
		w := a.WaitNewWake(guard, last)
		w = a.WaitWakeDone(guard, w.ID)
		var path int64
		for i := range n {
			c, ok := harness.ComponentOf(w, fmt.Sprintf("c%d", i))
			if !ok || c.State != "ready" {
				b.Fatalf("c%d in the restore: %+v", i, c)
			}
			path += c.DurationMS
		}
		ratios = append(ratios, float64(w.Restore.DurationMS)/float64(path))
	}
	b.StopTimer()
	cancel()
	wg.Wait()

	// Link latencies: for each healthy of c(i), the first starting of
	// c(i+1) after it.
	var links []time.Duration
	for i := range n - 1 {
		for _, h := range healthy[fmt.Sprintf("c%d", i)] {
			for _, s := range starting[fmt.Sprintf("c%d", i+1)] {
				if !s.Before(h) {
					if d := s.Sub(h); d < 5*time.Second {
						links = append(links, d)
					}
					break
				}
			}
		}
	}
	slices.Sort(ratios)
	slices.Sort(links)
	if len(ratios) > 0 {
		b.ReportMetric(ratios[len(ratios)/2], "restore/critical")
	}
	if len(links) > 0 {
		b.ReportMetric(float64(links[len(links)/2].Microseconds())/1000, "healthy→start-ms")
		b.ReportMetric(float64(links[len(links)*99/100].Microseconds())/1000, "healthy→start-p99-ms")
	}
	b.ReportMetric(loadAvg(), "load1")
}

// loadAvg is the 1-minute load average, reported beside every figure.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}
