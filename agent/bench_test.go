package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// BenchmarkRestore1000 restores 1,000 synthetic components with known start
// latencies (10–100 ms, what a connect and handshake cost) in a random DAG
// (up to three required dependencies each, among the 50 components before
// it) and reports the all-ready time divided by the graph's critical path
// (1.00 would be a perfect scheduler) and the absolute overhead per hop of
// the critical path.
//
//	go test -run '^$' -bench Restore1000 -benchtime 5x ./agent/
func BenchmarkRestore1000(b *testing.B) {
	const n = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	specs := make([]spec, n)
	lat := map[string]time.Duration{}
	for i := range specs {
		name := fmt.Sprintf("c%04d", i)
		s := spec{name: name, p: &probe{latency: 10*time.Millisecond + time.Duration(rng.Int64N(int64(90*time.Millisecond)))}}
		if i > 0 {
			for range rng.IntN(4) {
				d := fmt.Sprintf("c%04d", max(0, i-1-rng.IntN(min(i, 50))))
				if !slices.Contains(s.requires, d) {
					s.requires = append(s.requires, d)
				}
			}
		}
		specs[i] = s
		lat[name] = s.p.latency
	}
	a, stop := testAgent(b, b.TempDir(), specs)
	defer stop()
	_, crit, path := a.graph.plan(func(n string) time.Duration { return lat[n] }, func(string) bool { return false })
	var worst, sum float64
	for b.Loop() {
		// Every component down, then one restore that starts them all.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for _, u := range a.allUnits() {
			if err := a.stopRun(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
		cancel()
		t0 := time.Now()
		restoreNow(b, a, "manual", false)
		var last int64
		for _, s := range specs {
			last = max(last, s.p.readyAt.Load())
		}
		ratio := float64(time.Duration(last-t0.UnixNano())) / float64(crit)
		worst = max(worst, ratio)
		sum += ratio
		if w := *a.lastWake; w.Restore.Ready != n {
			b.Fatalf("only %d of %d ready: %+v", w.Restore.Ready, n, w.Restore)
		}
	}
	b.ReportMetric(sum/float64(b.N), "ratio-to-critical-path")
	b.ReportMetric(worst, "worst-ratio")
	b.ReportMetric(float64(crit.Milliseconds()), "critical-path-ms")
	b.ReportMetric(float64(len(path)), "critical-path-len")
	b.ReportMetric((sum/float64(b.N)-1)*float64(crit.Milliseconds())/float64(len(path)), "overhead-ms/hop")
}

// BenchmarkRenderViews1000 renders the API's views (health and services,
// JSON and gzipped) for 1,000 components: what the renderer pays per
// change during a wake, at most every viewInterval. all: nothing cached
// (the first rendering, or every entry changed); 10-changed: ten entries
// changed since the last rendering (a wake of 1,000 over ~4 s changes
// about a dozen per 50 ms).
//
//	go test -run '^$' -bench RenderViews -benchmem ./agent/
func BenchmarkRenderViews1000(b *testing.B) {
	specs := make([]spec, 1000)
	for i := range specs {
		specs[i] = spec{name: fmt.Sprintf("c%04d", i), p: &probe{}}
		if i > 0 {
			specs[i].requires = []string{fmt.Sprintf("c%04d", i-1)}
		}
	}
	a, stop := testAgent(b, b.TempDir(), specs)
	defer stop()
	if _, err := a.startWake("manual", time.Now(), 0, false); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); a.stateOf("c0999") != trackers.StateReady; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the boot restore did not finish")
		}
	}
	us := a.allUnits()
	for _, c := range []struct {
		name    string
		changed int // entries changed before each rendering; -1: nothing cached
	}{{"all", -1}, {"10-changed", 10}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var size, k int
			for b.Loop() {
				a.views.cur.Store(nil) // as after a change: no document to reuse
				if c.changed < 0 {
					a.views.mu.Lock()
					a.views.comps = nil
					a.views.mu.Unlock()
				}
				for range max(0, c.changed) {
					u := us[k%len(us)]
					k++
					u.mu.Lock()
					u.attempts++
					u.mu.Unlock()
				}
				r := a.refreshViews()
				size = len(r.head) + r.listSize() + len(r.tail)
			}
			b.ReportMetric(float64(size)/1024, "health-KB")
		})
	}
}
