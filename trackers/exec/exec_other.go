//go:build unix && !linux

package exec

import "syscall"

// sysProcAttr puts the child in its own process group. There is no
// parent-death signal outside Linux: a kill -9 of the agent leaves the group
// running until something else stops it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
