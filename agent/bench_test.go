package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
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
