//go:build linux

package notify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// guard bounds every real-time wait; it never asserts speed.
const guard = 20 * time.Second

// listen opens a unixgram socket as NOTIFY_SOCKET for the test.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	// A short directory: socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "rn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// next reads one datagram.
func next(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(guard)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyOverARealSocket(t *testing.T) {
	t.Run("ReadyStoppingAndStatusAreSent", func(t *testing.T) {
		conn := listen(t)
		if err := Ready(); err != nil {
			t.Fatalf("Ready = %v", err)
		}
		if got := next(t, conn); got != "READY=1" {
			t.Errorf("got %q, want READY=1", got)
		}
		if err := Status("restoring 3 components\nnow"); err != nil {
			t.Fatalf("Status = %v", err)
		}
		if got := next(t, conn); got != "STATUS=restoring 3 components now" {
			t.Errorf("got %q", got)
		}
		if err := Stopping(); err != nil {
			t.Fatalf("Stopping = %v", err)
		}
		if got := next(t, conn); got != "STOPPING=1" {
			t.Errorf("got %q, want STOPPING=1", got)
		}
		if os.Getenv("NOTIFY_SOCKET") == "" {
			t.Errorf("NOTIFY_SOCKET was unset; children and later calls need it")
		}
	})

	t.Run("TheWatchdogPingsUntilCancelled", func(t *testing.T) {
		conn := listen(t)
		t.Setenv("WATCHDOG_USEC", "100000") // 100 ms: pings every 50 ms
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Watchdog(ctx) }()
		for range 3 {
			if got := next(t, conn); got != "WATCHDOG=1" {
				t.Errorf("got %q, want WATCHDOG=1", got)
			}
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watchdog = %v", err)
			}
		case <-time.After(guard):
			t.Fatal("Watchdog did not return after cancel")
		}
	})

	t.Run("AWatchdogMeantForAnotherProcessIsIgnored", func(t *testing.T) {
		conn := listen(t)
		t.Setenv("WATCHDOG_USEC", "100000")
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
		if err := Watchdog(t.Context()); err != nil {
			t.Errorf("Watchdog = %v", err)
		}
		if err := Ready(); err != nil {
			t.Fatal(err)
		}
		if got := next(t, conn); got != "READY=1" {
			t.Errorf("first datagram %q, want READY=1 (no watchdog ping before it)", got)
		}
	})

	t.Run("ASocketThatIsGoneIsAnError", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody.sock"))
		if err := Ready(); err == nil {
			t.Errorf("Ready to a missing socket = nil, want an error")
		}
	})
}

func TestEverythingIsANoOpWithoutNotifySocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "100000")
	for name, f := range map[string]func() error{
		"Ready":    Ready,
		"Stopping": Stopping,
		"Status":   func() error { return Status("x") },
		// Returns at once: no socket, no watchdog.
		"Watchdog": func() error { return Watchdog(context.Background()) },
	} {
		if err := f(); err != nil {
			t.Errorf("%s = %v, want nil", name, err)
		}
	}
}
