//go:build linux

package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// A process group record under run/NAME that someone other than the
// agent's user could have written never makes the agent kill the group it
// names (issue 11: a planted exec-group.json and a root agent); the agent's
// own record of an earlier run does (the control that shows the record is
// one the agent would act on).
func TestPlantedExecGroupRecord(t *testing.T) {
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skipf("no boot id: %v", err)
	}
	for _, c := range []struct {
		name   string
		plant  func(t *testing.T, record, dir string)
		killed bool
	}{
		{"WritableByOthers", func(t *testing.T, record, _ string) { chmod(t, record, 0o666) }, false},
		{"InADirectoryWritableByOthers", func(t *testing.T, _, dir string) { chmod(t, dir, 0o777) }, false},
		{"OwnedByAnotherUser", func(t *testing.T, record, _ string) {
			if os.Geteuid() != 0 {
				t.Skip("making a file of another user needs root")
			}
			if err := os.Chown(record, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"TheAgentsOwnRecord", func(*testing.T, string, string) {}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The victim: a process group someone would like killed.
			victim := exec.Command("sleep", "300")
			victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := victim.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { victim.Wait(); close(exited) }()
			t.Cleanup(func() { syscall.Kill(-victim.Process.Pid, syscall.SIGKILL); <-exited })

			data := filepath.Join(t.TempDir(), "data")
			dir := filepath.Join(data, "run", "tunnel")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			rec, _ := json.Marshal(map[string]any{
				"pid": victim.Process.Pid, "pgid": victim.Process.Pid, "start": startTime(t, victim.Process.Pid),
				"boot_id": strings.TrimSpace(string(bootID)), "agent": 1, "agent_start": 1,
			})
			record := filepath.Join(dir, "exec-group.json")
			if err := os.WriteFile(record, rec, 0o600); err != nil {
				t.Fatal(err)
			}
			c.plant(t, record, dir)

			p := harness.NewPower(t, true)
			marker := harness.NewMarker()
			cfg := fmt.Sprintf(`
scheduler: {enabled: false}
trackers:
  - name: tunnel
    kind: exec
    command: [sleep, "300"]
    env: %s
    ready_after: 100ms
`, harness.ExecEnv(marker))
			a := harness.Start(t, bin, harness.Options{Config: cfg, DataDir: data, BusAddr: p.Addr(), Marker: marker})
			a.WaitStates(guard, map[string]string{"tunnel": "ready"})
			select {
			case <-exited:
				if !c.killed {
					t.Fatal("a planted record made the agent kill a process group of someone's choosing")
				}
			case <-time.After(500 * time.Millisecond):
				if c.killed {
					t.Fatal("the agent's own record of an earlier run was not acted on")
				}
				a.WaitLog("dropping a process group record the agent's user did not write alone", guard)
			}
			if a.Exited() {
				t.Fatal("the agent is not up")
			}
			a.Stop()
		})
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

// startTime is field 22 of /proc/PID/stat: the start time in clock ticks.
func startTime(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
