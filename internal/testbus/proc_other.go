//go:build !unix

package testbus

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
