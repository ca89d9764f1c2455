package tray

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childMain, when set by a platform's test file, runs the tray in a child
// process of the test binary (the systray library runs once per process).
var childMain func() int

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" && childMain != nil {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m)
}

// childEnv marks the test binary re-executed as a tray.
const childEnv = "ROUSE_TRAY_TEST_CHILD"
