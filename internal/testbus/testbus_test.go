package testbus

import (
	"testing"

	"github.com/godbus/dbus/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestBus(t *testing.T) {
	t.Run("AcceptsClientsThatOwnNamesAndPassFDs", func(t *testing.T) {
		conn := connect(t, Start(t))
		if !conn.SupportsUnixFDs() {
			t.Fatal("connection does not support unix fd passing")
		}
		reply, err := conn.RequestName("org.example.Test", dbus.NameFlagDoNotQueue)
		if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("RequestName = %v, %v; want primary owner", reply, err)
		}
	})

	t.Run("RestartDropsClientsAndServesTheSameAddress", func(t *testing.T) {
		b := New(t)
		old := connect(t, b.Addr())
		b.Restart()
		<-old.Context().Done() // the old daemon is gone, so is the connection
		conn := connect(t, b.Addr())
		var id string
		if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil || id == "" {
			t.Fatalf("GetId on the restarted bus = %q, %v", id, err)
		}
	})

	t.Run("StopTwiceIsHarmless", func(t *testing.T) {
		b := New(t)
		b.Stop()
		b.Stop()
		if _, err := dbus.Connect(b.Addr()); err == nil {
			t.Fatal("connected to a stopped bus")
		}
	})
}
