//go:build windows

package exec

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr starts the child in a new process group. Windows has no
// SIGTERM and no parent-death signal: stopping kills the child process
// itself (its own children are not reached; a job object would do that).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

func terminateGroup(p *os.Process) error { return killGroup(p) }

func killGroup(p *os.Process) error {
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// groupGone: only the child itself is stopped on Windows, and it is reaped.
func groupGone(int) bool { return true }
