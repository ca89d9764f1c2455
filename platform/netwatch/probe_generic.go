package netwatch

import (
	"fmt"
	"net"
	"net/netip"
)

// Destinations used to ask the kernel for a route. They are documentation
// addresses (RFC 5737, RFC 3849): only a default route leads to them.
// Connecting a UDP socket makes the kernel pick a route and a source
// address, and fails when there is none; no packet is sent.
var routeProbes = []struct {
	v6   bool
	addr string
}{
	{false, "192.0.2.1:9"},
	{true, "[2001:db8::1]:9"},
}

// genericProbe reads the state through the portable net package. It is the
// evaluation on systems without a native one, and the Linux fallback when
// netlink is unavailable.
func genericProbe() (snapshot, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return snapshot{}, fmt.Errorf("list interfaces: %w", err)
	}
	snap := snapshot{links: map[int]link{}}
	byAddr := map[netip.Addr]int{}
	for _, ifc := range ifs {
		snap.links[ifc.Index] = link{
			name:     ifc.Name,
			up:       ifc.Flags&net.FlagUp != 0,
			loopback: ifc.Flags&net.FlagLoopback != 0,
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // the interface vanished meanwhile
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			snap.addrs = append(snap.addrs, address{index: ifc.Index, ip: ip})
			byAddr[ip] = ifc.Index
		}
	}
	for _, p := range routeProbes {
		conn, err := net.Dial("udp", p.addr)
		if err != nil {
			continue // no route for this family
		}
		local := conn.LocalAddr().(*net.UDPAddr)
		conn.Close()
		ip, ok := netip.AddrFromSlice(local.IP)
		if !ok {
			continue
		}
		if idx, ok := byAddr[ip.Unmap()]; ok {
			snap.defaults = append(snap.defaults, defaultRoute{v6: p.v6, ifindex: []int{idx}})
		}
	}
	return snap, nil
}
