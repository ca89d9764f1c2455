package exec

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the child in its own process group, and asks the kernel
// to SIGKILL it if the agent dies (even by kill -9) so it is never orphaned.
// The kernel ties Pdeathsig to the thread that started the child, not the
// process: a goroutine that ends while locked to its OS thread
// (runtime.LockOSThread without Unlock) takes its thread down, and would
// kill a child that thread had started. Code in the agent that locks a
// thread must unlock it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// groupGone reports whether no live process is left in process group pgid.
// kill(-pgid, 0) alone is not enough: it also counts zombies, and an orphaned
// grandchild stays a zombie for good under an init that does not reap.
func groupGone(pgid int) bool {
	if pgid <= 0 || syscall.Kill(-pgid, 0) == syscall.ESRCH {
		return true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell; do not wait for nothing
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 > len(b) {
			continue
		}
		f := strings.Fields(string(b[i+2:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			return false
		}
	}
	return true
}
