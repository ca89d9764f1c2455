package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/agent"
)

func TestExitCode(t *testing.T) {
	t.Run("MapsEachKindOfError", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			err  error
			want int
		}{
			{"Success", nil, 0},
			{"PlainFailure", errors.New("boom"), 1},
			{"BadUsage", usagef("no such flag"), 2},
			{"BadConfig", configError{errors.New("rouse.yaml:3: trackers[0].kind: unknown")}, 78},
			{"WrappedBadConfig", fmt.Errorf("run: %w", configError{errors.New("bad")}), 78},
			{"AgentBadConfig", &agent.ExitError{Code: agent.ExitBadConfig, Err: errors.New("bad")}, 78},
			{"AgentFailure", &agent.ExitError{Code: 1, Err: errors.New("cannot open the store")}, 1},
			{"AlreadyPrinted", codeError{78}, 78},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := exitCode(tc.err, io.Discard); got != tc.want {
					t.Fatalf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
				}
			})
		}
	})
	t.Run("ABadConfigIs78FromEveryCommandThatReadsOne", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "rouse.yaml")
		if err := os.WriteFile(bad, []byte("trackers:\n  - name: x\n    kind: nope\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(t.TempDir(), "data") // created 0700 by the agent
		for _, args := range [][]string{
			{"config", "check", bad},
			{"run", "--config", bad, "--data", data, "--listen", "127.0.0.1:0"},
			{"status", "--config", bad, "--data", data},
			{"wake", "--config", bad, "--data", data},
			{"stop", "--config", bad, "--data", data, "x"},
		} {
			out, code := runCLI(t, args...)
			if code != 78 {
				t.Errorf("rouse %s: exit %d, want 78; output:\n%s", strings.Join(args, " "), code, out)
			}
			if !strings.Contains(out, "rouse.yaml:3") {
				t.Errorf("rouse %s: the error does not name file:line:\n%s", strings.Join(args, " "), out)
			}
		}
	})
	t.Run("BadUsageIs2", func(t *testing.T) {
		for _, args := range [][]string{
			{"status", "--no-such-flag"},
			{"run", "--log-level", "loud", "--data", t.TempDir(), "--listen", "127.0.0.1:0"},
		} {
			if out, code := runCLI(t, args...); code != 2 {
				t.Errorf("rouse %s: exit %d, want 2; output:\n%s", strings.Join(args, " "), code, out)
			}
		}
	})
}
