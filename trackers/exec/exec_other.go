//go:build unix && !linux

package exec

import "syscall"

// sysProcAttr puts the child in its own process group. There is no
// parent-death signal outside Linux: a kill -9 of the agent leaves the group
// running until something else stops it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// groupGone reports whether process group pgid has no process left (a
// zombie still counts; launchd and init reap orphans promptly here).
func groupGone(pgid int) bool {
	return pgid <= 0 || syscall.Kill(-pgid, 0) == syscall.ESRCH
}
