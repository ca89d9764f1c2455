package power

import "time"

// clockThreshold is how much the slept-time counter must grow between two
// readings for the clock source to call it a sleep. Readings are not atomic,
// so tiny growth is noise; no real suspend is this short.
const clockThreshold = 2 * time.Second

// staleSleep is how long (awake time: the monotonic clock stops in suspend)
// an announced sleep may go without a wake before a new announcement is
// accepted again. It heals a sleep whose wake was never seen nor measured,
// for instance a suspend that was cancelled while the bus was down.
const staleSleep = time.Minute

// merger decides which reports from the sources are the one sleep and the
// one wake of a suspend. It is pure: the caller passes the time in and guards
// it with a lock.
//
// Rules:
//   - A sleep announced while one is in progress is ignored (elogind repeats
//     itself), unless the earlier one is stale.
//   - A wake from an announcing source (logind, windows) after an announced
//     sleep is the wake. Without an announced sleep (a duplicate, or the sleep
//     was missed while the bus was down) it is the wake only when no wake was
//     emitted within the window.
//   - The clock source reports growth of the slept-time counter. Growth above
//     clockThreshold is a resume. If a source announced the sleep, the clock
//     holds its detection for one window so the source can report the wake
//     itself (one wake, the source's name, the clock's Slept when the source
//     has none); otherwise it is a wake unless one was emitted within the window.
type merger struct {
	window time.Duration

	sleeping  bool
	sleepAt   time.Time
	lastWake  time.Time // zero until the first wake
	pending   *Event    // a clock detection waiting for the announcing source
	pendingAt time.Time
}

// sleep records an announced sleep and reports whether it is a new one.
func (g *merger) sleep(now time.Time) bool {
	if g.sleeping && now.Sub(g.sleepAt) < staleSleep {
		return false
	}
	g.sleeping, g.sleepAt, g.pending = true, now, nil
	return true
}

// wake records a wake reported by an announcing source and returns the event
// to deliver, if any.
func (g *merger) wake(now time.Time, ev Event) (Event, bool) {
	if g.sleeping {
		if g.pending != nil && ev.Slept == 0 {
			ev.Slept = g.pending.Slept
		}
		g.sleeping, g.pending, g.lastWake = false, nil, now
		return ev, true
	}
	if g.recentWake(now) {
		return Event{}, false
	}
	g.lastWake = now
	return ev, true
}

// clock records a reading of the clock source that grew by growth since the
// previous one and returns the event to deliver, if any.
func (g *merger) clock(now time.Time, growth time.Duration) (Event, bool) {
	if g.pending != nil && now.Sub(g.pendingAt) >= g.window {
		// The announcing source never reported this wake: the clock does.
		ev := *g.pending
		if growth > 0 {
			ev.Slept += growth
		}
		g.sleeping, g.pending, g.lastWake = false, nil, now
		return ev, true
	}
	if !isSleepGrowth(growth) {
		return Event{}, false
	}
	ev := Event{Kind: Wake, Slept: growth, DetectedBy: "clock"}
	if g.sleeping {
		if g.pending == nil {
			g.pending, g.pendingAt = &ev, now
		} else {
			g.pending.Slept += growth
		}
		return Event{}, false
	}
	if g.recentWake(now) {
		return Event{}, false
	}
	g.lastWake = now
	return ev, true
}

func (g *merger) recentWake(now time.Time) bool {
	return !g.lastWake.IsZero() && now.Sub(g.lastWake) < g.window
}

// isSleepGrowth reports whether growth of the slept-time counter between two
// readings means the machine slept. A wall-clock step never reaches this
// counter (it is made of two clocks that do not follow the wall clock), so a
// step cannot be taken for a sleep.
func isSleepGrowth(growth time.Duration) bool {
	return growth > clockThreshold
}
