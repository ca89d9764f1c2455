package trackers

import (
	"fmt"
	"testing"
	"time"
)

func TestIntervalJitter(t *testing.T) {
	const iv = time.Minute
	seen := map[time.Duration]bool{}
	for i := range 25 {
		name := fmt.Sprintf("http%02d", i)
		j := IntervalJitter(name, iv)
		if j < 0 || j > iv/20 {
			t.Fatalf("%s: jitter %v outside [0, %v]", name, j, iv/20)
		}
		if again := IntervalJitter(name, iv); again != j {
			t.Fatalf("%s: jitter %v then %v; want the same every time", name, j, again)
		}
		seen[j.Truncate(10*time.Millisecond)] = true
	}
	if len(seen) < 20 {
		t.Errorf("25 names got only %d distinct jitters (10 ms apart)", len(seen))
	}
	if IntervalJitter("x", 0) != 0 {
		t.Error("a zero interval got jitter")
	}
}
