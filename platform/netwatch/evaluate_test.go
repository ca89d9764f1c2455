package netwatch

import (
	"net/netip"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	a := netip.MustParseAddr
	lo := link{name: "lo", up: true, loopback: true}
	eth := link{name: "eth0", up: true}
	ethDown := link{name: "eth0"}
	wlan := link{name: "wlan0", up: true}
	v4default := defaultRoute{ifindex: []int{2}, gateway: a("10.0.0.1")}

	tests := []struct {
		name       string
		snap       snapshot
		wantOnline bool
		wantReason string // a substring of the reason
	}{
		{
			name:       "NothingAtAllIsOffline",
			snap:       snapshot{},
			wantReason: "no default route",
		},
		{
			name: "AnAddressWithoutDefaultRouteIsOffline",
			snap: snapshot{
				links: map[int]link{1: lo, 2: eth},
				addrs: []address{{index: 1, ip: a("127.0.0.1")}, {index: 2, ip: a("10.0.0.2")}},
			},
			wantReason: "no default route",
		},
		{
			name: "DefaultRouteAndAddressIsOnline",
			snap: snapshot{
				links:    map[int]link{1: lo, 2: eth},
				addrs:    []address{{index: 2, ip: a("10.0.0.2")}},
				defaults: []defaultRoute{v4default},
			},
			wantOnline: true,
			wantReason: "default route via eth0 (10.0.0.1), address 10.0.0.2 on eth0",
		},
		{
			name: "DefaultRouteOverADownLinkIsOffline",
			snap: snapshot{
				links:    map[int]link{2: ethDown},
				addrs:    []address{{index: 2, ip: a("10.0.0.2")}},
				defaults: []defaultRoute{v4default},
			},
			wantReason: "default route via eth0 but the link is down",
		},
		{
			name: "OnlyLoopbackAndLinkLocalAddressesAreOffline",
			snap: snapshot{
				links: map[int]link{1: lo, 2: eth},
				addrs: []address{
					{index: 1, ip: a("127.0.0.1")},
					{index: 1, ip: a("::1")},
					{index: 2, ip: a("fe80::1")},
					{index: 2, ip: a("169.254.3.4")},
				},
				defaults: []defaultRoute{v4default},
			},
			wantReason: "no usable address",
		},
		{
			name: "ATentativeAddressIsNotUsable",
			snap: snapshot{
				links:    map[int]link{2: eth},
				addrs:    []address{{index: 2, ip: a("2001:db8::2"), tentative: true}},
				defaults: []defaultRoute{{v6: true, ifindex: []int{2}}},
			},
			wantReason: "no usable address",
		},
		{
			name: "AnAddressOnADownLinkIsNotUsable",
			snap: snapshot{
				links:    map[int]link{2: eth, 3: {name: "eth1"}},
				addrs:    []address{{index: 3, ip: a("192.168.1.2")}},
				defaults: []defaultRoute{v4default},
			},
			wantReason: "no usable address",
		},
		{
			name: "IPv6DefaultRouteAloneIsOnline",
			snap: snapshot{
				links:    map[int]link{2: eth},
				addrs:    []address{{index: 2, ip: a("2001:db8::2")}},
				defaults: []defaultRoute{{v6: true, ifindex: []int{2}, gateway: a("fe80::1")}},
			},
			wantOnline: true,
			wantReason: "default route via eth0 (fe80::1), address 2001:db8::2 on eth0",
		},
		{
			name: "TheIPv4RouteAndAddressAreNamedFirst",
			snap: snapshot{
				links: map[int]link{2: eth, 3: wlan},
				addrs: []address{{index: 3, ip: a("2001:db8::2")}, {index: 3, ip: a("192.168.1.5")}},
				defaults: []defaultRoute{
					{v6: true, ifindex: []int{2}},
					{ifindex: []int{3}, gateway: a("192.168.1.1")},
				},
			},
			wantOnline: true,
			wantReason: "default route via wlan0 (192.168.1.1), address 192.168.1.5 on wlan0",
		},
		{
			name: "AMultipathRouteWithOneLiveHopIsOnline",
			snap: snapshot{
				links:    map[int]link{2: ethDown, 3: wlan},
				addrs:    []address{{index: 3, ip: a("192.168.1.5")}},
				defaults: []defaultRoute{{ifindex: []int{2, 3}}},
			},
			wantOnline: true,
			wantReason: "default route via wlan0",
		},
		{
			name: "AnUnknownLinkIsNamedByIndex",
			snap: snapshot{
				links:    map[int]link{},
				defaults: []defaultRoute{{ifindex: []int{7}}},
			},
			wantReason: "default route via if7 but the link is down",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			online, reason := evaluate(tt.snap)
			if online != tt.wantOnline || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("evaluate = (%v, %q), want (%v, containing %q)", online, reason, tt.wantOnline, tt.wantReason)
			}
		})
	}
}

func TestUsableAddressesListsOnlyUsableAddressesOnUpLinks(t *testing.T) {
	a := netip.MustParseAddr
	s := snapshot{
		links: map[int]link{1: {name: "lo", up: true, loopback: true}, 2: {name: "eth0", up: true}, 3: {name: "eth1"}},
		addrs: []address{
			{index: 1, ip: a("127.0.0.1")},
			{index: 2, ip: a("10.0.0.2")},
			{index: 2, ip: a("fe80::1")},
			{index: 2, ip: a("2001:db8::2")},
			{index: 2, ip: a("2001:db8::3"), tentative: true},
			{index: 3, ip: a("192.168.1.2")},
		},
	}
	got := strings.Join(s.usableAddresses(), ",")
	if want := "10.0.0.2,2001:db8::2"; got != want {
		t.Errorf("usableAddresses = %q, want %q", got, want)
	}
}
