package fakelogind

import (
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/rouse-dev/rouse/internal/testbus"
)

func TestInhibitDelayMaxProperty(t *testing.T) {
	addr := testbus.Start(t)
	l := Start(t, addr)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func() uint64 {
		t.Helper()
		v, err := conn.Object(BusName, Path).GetProperty(Interface + ".InhibitDelayMaxUSec")
		if err != nil {
			t.Fatal(err)
		}
		u, ok := v.Value().(uint64)
		if !ok {
			t.Fatalf("InhibitDelayMaxUSec is %T, want uint64", v.Value())
		}
		return u
	}
	if got := read(); got != 5_000_000 {
		t.Errorf("default InhibitDelayMaxUSec = %d, want 5000000", got)
	}
	l.SetInhibitDelayMax(1500 * time.Millisecond)
	if got := read(); got != 1_500_000 {
		t.Errorf("after SetInhibitDelayMax(1.5s): %d, want 1500000", got)
	}
}
