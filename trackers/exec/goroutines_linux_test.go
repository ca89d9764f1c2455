package exec

import (
	"runtime"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// Each running exec component costs its Run goroutine alone: the children's
// exits and their output are watched by goroutines shared by all (issue 12:
// fewer goroutines per exec component; it was 4, with a Wait goroutine and
// two output readers per child).
func TestGoroutinesPerComponent(t *testing.T) {
	const n = 20
	settle := func() int {
		var g int
		for range 50 { // let goroutines of earlier tests finish
			g = runtime.NumGoroutine()
			time.Sleep(10 * time.Millisecond)
			if runtime.NumGoroutine() == g {
				break
			}
		}
		return g
	}
	base := settle()
	var rs []*running
	for range n {
		o := opts("sleep", "300")
		o.ReadyAfter = 10 * time.Millisecond
		rs = append(rs, startReal(t, o))
	}
	for _, r := range rs {
		r.host.waitFor(t, 1, "ready", isState(trackers.StateReady))
	}
	per := float64(settle()-base) / n
	t.Logf("%.2f goroutines per running exec component (%d components)", per, n)
	for _, r := range rs {
		if err := r.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	if per > 1+3.0/n {
		t.Fatalf("%.2f goroutines per exec component, want 1 (its Run) plus the shared exit watcher and output poller", per)
	}
}
