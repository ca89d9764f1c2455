// Command rouse is the resilience agent: `rouse run` is the agent itself
// (what the OS service runs); the other commands are clients of its local
// REST API or manage its install. Exit codes: 0 ok, 1 failure, 2 bad usage
// or bad config.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// usageError marks bad usage or bad config: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// codeError carries an explicit exit code whose message was already printed.
type codeError struct{ code int }

func (e codeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ce codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "rouse:", err)
		return ee.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "rouse:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
