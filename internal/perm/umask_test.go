//go:build !windows

package perm

import "syscall"

func syscallUmask(m int) int { return syscall.Umask(m) }
