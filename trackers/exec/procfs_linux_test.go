package exec

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParsePids(t *testing.T) {
	for in, want := range map[string][]int{
		"":                nil,
		"12 345 6789 ":    {12, 345, 6789},
		"7":               {7},
		" 1  2\n3\t":      {1, 2, 3},
		"4194304 1 ":      {4194304, 1},
		"10 20 30 40 50 ": {10, 20, 30, 40, 50},
	} {
		if got := parsePids([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("parsePids(%q) = %v, want %v", in, got, want)
		}
	}
}

// A child started from a locked thread is listed in that thread's children
// file, by both reads of readPidsTwice, and by readPids; the thread is
// among dirNumbers of /proc/self/task.
func TestProcReadsSeeAChild(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	cmd := osexec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	path := "/proc/self/task/" + strconv.Itoa(tid) + "/children"
	buf := make([]byte, 1) // too small: it must grow
	first, second, err := readPidsTwice(path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	one, err := readPids(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]int{"first read": first, "second read": second, "readPids": one} {
		if !slices.Contains(got, cmd.Process.Pid) {
			t.Errorf("%s of %s = %v, lacks child %d", name, path, got, cmd.Process.Pid)
		}
	}
	tids, err := dirNumbers("/proc/self/task")
	if err != nil || !slices.Contains(tids, tid) || !slices.Contains(tids, os.Getpid()) {
		t.Errorf("dirNumbers(/proc/self/task) = %v, %v; want %d and %d among them", tids, err, tid, os.Getpid())
	}
}

// A file longer than the first buffer is read whole, and a missing one is
// fs.ErrNotExist; names that are no numbers are left out.
func TestProcReadsGrowAndFail(t *testing.T) {
	dir := t.TempDir()
	var want []int
	var b strings.Builder
	for i := range 3000 {
		want = append(want, 100000+i)
		b.WriteString(strconv.Itoa(100000+i) + " ")
	}
	f := filepath.Join(dir, "children")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	first, second, err := readPidsTwice(f, &buf)
	if err != nil || !slices.Equal(first, want) || !slices.Equal(second, want) {
		t.Errorf("readPidsTwice of %d pids: %d and %d pids, %v", len(want), len(first), len(second), err)
	}
	if _, err := readPids(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Errorf("readPids of a missing file: %v, want not-exist", err)
	}
	for _, n := range []string{"12", "x", "34"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := dirNumbers(dir)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []int{12, 34}) {
		t.Errorf("dirNumbers = %v, %v; want [12 34]", got, err)
	}
}
