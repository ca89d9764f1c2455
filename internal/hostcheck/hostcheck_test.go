package hostcheck

import "testing"

func TestAllowed(t *testing.T) {
	loop := New("127.0.0.1", false)
	lan := New("192.168.1.5", true)
	lan6 := New("[fd00::5]", true)
	unspec := New("0.0.0.0", true)
	for _, c := range []struct {
		name string
		p    Policy
		host string
		want bool
	}{
		{"LoopbackIPWithOurPort", loop, "127.0.0.1:8080", true},
		{"LocalhostWithoutPort", loop, "localhost", true},
		{"LocalhostIsCaseInsensitive", loop, "LocalHost:8080", true},
		{"IPv6LoopbackInBrackets", loop, "[::1]:8080", true},
		{"BareIPv6IsRefused", loop, "::1", false},
		{"UnbalancedBracketIsRefused", loop, "[::1", false},
		{"OtherPortIsRefused", loop, "127.0.0.1:9999", false},
		{"EmptyPortIsRefused", loop, "localhost:", false},
		{"EmptyHostIsRefused", loop, "", false},
		{"RebindingNameIsRefused", loop, "attacker.example:8080", false},
		{"LocalhostSubdomainIsRefused", loop, "app.localhost:8080", false},
		{"ListenIPRefusedWithoutPermission", New("192.168.1.5", false), "192.168.1.5:8080", false},
		{"ListenIPAllowedWithPermission", lan, "192.168.1.5:8080", true},
		{"OtherLANIPIsRefused", lan, "192.168.1.6:8080", false},
		{"ListenIPv6Allowed", lan6, "[fd00::5]:8080", true},
		{"UnspecifiedAddsNothing", unspec, "0.0.0.0:8080", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Allowed(c.host, "8080"); got != c.want {
				t.Errorf("Allowed(%q) = %v, want %v", c.host, got, c.want)
			}
		})
	}
}
