//go:build linux

package harness

import (
	"testing"

	"github.com/rouse-dev/rouse/internal/fakelogind"
	"github.com/rouse-dev/rouse/internal/testbus"
)

// Power is a private system bus, optionally with a fake logind on it.
type Power struct {
	t      testing.TB
	Bus    *testbus.Bus
	Logind *fakelogind.Logind // nil without logind
}

// NewPower starts a private bus and, when withLogind, a fake logind on it.
// Both end with the test.
func NewPower(t testing.TB, withLogind bool) *Power {
	t.Helper()
	p := &Power{t: t, Bus: testbus.New(t)}
	if withLogind {
		p.Logind = fakelogind.Start(t, p.Bus.Addr())
	}
	return p
}

// Addr is the bus address for DBUS_SYSTEM_BUS_ADDRESS.
func (p *Power) Addr() string { return p.Bus.Addr() }

// RestartLogind closes the fake logind (its name leaves the bus, its locks
// are forgotten) and starts a new one on the same bus.
func (p *Power) RestartLogind() {
	p.t.Helper()
	if p.Logind != nil {
		_ = p.Logind.Close()
	}
	p.Logind = fakelogind.Start(p.t, p.Bus.Addr())
}

// RestartBus kills the bus daemon (every connection drops, the fake logind
// with it) and starts a new daemon on the same address with a new fake
// logind.
func (p *Power) RestartBus() {
	p.t.Helper()
	old := p.Logind
	p.Bus.Restart()
	if old != nil {
		_ = old.Close()
	}
	p.Logind = fakelogind.Start(p.t, p.Bus.Addr())
}
