//go:build linux

package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// tb lets the bench reuse the test harness (tests/internal/harness,
// internal/testbus, internal/fakelogind), which speaks testing.TB, from a
// plain program: Fatal aborts the current benchmark by panicking with
// errAbort (recovered by runBench), cleanups run when the benchmark ends.
// Only the methods the harness calls are implemented; the embedded nil
// interface makes any other call panic loudly rather than pass silently.
type tb struct {
	testing.TB
	name string

	mu       sync.Mutex
	failed   bool
	cleanups []func()
	dirs     []string
}

// errAbort is what Fatal panics with.
type errAbort struct{ msg string }

func newTB(name string) *tb { return &tb{name: name} }

func (t *tb) Name() string { return t.name }
func (t *tb) Helper()      {}

func (t *tb) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "  [%s] %s\n", t.name, fmt.Sprintf(format, args...))
}
func (t *tb) Log(args ...any) { t.Logf("%s", fmt.Sprint(args...)) }

func (t *tb) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	t.Logf("error: "+format, args...)
}
func (t *tb) Error(args ...any) { t.Errorf("%s", fmt.Sprint(args...)) }

func (t *tb) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic(errAbort{fmt.Sprintf(format, args...)})
}
func (t *tb) Fatal(args ...any) { t.Fatalf("%s", fmt.Sprint(args...)) }

func (t *tb) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "rouse-bench")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.mu.Lock()
	t.dirs = append(t.dirs, d)
	t.mu.Unlock()
	return d
}

// finish runs the cleanups, newest first, then removes the temp dirs.
func (t *tb) finish() {
	t.mu.Lock()
	cs, ds := t.cleanups, t.dirs
	t.cleanups, t.dirs = nil, nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if p := recover(); p != nil {
					if _, ok := p.(errAbort); !ok {
						panic(p)
					}
				}
			}()
			cs[i]()
		}()
	}
	for _, d := range ds {
		_ = os.RemoveAll(d)
	}
}
