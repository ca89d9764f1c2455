// Package hostcheck owns the one Host-header policy of rouse's local
// listeners (the REST API and the on-demand entry points): a request is
// ours only when its Host names a loopback address — localhost, 127.0.0.1
// or [::1] — with our port or no port, or, when the listener was allowed a
// non-loopback address, that very IP. Anything else (a DNS-rebinding name
// such as attacker.example resolving to 127.0.0.1) is refused.
package hostcheck

import (
	"net"
	"strings"
)

// Policy decides which Host headers are ours. The zero value accepts the
// loopback names only.
type Policy struct {
	extra string // the listen IP when a non-loopback address is allowed, else ""
}

// New returns the policy for a listener on listenHost (the host part of
// its address). With allowNonLoopback, a specific non-loopback IP in
// listenHost is accepted as a Host too; an unspecified address (0.0.0.0,
// ::) or a name never is.
func New(listenHost string, allowNonLoopback bool) Policy {
	var p Policy
	if allowNonLoopback {
		if ip := net.ParseIP(strings.Trim(listenHost, "[]")); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			if ip.To4() == nil {
				p.extra = "[" + ip.String() + "]"
			} else {
				p.extra = ip.String()
			}
		}
	}
	return p
}

// Allowed reports whether host (a Host header) names us: localhost,
// 127.0.0.1 or [::1] (or the allowed listen IP), with port or no port.
func (p Policy) Allowed(host, port string) bool {
	name := host
	if h, pt, err := net.SplitHostPort(host); err == nil {
		if pt != port {
			return false
		}
		name = h
		if strings.Contains(name, ":") {
			name = "[" + name + "]"
		}
	} else if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") {
		return false
	}
	switch strings.ToLower(name) {
	case "localhost", "127.0.0.1", "[::1]":
		return true
	}
	return p.extra != "" && name == p.extra
}
