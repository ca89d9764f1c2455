package exec

import "sync"

// procScans coalesces /proc scans. Every stopping run of the subreaper
// mode scans the whole process table (twice or more), so fifty components
// restarted together on a wake made fifty concurrent scans at every step:
// the scans were 60% of the agent's CPU and stretched such a restart
// threefold. A caller joins the next scan to start — never one already
// under way, which may have begun before its call and miss a process it
// must see — and everyone who joined it gets its result.
var procScans = scanner{scan: scanProcs}

// scanner runs scan for concurrent callers, one run at a time, each run
// serving every caller that arrived while the previous one was going.
type scanner struct {
	scan func() []proc

	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	next    *scanRound // joined by callers while a run goes; started after it
	runs    int        // scans made, for tests
}

type scanRound struct {
	done  bool
	procs []proc
}

// procs returns a scan that started after the call.
func (s *scanner) procs() []proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	var r *scanRound
	if s.running {
		if s.next == nil {
			s.next = &scanRound{}
		}
		r = s.next
	}
	for {
		if r != nil && r.done {
			return r.procs
		}
		if !s.running {
			if r == nil {
				r = &scanRound{}
			}
			if s.next == r {
				s.next = nil
			}
			s.running = true
			s.runs++
			s.mu.Unlock()
			procs := s.scan()
			s.mu.Lock()
			r.procs, r.done = procs, true
			s.running = false
			s.cond.Broadcast()
			return procs
		}
		s.cond.Wait()
	}
}
