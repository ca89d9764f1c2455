package fakelogind

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/internal/testbus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait; it only turns a hang into a failure.
const guard = 20 * time.Second

func client(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func inhibit(conn *dbus.Conn, mode string) (*os.File, error) {
	var fd dbus.UnixFD
	err := conn.Object(BusName, Path).Call(Interface+".Inhibit", 0, "sleep", "test", "testing", mode).Store(&fd)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "inhibit"), nil
}

func ctxGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

func TestLogind(t *testing.T) {
	t.Run("InhibitHandsOutARealFDAndNoticesItsRelease", func(t *testing.T) {
		addr := testbus.Start(t)
		l := Start(t, addr)
		conn := client(t, addr)
		f, err := inhibit(conn, "delay")
		if err != nil {
			t.Fatalf("Inhibit: %v", err)
		}
		if !l.LockHeld() {
			t.Fatal("LockHeld = false after Inhibit")
		}
		hs := l.Holders()
		if len(hs) != 1 || hs[0].Who != "test" || hs[0].Mode != "delay" || hs[0].Sender != conn.Names()[0] {
			t.Fatalf("Holders = %+v", hs)
		}
		// The fake's own copy must be gone once the reply is out: only ours
		// keeps the lock, so it must still be held after a round trip.
		if err := conn.BusObject().Call("org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
			t.Fatal(err)
		}
		if !l.LockHeld() {
			t.Fatal("lock released while the client still holds the fd")
		}
		f.Close()
		if err := l.WaitLockReleased(ctxGuard(t)); err != nil {
			t.Fatalf("lock not released after the holder closed its fd: %v", err)
		}
		if len(l.Holders()) != 0 || l.Inhibits() != 1 {
			t.Fatalf("after release: holders %v, inhibits %d", l.Holders(), l.Inhibits())
		}
	})

	t.Run("DelayLocksAreRefusedWhileASleepIsPrepared", func(t *testing.T) {
		addr := testbus.Start(t)
		l := Start(t, addr)
		conn := client(t, addr)
		if err := l.PrepareForSleep(true); err != nil {
			t.Fatal(err)
		}
		f, err := inhibit(conn, "delay")
		if err == nil {
			f.Close()
			t.Fatal("Inhibit succeeded during a sleep")
		}
		if e, ok := err.(dbus.Error); !ok || e.Name != ErrOperationInProgress {
			t.Fatalf("Inhibit error = %v, want %s", err, ErrOperationInProgress)
		}
		if err := l.PrepareForSleep(false); err != nil {
			t.Fatal(err)
		}
		f, err = inhibit(conn, "delay")
		if err != nil {
			t.Fatalf("Inhibit after wake: %v", err)
		}
		f.Close()
	})

	t.Run("PrepareForSleepReachesSubscribers", func(t *testing.T) {
		addr := testbus.Start(t)
		l := Start(t, addr)
		conn := client(t, addr)
		if err := conn.AddMatchSignal(dbus.WithMatchInterface(Interface), dbus.WithMatchMember("PrepareForSleep")); err != nil {
			t.Fatal(err)
		}
		ch := make(chan *dbus.Signal, 4)
		conn.Signal(ch)
		for _, want := range []bool{true, false} {
			if err := l.PrepareForSleep(want); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-ch:
				if len(s.Body) != 1 || s.Body[0] != want {
					t.Fatalf("signal body %v, want [%v]", s.Body, want)
				}
			case <-time.After(guard):
				t.Fatal("no PrepareForSleep signal")
			}
		}
	})

	t.Run("SuspendWaitsForTheLockThenWakes", func(t *testing.T) {
		addr := testbus.Start(t)
		l := Start(t, addr)
		conn := client(t, addr)
		f, err := inhibit(conn, "delay")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			// Release the lock once the sleep is announced.
			_ = l.wait(context.Background(), func() bool { return l.sleeping })
			f.Close()
		}()
		released, err := l.Suspend(ctxGuard(t), guard)
		if err != nil || !released {
			t.Fatalf("Suspend = %v, %v; want released", released, err)
		}
	})

	t.Run("SuspendGivesUpOnAStuckHolderAfterMaxDelay", func(t *testing.T) {
		addr := testbus.Start(t)
		l := Start(t, addr)
		f, err := inhibit(client(t, addr), "delay")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		released, err := l.Suspend(ctxGuard(t), 50*time.Millisecond)
		if err != nil || released {
			t.Fatalf("Suspend = %v, %v; want not released", released, err)
		}
	})

	t.Run("CloseGivesUpTheNameSoWatchersSeeIt", func(t *testing.T) {
		addr := testbus.Start(t)
		l := Start(t, addr)
		conn := client(t, addr)
		if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"),
			dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, BusName)); err != nil {
			t.Fatal(err)
		}
		ch := make(chan *dbus.Signal, 4)
		conn.Signal(ch)
		f, err := inhibit(conn, "delay")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if l.LockHeld() {
			t.Fatal("a closed fake still reports a lock")
		}
		select {
		case s := <-ch:
			if len(s.Body) != 3 || s.Body[2] != "" {
				t.Fatalf("NameOwnerChanged body %v, want new owner empty", s.Body)
			}
		case <-time.After(guard):
			t.Fatal("no NameOwnerChanged after Close")
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}
