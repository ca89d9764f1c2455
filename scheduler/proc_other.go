//go:build !unix

package scheduler

import (
	"os"
	"os/exec"
)

// setProcessGroup: without process groups, a cancelled context kills the
// command itself (os/exec's default).
func setProcessGroup(cmd *exec.Cmd) {}

// killGroup kills the command if it is still there.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }
