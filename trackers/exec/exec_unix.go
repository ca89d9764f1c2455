//go:build unix

package exec

import (
	"errors"
	"os"
	"syscall"
)

// terminateGroup asks every process in the group led by p to stop.
func terminateGroup(p *os.Process) error { return signalGroup(p.Pid, syscall.SIGTERM) }

// killGroup kills every process in the group led by p. It also reaches
// processes left in the group after p itself exited: the kernel does not
// reuse a process group's number while the group has members.
func killGroup(p *os.Process) error { return signalGroup(p.Pid, syscall.SIGKILL) }

func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // the group is already gone
	}
	return err
}
