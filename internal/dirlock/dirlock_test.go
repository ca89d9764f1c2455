package dirlock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary a second process that holds the lock of
// the directory it names until it is killed.
const helperEnv = "DIRLOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		l, err := Acquire(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked", l.Path())
		select {} // hold it until killed
	}
	goleak.VerifyTestMain(m)
}

// holder starts a process holding dir's lock and returns it once it does.
func holder(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "locked") {
		t.Fatalf("holder said %q, %v", line, err)
	}
	return cmd
}

func TestAcquire(t *testing.T) {
	t.Run("ASecondProcessIsToldWhoHoldsIt", func(t *testing.T) {
		dir := t.TempDir()
		h := holder(t, dir)
		_, err := Acquire(dir)
		var be *BusyError
		if !errors.As(err, &be) || !errors.Is(err, ErrBusy) {
			t.Fatalf("Acquire = %v, want a BusyError", err)
		}
		want := fmt.Sprintf("another rouse (pid %d) is already using %s", h.Process.Pid, dir)
		if err.Error() != want {
			t.Fatalf("error = %q, want %q", err, want)
		}
	})
	t.Run("KillNineFreesIt", func(t *testing.T) {
		dir := t.TempDir()
		h := holder(t, dir)
		if _, err := Acquire(dir); !errors.Is(err, ErrBusy) {
			t.Fatalf("Acquire while held = %v", err)
		}
		if err := h.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = h.Wait()
		l, err := Acquire(dir)
		if err != nil {
			t.Fatalf("Acquire after kill -9 = %v", err)
		}
		defer l.Release()
		if pid := filePID(t, dir); pid != os.Getpid() {
			t.Fatalf("lock file says pid %d, want ours (%d)", pid, os.Getpid())
		}
	})
	t.Run("AStaleFileFromADeadPIDIsTakenOver", func(t *testing.T) {
		dir := t.TempDir()
		// A pid that is surely dead: a child we started and reaped.
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, FileName), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Acquire(dir)
		if err != nil {
			t.Fatalf("Acquire over a stale file = %v", err)
		}
		defer l.Release()
		if pid := filePID(t, dir); pid != os.Getpid() {
			t.Fatalf("lock file says pid %d, want ours (%d)", pid, os.Getpid())
		}
	})
	t.Run("TwoOpensInOneProcessConflictToo", func(t *testing.T) {
		dir := t.TempDir()
		l, err := Acquire(dir)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Acquire(dir)
		var be *BusyError
		if !errors.As(err, &be) || be.PID != os.Getpid() {
			t.Fatalf("second Acquire = %v, want busy with our pid", err)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(); err != nil {
			t.Fatalf("second Release = %v", err)
		}
		l2, err := Acquire(dir)
		if err != nil {
			t.Fatalf("Acquire after Release = %v", err)
		}
		l2.Release()
	})
	t.Run("CreatesAMissingDirectoryPrivately", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		l, err := Acquire(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("dir = %v, %v; want 0700", st.Mode(), err)
		}
	})
}

func filePID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
