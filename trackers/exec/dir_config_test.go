package exec_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/exec"
)

// A dir that does not exist is an error of config check, with file:line.
func TestConfigCheckNamesAMissingDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	yaml := "trackers:\n  - name: tunnel\n    kind: exec\n    command: [sleep, \"300\"]\n    dir: " + missing + "\n"
	_, err := config.Parse("rouse.yaml", []byte(yaml), trackers.NewKinds(exec.Kind))
	if err == nil {
		t.Fatal("a missing dir passed config check")
	}
	if msg := err.Error(); !strings.Contains(msg, "rouse.yaml:5") || !strings.Contains(msg, "dir") || !strings.Contains(msg, missing) || !strings.Contains(msg, "does not exist") {
		t.Fatalf("error %q, want rouse.yaml:5 naming the directory", msg)
	}
	ok := "trackers:\n  - name: tunnel\n    kind: exec\n    command: [sleep, \"300\"]\n    dir: " + t.TempDir() + "\n"
	if _, err := config.Parse("rouse.yaml", []byte(ok), trackers.NewKinds(exec.Kind)); err != nil {
		t.Fatalf("an existing dir: %v", err)
	}
}
