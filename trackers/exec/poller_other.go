//go:build !linux

package exec

import "os"

// Outside Linux each output pipe is read by a goroutine of its own.
func holdPoller() bool                                { return false }
func releasePoller()                                  {}
func readOutput(*os.File, string, *sink) outputReader { return nil }
