package trackers

import (
	"hash/fnv"
	"time"
)

// IntervalJitter is a tracker's own fixed addition to a periodic interval:
// from 0 up to 1/20 of it (3 s of a minute), the same for a name every time
// and different between names, so that trackers configured with the same
// interval and started together (at boot, after a wake) drift apart
// instead of waking the machine together forever.
func IntervalJitter(name string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return time.Duration(mix(h.Sum64()) % uint64(interval/20+1))
}

// mix is MurmurHash3's 64-bit finaliser: FNV-1a alone leaves names that
// differ in their last characters (http01, http02, …) close together in
// the low bits that the modulo keeps.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
