package agent

import (
	"errors"
	"runtime/debug"
	"testing"

	"github.com/rouse-dev/rouse/agent/config"
)

// TestLoadAtBootRaisesGCPercentAndRestoresIt checks that the config is read
// with the GC percent at least bootGCPercent, that a higher one or GC off
// is left alone, and that the percent is what it was afterwards, on
// success and on error.
func TestLoadAtBootRaisesGCPercentAndRestoresIt(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct{ before, during int }{
		{100, bootGCPercent},
		{50, bootGCPercent},
		{bootGCPercent + 100, bootGCPercent + 100},
		{-1, -1},
	} {
		for _, fail := range []bool{false, true} {
			debug.SetGCPercent(tc.before)
			var during int
			_, err := loadAtBoot(func() (*config.Config, error) {
				during = debug.SetGCPercent(12345)
				debug.SetGCPercent(during)
				if fail {
					return nil, errors.New("bad config")
				}
				return &config.Config{}, nil
			})
			if (err != nil) != fail {
				t.Fatalf("before %d: err = %v", tc.before, err)
			}
			if during != tc.during {
				t.Errorf("before %d: GC percent during the load = %d, want %d", tc.before, during, tc.during)
			}
			if after := debug.SetGCPercent(100); after != tc.before {
				t.Errorf("before %d: GC percent after the load = %d, want it restored", tc.before, after)
			}
		}
	}
}
