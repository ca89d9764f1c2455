package hostcheck

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// LookupHost resolves a listen host name ("localhost"); tests replace it.
var LookupHost = func(ctx context.Context, host string) ([]net.IPAddr, error) {
	return net.DefaultResolver.LookupIPAddr(ctx, host)
}

// LoopbackBind is rouse's one rule for a listen host that must stay on
// this machine, the same for `rouse config check` (the config validator)
// and `rouse run` (the API's bind), so the two cannot disagree. It returns
// the IP to bind:
//
//   - a loopback IP (127.0.0.1, ::1, any of 127/8) is itself;
//   - "localhost" is resolved (once, /etc/hosts first): it counts as
//     loopback only when it resolves and every address it resolves to is
//     loopback (/etc/hosts may say "0.0.0.0 localhost"); the IPv4 one is
//     preferred. Binding the resolved IP means a later change of
//     /etc/hosts cannot widen what was checked;
//   - anything else (another name, a non-loopback IP, "" for every
//     interface) is refused without a lookup.
//
// The error says why, for a message that then says what to do.
func LoopbackBind(ctx context.Context, host string) (net.IP, error) {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("%s is not a loopback address", ip)
		}
		return ip, nil
	}
	if !strings.EqualFold(host, "localhost") {
		if host == "" {
			return nil, fmt.Errorf("no host means every interface, not loopback")
		}
		return nil, fmt.Errorf("%q is not a loopback address (the only name allowed is localhost)", host)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := LookupHost(ctx, host)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("localhost does not resolve (%v)", err)
	}
	var bind net.IP
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("localhost resolves to %s, which is not a loopback address (check /etc/hosts)", a.IP)
		}
		if bind == nil || (bind.To4() == nil && a.IP.To4() != nil) {
			bind = a.IP
		}
	}
	return bind, nil
}
