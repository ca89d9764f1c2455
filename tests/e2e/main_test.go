//go:build linux

// Package e2e holds rouse's end-to-end post-wake scenarios: each test runs
// the real binary (built once in TestMain) on a private D-Bus with a fake
// logind, drives it through boots, sleeps, wakes and restarts, and checks
// what a user would see through the REST API, the log and the process
// table.
//
// ROUSE_CYCLES sets the number of suspend/resume cycles of the cycling
// scenario (default 250; the long form is 2500).
package e2e

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// bin is the rouse binary under test; workDir holds it and whatever the
// benchmarks build once per run.
var bin, workDir string

func TestMain(m *testing.M) {
	harness.RunHelperIfAsked()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rouse-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir
	if bin, err = harness.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			return 1
		}
	}
	return code
}
