package probe

import (
	"testing"
	"time"
)

func TestPace(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name     string
		interval time.Duration
		costly   bool
		want     []time.Duration
	}{
		{"CheapStartsAt10msAndDoublesToTheInterval", 200 * ms, false, []time.Duration{10, 20, 40, 80, 160, 200, 200}},
		{"CostlyStartsAtAQuarterOfTheInterval", 200 * ms, true, []time.Duration{50, 100, 200, 200}},
		{"AnIntervalOf10msIsPlain", 10 * ms, false, []time.Duration{10, 10, 10}},
		{"CostlyNeverBelow10ms", 20 * ms, true, []time.Duration{10, 20, 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPace(tc.interval, tc.costly)
			for i, w := range tc.want {
				if got := p.Next(); got != w*ms {
					t.Fatalf("delay %d = %v, want %v", i, got, w*ms)
				}
			}
			p.Reset()
			if got := p.Next(); got != tc.want[0]*ms {
				t.Fatalf("after Reset: %v, want %v", got, tc.want[0]*ms)
			}
		})
	}
}
