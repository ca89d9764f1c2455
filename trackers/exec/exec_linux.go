package exec

import "syscall"

// sysProcAttr puts the child in its own process group, and asks the kernel
// to SIGKILL it if the agent dies (even by kill -9) so it is never orphaned.
// Pdeathsig fires when the thread that started the child exits; Go threads
// only exit when a goroutine dies locked to one, which the agent never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
