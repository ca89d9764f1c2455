//go:build linux

package netwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// nlMon watches rtnetlink. It holds two sockets, both opened on the
// calling thread (and so in its network namespace): events, bound to the
// link, address and route multicast groups, and dump, used to read the
// current tables on each evaluation.
type nlMon struct {
	events *os.File // non-blocking, in the runtime poller: Close unblocks Read
	buf    []byte

	mu   sync.Mutex // guards dump, seq and dbuf
	dump int
	seq  uint32
	dbuf []byte
}

const nlGroups = unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR |
	unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE

func newOSMon() (osMon, error) {
	efd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(efd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: nlGroups}); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A larger receive buffer makes overruns (ENOBUFS) rarer during big
	// bursts; an overrun is handled anyway (it counts as a change).
	_ = unix.SetsockoptInt(efd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)

	dfd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(dfd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(efd)
		unix.Close(dfd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	// A guard against a kernel that never answers a dump.
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(dfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	return &nlMon{
		events: os.NewFile(uintptr(efd), "netlink-route"),
		buf:    make([]byte, 64<<10),
		dump:   dfd,
		dbuf:   make([]byte, 64<<10), // the kernel caps a dump chunk at 32 KiB
	}, nil
}

// Receive blocks until the kernel reports a link, address or route change.
func (m *nlMon) Receive() error {
	for {
		n, err := m.events.Read(m.buf)
		if errors.Is(err, unix.ENOBUFS) {
			return nil // messages were lost: something changed
		}
		if err != nil {
			return err
		}
		if n >= unix.NLMSG_HDRLEN {
			return nil
		}
	}
}

// Close unblocks Receive and releases both sockets.
func (m *nlMon) Close() error {
	err := m.events.Close()
	m.mu.Lock()
	if m.dump >= 0 {
		unix.Close(m.dump)
		m.dump = -1
	}
	m.mu.Unlock()
	return err
}

func (m *nlMon) probe() (snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dump < 0 {
		return snapshot{}, errors.New("netlink: closed")
	}
	snap := snapshot{links: map[int]link{}}

	msgs, err := m.request(unix.RTM_GETLINK, unix.AF_UNSPEC)
	if err != nil {
		return snapshot{}, fmt.Errorf("dump links: %w", err)
	}
	for i := range msgs {
		if idx, l, ok := parseLink(&msgs[i]); ok {
			snap.links[idx] = l
		}
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		msgs, err := m.request(unix.RTM_GETADDR, fam)
		if err != nil {
			return snapshot{}, fmt.Errorf("dump addresses: %w", err)
		}
		for i := range msgs {
			if a, ok := parseAddr(&msgs[i]); ok {
				snap.addrs = append(snap.addrs, a)
			}
		}
		msgs, err = m.request(unix.RTM_GETROUTE, fam)
		if err != nil {
			return snapshot{}, fmt.Errorf("dump routes: %w", err)
		}
		for i := range msgs {
			if r, ok := parseDefaultRoute(&msgs[i]); ok {
				snap.defaults = append(snap.defaults, r)
			}
		}
	}
	return snap, nil
}

// request sends a dump request and gathers the answer up to NLMSG_DONE.
func (m *nlMon) request(typ uint16, family uint8) ([]syscall.NetlinkMessage, error) {
	m.seq++
	seq := m.seq
	// nlmsghdr + rtgenmsg (the kernel accepts the short header for dumps).
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofRtGenmsg)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:4], uint32(len(req)))
	ne.PutUint16(req[4:6], typ)
	ne.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:12], seq)
	ne.PutUint32(req[12:16], 0)
	req[16] = family
	if err := unix.Sendto(m.dump, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []syscall.NetlinkMessage
	buf := m.dbuf
	for {
		n, _, err := unix.Recvfrom(m.dump, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, msg := range msgs {
			if msg.Header.Seq != seq {
				continue // a stale answer to an earlier, interrupted request
			}
			switch msg.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(msg.Data) >= 4 {
					if errno := int32(ne.Uint32(msg.Data[0:4])); errno != 0 {
						return nil, syscall.Errno(-errno)
					}
				}
				return nil, errors.New("netlink: error answer")
			}
			// Copy: buf is reused by the next read.
			msg.Data = append([]byte(nil), msg.Data...)
			out = append(out, msg)
		}
	}
}

