//go:build unix

package scheduler

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the command in a new process group and makes a
// cancelled context send SIGTERM to the whole group (WaitDelay then
// escalates, and killGroup finishes the job).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		if err == syscall.ESRCH {
			return os.ErrProcessDone
		}
		return err
	}
}

// killGroup sends SIGKILL to whatever is left of the command's group.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// exitCode is the process's exit status, or 128+signal when a signal
// ended it (as a shell reports it).
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
