// Command rouse is the resilience agent: `rouse run` is the agent itself
// (what the OS service runs); the other commands are clients of its local
// REST API or manage its install.
//
// Exit codes, so that a service manager can act on them: 0 ok, 1 failure,
// 2 bad usage, 78 (EX_CONFIG from sysexits.h) a bad config — from every
// command that reads one. The Go runtime itself exits 2 on a panic, a fatal
// error and SIGABRT (systemd's watchdog signal), so 2 must stay restartable:
// the units prevent a restart only on 78.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rouse-dev/rouse/agent"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailure   = 1
	exitUsage     = 2
	exitBadConfig = agent.ExitBadConfig // 78, EX_CONFIG
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks bad usage: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// configError marks a bad config: exit 78.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// codeError carries an explicit exit code whose message was already printed.
type codeError struct{ code int }

func (e codeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps a command's error to the process's exit code, printing
// the error on w unless it was printed already (codeError).
func exitCode(err error, w io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ce codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	fmt.Fprintln(w, "rouse:", err)
	var (
		cfe configError
		ue  usageError
		ae  *agent.ExitError
		ee  interface{ ExitCode() int }
	)
	switch {
	case errors.As(err, &cfe):
		return exitBadConfig
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae):
		return ae.Code
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return exitFailure
}
