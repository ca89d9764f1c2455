//go:build !linux

package exec

import (
	"log/slog"
	osexec "os/exec"
)

// Outside Linux each child's exit is waited for by a goroutine of its own.
func holdReaper(*slog.Logger) {}
func releaseReaper()          {}

// watchExit calls done with cmd.Wait's result once cmd's process exited.
func watchExit(cmd *osexec.Cmd, _ string, done func(error)) {
	go func() { done(cmd.Wait()) }()
}
