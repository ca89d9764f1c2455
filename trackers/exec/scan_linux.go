package exec

import "sync"

// procScans coalesces /proc scans. Every stopping run of the subreaper
// mode that cannot be shown to be alone (see kidScans) scans the whole
// process table (twice or more), so fifty components restarted together
// on a wake made fifty concurrent scans at every step: the scans were 60%
// of the agent's CPU and stretched such a restart threefold. A caller
// joins the next scan to start — never one already under way, which may
// have begun before its call and miss a process it must see — and
// everyone who joined it gets its result.
var procScans = scanner[[]proc]{scan: scanProcs}

// kidScans coalesces snapshots of the agent's own children (snapKids) the
// same way: a stopping run looks there first, and scans /proc only when
// its snapshot cannot show the run is over (see jail.alone, jail.over).
var kidScans = scanner[kidSnap]{scan: snapKids}

// scanner runs scan for concurrent callers, one run at a time, each run
// serving every caller that arrived while the previous one was going.
type scanner[T any] struct {
	scan func() T

	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	next    *scanRound[T] // joined by callers while a run goes; started after it
	runs    int           // scans made, for tests
}

type scanRound[T any] struct {
	done bool
	res  T
}

// procs returns the result of a scan that started after the call.
func (s *scanner[T]) procs() T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	var r *scanRound[T]
	if s.running {
		if s.next == nil {
			s.next = &scanRound[T]{}
		}
		r = s.next
	}
	for {
		if r != nil && r.done {
			return r.res
		}
		if !s.running {
			if r == nil {
				r = &scanRound[T]{}
			}
			if s.next == r {
				s.next = nil
			}
			s.running = true
			s.runs++
			s.mu.Unlock()
			res := s.scan()
			s.mu.Lock()
			r.res, r.done = res, true
			s.running = false
			s.cond.Broadcast()
			return res
		}
		s.cond.Wait()
	}
}
