package store

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// Environment of the helper process.
const (
	helperModeEnv = "ROUSE_STORE_TEST_HELPER"
	helperPathEnv = "ROUSE_STORE_TEST_DB"
)

// guard bounds every wait on a child; it only catches hangs, it never
// measures speed.
const guard = 60 * time.Second

// TestHelperProcess is not a test: the tests below re-exec the test binary
// into it to get a second process on the same database.
//
//	lock:   take the write lock (BEGIN IMMEDIATE), print "locked", hold it
//	        until stdin closes, then commit.
//	writer: open the store and add job runs in a loop, printing each
//	        committed id, until killed (or stdin closes).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperModeEnv)
	if mode == "" {
		return // run as a normal test: nothing to do
	}
	path := os.Getenv(helperPathEnv)
	var err error
	switch mode {
	case "lock":
		err = holdLock(path)
	case "writer":
		err = writeLoop(path)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func holdLock(path string) error {
	ctx := context.Background()
	db, err := sql.Open("sqlite", dsn(path, 5*time.Second, false))
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('helper', 'held')
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`); err != nil {
		return err
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	_, err = conn.ExecContext(ctx, `COMMIT`)
	return err
}

func writeLoop(path string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Open(ctx, path, Options{Logger: quiet()})
	if err != nil {
		return err
	}
	go func() { // an orphan guard: stop when the parent goes away
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	for i := 0; ctx.Err() == nil; i++ {
		id, err := s.AddJobRun(ctx, wire.JobRun{Job: "loop", Result: "ok", Output: strings.Repeat("x", i%500)})
		if err != nil {
			return err
		}
		fmt.Println(id)
	}
	return nil
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startChild(t *testing.T, mode, path string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperModeEnv+"="+mode, helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	return c
}

// wait closes the child's stdin, reads its output to the end and waits
// for it to exit.
func (c *child) wait(t *testing.T) error {
	t.Helper()
	_ = c.stdin.Close()
	timeout := time.After(guard)
	for {
		select {
		case _, ok := <-c.lines:
			if !ok {
				return c.cmd.Wait()
			}
		case <-timeout:
			t.Fatal("helper did not exit")
		}
	}
}

// next returns the child's next stdout line.
func (c *child) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("helper exited early")
		}
		return l
	case <-time.After(guard):
		t.Fatal("helper said nothing")
	}
	return ""
}

// lockedStore opens a store with the given busy timeout on a database
// whose write lock another process holds until its stdin closes.
func lockedStore(ctx context.Context, t *testing.T, busy time.Duration) (*Store, *child) {
	t.Helper()
	s, err := Open(ctx, t.TempDir()+"/rouse.db", Options{Logger: quiet(), BusyTimeout: busy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	c := startChild(t, "lock", s.Path())
	if l := c.next(t); l != "locked" {
		t.Fatalf("helper said %q", l)
	}
	return s, c
}

// stillWaiting fails the test when the write reports within a moment:
// while another process holds the lock it can finish neither with success
// nor with an error.
func stillWaiting(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("write finished while another process held the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestBusyTimeout(t *testing.T) {
	t.Run("AWriteWaitsForAnotherProcessLockThenSucceeds", func(t *testing.T) {
		ctx := ctxT(t)
		s, c := lockedStore(ctx, t, guard)
		done := make(chan error, 1)
		go func() { done <- s.SetDesired(ctx, "a", false) }()
		stillWaiting(t, done) // the busy timeout is long

		if err := c.stdin.Close(); err != nil { // release
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("write after the lock was released: %v", err)
			}
		case <-time.After(guard):
			t.Fatal("write never finished")
		}
		if err := c.wait(t); err != nil {
			t.Fatalf("helper: %v", err)
		}
		if d, _ := s.Desired(ctx); len(d) != 1 {
			t.Fatalf("desired = %v", d)
		}
	})
	t.Run("ALockHeldPastTheTimeoutIsAClearError", func(t *testing.T) {
		ctx := ctxT(t)
		s, c := lockedStore(ctx, t, 100*time.Millisecond)
		err := s.SetDesired(ctx, "a", false)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("write under a held lock = %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), "another process") {
			t.Errorf("error does not say what happened: %v", err)
		}
		// Reads go on while the lock is held (WAL).
		if _, err := s.Desired(ctx); err != nil {
			t.Errorf("read under a held write lock: %v", err)
		}
		if err := c.wait(t); err != nil {
			t.Fatalf("helper: %v", err)
		}
		if err := s.SetDesired(ctx, "a", false); err != nil {
			t.Fatalf("write after release: %v", err)
		}
	})
}

func TestCloseIsBoundedByItsContext(t *testing.T) {
	t.Run("AWriteStuckOnAnotherProcessLockIsCancelled", func(t *testing.T) {
		ctx := ctxT(t)
		s, c := lockedStore(ctx, t, 10*guard)
		done := make(chan error, 1)
		go func() { done <- s.SetDesired(ctx, "a", false) }()
		stillWaiting(t, done) // let the write reach the lock; it cannot finish before Close
		closeCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		closed := make(chan error, 1)
		go func() { closed <- s.Close(closeCtx) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("write cut by Close = %v, want ErrClosed", err)
			}
		case <-time.After(guard):
			t.Fatal("the write was not cancelled when Close's context ended")
		}
		select {
		case <-closed: // the marker write may fail under the lock: best effort
		case <-time.After(guard):
			t.Fatal("Close did not return after its context ended")
		}
		if s.State() != wire.StoreClosed {
			t.Errorf("State = %q, want closed", s.State())
		}
		if err := c.wait(t); err != nil {
			t.Fatalf("helper: %v", err)
		}
		// The unfinished close left the marker set: the next open says so.
		if err := s.Reopen(ctx); err != nil {
			t.Fatal(err)
		}
		if !s.UncleanShutdown() {
			t.Error("UncleanShutdown = false after a close that could not write its marker")
		}
		if d, _ := s.Desired(ctx); len(d) != 0 {
			t.Errorf("the cancelled write was stored: %v", d)
		}
	})
}

// TestSIGKILLLosesNoCommittedRow kills a writing process mid-loop and
// checks that every row it reported committed survived, and that the
// database is intact.
func TestSIGKILLLosesNoCommittedRow(t *testing.T) {
	path := t.TempDir() + "/rouse.db"
	c := startChild(t, "writer", path)
	var ids []int64
	for len(ids) < 300 {
		id, err := strconv.ParseInt(c.next(t), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL on Unix
		t.Fatal(err)
	}
	for l := range c.lines { // ids printed before the kill landed
		id, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			continue // a line cut by the kill
		}
		ids = append(ids, id)
	}
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper ended with %v, want killed", err)
	}

	ctx := ctxT(t)
	s, err := Open(ctx, path, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	t.Run("TheNextOpenReportsAnUncleanShutdown", func(t *testing.T) {
		if !s.UncleanShutdown() {
			t.Error("UncleanShutdown = false after SIGKILL")
		}
	})
	t.Run("EveryReportedRowIsThere", func(t *testing.T) {
		runs, err := s.JobRuns(ctx, "loop", 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		have := map[int64]bool{}
		for _, r := range runs {
			have[r.ID] = true
		}
		for _, id := range ids {
			if !have[id] {
				t.Fatalf("row %d was reported committed and is missing (%d reported, %d stored)", id, len(ids), len(runs))
			}
		}
	})
	t.Run("IntegrityCheckIsOK", func(t *testing.T) {
		if err := s.IntegrityCheck(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStateAndVerifyNeverWait: health and readiness read State and Verify
// while a write is stuck on another process's lock and Close waits for it
// (what a wake does when another program holds the database). They must
// answer while the lock is still held, not after.
func TestStateAndVerifyNeverWait(t *testing.T) {
	ctx := ctxT(t)
	s, c := lockedStore(ctx, t, 10*guard)
	done := make(chan error, 1)
	go func() { done <- s.SetDesired(ctx, "a", false) }()
	stillWaiting(t, done) // the write holds the store's read side
	closeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- s.Close(closeCtx) }()
	stillWaiting(t, closed) // Close waits for the write: the store's write side is wanted

	answered := make(chan string, 1)
	go func() {
		st := s.State()
		err := s.Verify()
		answered <- fmt.Sprintf("%s %v", st, err)
	}()
	select {
	case got := <-answered:
		if got != "open <nil>" {
			t.Errorf("State and Verify during a stuck close = %q, want the last verdict \"open <nil>\"", got)
		}
	case <-time.After(guard):
		t.Fatal("State/Verify waited for the lock another process holds")
	}
	cancel() // end the close, which cancels the write
	<-done
	<-closed
	if err := c.wait(t); err != nil {
		t.Fatalf("helper: %v", err)
	}
}
