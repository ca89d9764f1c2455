package exec

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers share scans, and none gets a scan that began before
// its call.
func TestScansAreSharedButNeverStale(t *testing.T) {
	var started atomic.Int64
	s := scanner[[]proc]{scan: func() []proc {
		seq := started.Add(1)
		time.Sleep(200 * time.Microsecond) // a scan takes a while
		return []proc{{pid: int(seq)}}
	}}
	const callers, calls = 50, 20
	var wg sync.WaitGroup
	var stale atomic.Int64
	for range callers {
		wg.Go(func() {
			for range calls {
				before := started.Load() // scans begun before this call
				got := s.procs()
				if int64(got[0].pid) <= before {
					stale.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := stale.Load(); n != 0 {
		t.Errorf("%d calls got a scan that had begun before them", n)
	}
	if s.runs >= callers*calls {
		t.Errorf("%d scans for %d calls: nothing was shared", s.runs, callers*calls)
	}
	t.Logf("%d scans served %d calls", s.runs, callers*calls)
}