// parseLink reads an RTM_NEWLINK message.
func parseLink(m *syscall.NetlinkMessage) (int, link, bool) {
	if m.Header.Type != unix.RTM_NEWLINK || len(m.Data) < unix.SizeofIfInfomsg {
		return 0, link{}, false
	}
	ne := binary.NativeEndian
	idx := int(int32(ne.Uint32(m.Data[4:8])))
	flags := ne.Uint32(m.Data[8:12])
	l := link{
		up:       flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0,
		loopback: flags&unix.IFF_LOOPBACK != 0,
	}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return 0, link{}, false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFLA_IFNAME {
			l.name = cString(a.Value)
		}
	}
	return idx, l, true
}

// parseAddr reads an RTM_NEWADDR message.
func parseAddr(m *syscall.NetlinkMessage) (address, bool) {
	if m.Header.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg {
		return address{}, false
	}
	ne := binary.NativeEndian
	flags := uint32(m.Data[2])
	a := address{index: int(ne.Uint32(m.Data[4:8]))}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return address{}, false
	}
	var local, addr netip.Addr
	for _, at := range attrs {
		switch at.Attr.Type {
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(at.Value)
		case unix.IFA_ADDRESS:
			addr, _ = netip.AddrFromSlice(at.Value)
		case unix.IFA_FLAGS:
			if len(at.Value) >= 4 {
				flags = ne.Uint32(at.Value[:4])
			}
		}
	}
	// On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
	a.ip = addr
	if local.IsValid() {
		a.ip = local
	}
	if !a.ip.IsValid() {
		return address{}, false
	}
	a.tentative = flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0
	return a, true
}

// parseDefaultRoute reads an RTM_NEWROUTE message and keeps it only when it
// is a usable default route (unicast, prefix length 0, not in the local
// table).
func parseDefaultRoute(m *syscall.NetlinkMessage) (defaultRoute, bool) {
	if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
		return defaultRoute{}, false
	}
	family, dstLen, table, typ := m.Data[0], m.Data[1], uint32(m.Data[4]), m.Data[7]
	if dstLen != 0 || typ != unix.RTN_UNICAST {
		return defaultRoute{}, false
	}
	ne := binary.NativeEndian
	r := defaultRoute{v6: family == unix.AF_INET6}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return defaultRoute{}, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			if len(a.Value) >= 4 {
				table = ne.Uint32(a.Value[:4])
			}
		case unix.RTA_OIF:
			if len(a.Value) >= 4 {
				r.ifindex = append(r.ifindex, int(ne.Uint32(a.Value[:4])))
			}
		case unix.RTA_GATEWAY:
			r.gateway, _ = netip.AddrFromSlice(a.Value)
		case unix.RTA_MULTIPATH:
			r.ifindex = append(r.ifindex, parseMultipath(a.Value)...)
		}
	}
	if table == unix.RT_TABLE_LOCAL || len(r.ifindex) == 0 {
		return defaultRoute{}, false
	}
	return r, true
}

// parseMultipath returns the interface indexes of an RTA_MULTIPATH value:
// a sequence of struct rtnexthop {u16 len; u8 flags; u8 hops; s32 ifindex}
// each followed by its own attributes.
func parseMultipath(b []byte) []int {
	var out []int
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofRtNexthop {
		l := int(ne.Uint16(b[0:2]))
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		out = append(out, int(int32(ne.Uint32(b[4:8]))))
		l = (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
