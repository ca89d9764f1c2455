//go:build linux

// Package reliability holds rouse's reliability suite: each test runs the
// real binary (built once in TestMain) on a private D-Bus and puts it
// through what breaks agents in the field — SIGKILL during a write load,
// faults on the network between trackers and their servers, fifty
// trackers failing at once after a wake — and checks the security table
// of its API against the built binary.
//
// The short form runs in CI. ROUSE_LONG=1 runs the long form (more kills,
// longer fault phases). The suspend/resume cycles under a write load live
// in tests/e2e (TestFastCyclesUnderWriteLoad, ROUSE_CYCLES=2500 for the
// long form) and are not repeated here.
package reliability

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// bin is the rouse binary under test.
var bin string

// guard bounds each wait: a guard against a hang, never a speed
// expectation.
const guard = 60 * time.Second

// long reports whether the long form was asked for.
func long() bool { return os.Getenv("ROUSE_LONG") != "" }

func TestMain(m *testing.M) {
	harness.RunHelperIfAsked()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rouse-reliability")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = harness.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "reliability: leaked goroutines:", err)
			return 1
		}
	}
	return code
}
