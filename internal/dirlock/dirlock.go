// Package dirlock owns the rule "one agent per data directory": an
// exclusive advisory lock on <dir>/rouse.lock (flock on Unix, LockFileEx on
// Windows), taken before the agent opens, sweeps or kills anything, and held
// for the life of the process. The kernel drops it when the process dies,
// however it dies (kill -9 included), so a file left behind by a dead agent
// is simply taken over. The file holds the owner's pid, for the message a
// second agent prints.
//
// The file is never removed: removing it on release would let two agents
// lock two different inodes of the same name.
package dirlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the lock file's name in the data directory.
const FileName = "rouse.lock"

// BusyError says another process holds the lock.
type BusyError struct {
	Dir string
	PID int // 0 when the owner has not written its pid yet
}

func (e *BusyError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another rouse (pid %d) is already using %s", e.PID, e.Dir)
	}
	return fmt.Sprintf("another rouse is already using %s", e.Dir)
}

// ErrBusy matches every *BusyError with errors.Is.
var ErrBusy = errors.New("data directory in use")

// Is makes errors.Is(err, ErrBusy) true for a *BusyError.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Lock is a held data-directory lock.
type Lock struct {
	f    *os.File
	path string
}

// Acquire creates dir (0700) if needed and takes its lock without waiting:
// a *BusyError when another process holds it.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the data directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the data directory's lock: %w", err)
	}
	busy, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if busy {
		pid := readPID(f)
		f.Close()
		return nil, &BusyError{Dir: dir, PID: pid}
	}
	if err := writePID(f, os.Getpid()); err != nil {
		_ = unlock(f)
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Release lets the lock go (the process's death does the same). It is safe
// to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	_ = f.Truncate(0) // no stale pid for the next reader; harmless if it fails
	uerr := unlock(f)
	cerr := f.Close()
	return errors.Join(uerr, cerr)
}

func writePID(f *os.File, pid int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(pid)+"\n"), 0)
	return err
}

// readPID reads the owner's pid, waiting a little for an owner that has
// just locked the file and not yet written it.
func readPID(f *os.File) int {
	for range 5 {
		buf := make([]byte, 32)
		n, err := f.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n]))); err == nil && pid > 0 {
			return pid
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}
