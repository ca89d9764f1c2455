package trackers

import (
	"hash/fnv"
	"os"
	"sync"
	"time"
)

// PollDelay is how long a periodic poll or check that is due interval
// from now waits: interval, moved by at most 1/40 of it (1.5 s of a
// minute) to the nearest point of a grid that every periodic timer of the
// machine shares, so that trackers and checks with alike intervals wake
// the machine once, together, instead of each on its own. systemd does
// the same for its timers within AccuracySec; a laptop's battery pays per
// wakeup, not per request.
//
// The grid's step is interval/20, so timers of one interval share one
// grid. Its origin is a stable offset taken from the host name, so
// machines polling the same service do not all do so in the same instant.
// An interval under 1 s is not moved. Rounding to the nearest point
// rather than up keeps the mean period at interval: a poll that took some
// milliseconds does not drift to the next point.
func PollDelay(now time.Time, interval time.Duration) time.Duration {
	step := gridStep(interval)
	if step == 0 {
		return interval
	}
	due := now.UnixNano() + int64(interval)
	origin := hostPhase() % int64(step)
	k := (due - origin + int64(step)/2) / int64(step) // due, origin > 0: division rounds down
	return time.Duration(origin + k*int64(step) - now.UnixNano())
}

// gridStep is the grid step for interval, 0 for none.
func gridStep(interval time.Duration) time.Duration {
	if interval < time.Second {
		return 0
	}
	return interval / 20
}

// hostPhase is the grid's origin in nanoseconds, in [0, 1 min): a hash of
// the host name, the same for every timer of the machine and every run.
var hostPhase = sync.OnceValue(func() int64 {
	name, _ := os.Hostname()
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return int64(mix(h.Sum64()) % uint64(time.Minute))
})

// mix is MurmurHash3's 64-bit finaliser: FNV-1a alone leaves host names
// that differ in their last characters close together in the low bits
// that the modulo keeps.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
