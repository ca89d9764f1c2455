package roon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// SOOD, as node-roon-api's sood.js speaks it.
const (
	soodPort      = 9003
	soodMulticast = "239.255.90.90"
	// RoonServiceID is the service_id a Roon Core answers SOOD queries with.
	RoonServiceID = "00720724-5143-4a9b-abac-0e50cba674bb"
	maxSOOD       = 65535
)

// SOODPacket is one SOOD datagram: a type ('Q' query, 'R' reply) and its
// properties in wire order. A nil value is the null value (length 0xFFFF).
type SOODPacket struct {
	Type  byte
	Props []SOODProp
}

// SOODProp is one property.
type SOODProp struct {
	Name  string
	Value *string
}

// Get returns the value of the first property named name.
func (p SOODPacket) Get(name string) (string, bool) {
	for _, pr := range p.Props {
		if pr.Name == name && pr.Value != nil {
			return *pr.Value, true
		}
	}
	return "", false
}

var errSOOD = errors.New("malformed SOOD packet")

// ParseSOOD parses a datagram: "SOOD", version 2, the type byte, then
// properties (1-byte name length > 0, name, 2-byte big-endian value
// length, value; 0xFFFF is null). Unlike sood.js it refuses a length
// field cut short by the end of the datagram.
func ParseSOOD(b []byte) (SOODPacket, error) {
	var p SOODPacket
	if len(b) < 6 || string(b[:4]) != "SOOD" {
		return p, fmt.Errorf("%w: no SOOD magic", errSOOD)
	}
	if b[4] != 2 {
		return p, fmt.Errorf("%w: version %d", errSOOD, b[4])
	}
	p.Type = b[5]
	pos := 6
	for pos < len(b) {
		n := int(b[pos])
		pos++
		if n == 0 || pos+n > len(b) {
			return p, fmt.Errorf("%w: property name length at %d", errSOOD, pos-1)
		}
		name := string(b[pos : pos+n])
		pos += n
		if pos+2 > len(b) {
			return p, fmt.Errorf("%w: value length of %q cut short", errSOOD, name)
		}
		vl := int(b[pos])<<8 | int(b[pos+1])
		pos += 2
		pr := SOODProp{Name: name}
		if vl != 0xFFFF {
			if pos+vl > len(b) {
				return p, fmt.Errorf("%w: value of %q cut short", errSOOD, name)
			}
			v := string(b[pos : pos+vl])
			pr.Value = &v
			pos += vl
		}
		if len(p.Props) >= 64 {
			return p, fmt.Errorf("%w: too many properties", errSOOD)
		}
		p.Props = append(p.Props, pr)
	}
	return p, nil
}

// Encode writes the packet. Names longer than 255 bytes and values of
// 0xFFFF bytes or more cannot be written.
func (p SOODPacket) Encode() ([]byte, error) {
	b := []byte{'S', 'O', 'O', 'D', 2, p.Type}
	for _, pr := range p.Props {
		if len(pr.Name) == 0 || len(pr.Name) > 255 {
			return nil, fmt.Errorf("sood: property name %q: length must be 1..255", clip(pr.Name))
		}
		b = append(b, byte(len(pr.Name)))
		b = append(b, pr.Name...)
		if pr.Value == nil {
			b = append(b, 0xFF, 0xFF)
			continue
		}
		if len(*pr.Value) >= 0xFFFF {
			return nil, fmt.Errorf("sood: value of %q too long", clip(pr.Name))
		}
		b = append(b, byte(len(*pr.Value)>>8), byte(len(*pr.Value)))
		b = append(b, *pr.Value...)
	}
	if len(b) > maxSOOD {
		return nil, errors.New("sood: packet too long")
	}
	return b, nil
}

func strp(s string) *string { return &s }

// found is a core a SOOD reply named.
type found struct {
	uniqueID string
	name     string
	addr     string // host:http_port
}

// discover sends SOOD queries to targets and returns the first usable
// reply (a matching service_id, a unique_id and an http_port), preferring
// the core prefer (its unique_id) when it answers in the same round.
func discover(ctx context.Context, targets []*net.UDPAddr, timeout time.Duration, prefer string) (found, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return found{}, fmt.Errorf("discovery: %w", err)
	}
	defer conn.Close()
	var tid [16]byte
	_, _ = rand.Read(tid[:])
	q, err := SOODPacket{Type: 'Q', Props: []SOODProp{
		{Name: "query_service_id", Value: strp(RoonServiceID)},
		{Name: "_tid", Value: strp(hex.EncodeToString(tid[:]))},
	}}.Encode()
	if err != nil {
		return found{}, err
	}
	sent := 0
	var sendErr error
	for _, t := range targets {
		if _, err := conn.WriteToUDP(q, t); err != nil {
			sendErr = err
			continue
		}
		sent++
	}
	if sent == 0 {
		return found{}, fmt.Errorf("discovery: no query could be sent: %w", sendErr)
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	_ = conn.SetReadDeadline(deadline)
	var first *found
	buf := make([]byte, maxSOOD)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return found{}, ctx.Err()
			}
			if first != nil {
				return *first, nil
			}
			return found{}, fmt.Errorf("discovery: no Roon Core answered within %v", timeout)
		}
		f, ok := usableReply(buf[:n], from)
		if !ok {
			continue
		}
		if prefer == "" || f.uniqueID == prefer {
			return f, nil
		}
		if first == nil {
			first = &f
		}
	}
}

// usableReply reads a reply from a Roon Core.
func usableReply(b []byte, from *net.UDPAddr) (found, bool) {
	p, err := ParseSOOD(b)
	if err != nil || p.Type != 'R' {
		return found{}, false
	}
	if sid, _ := p.Get("service_id"); sid != RoonServiceID {
		return found{}, false
	}
	uid, _ := p.Get("unique_id")
	hp, _ := p.Get("http_port")
	port, err := strconv.Atoi(hp)
	if uid == "" || err != nil || port < 1 || port > 65535 {
		return found{}, false
	}
	host := from.IP.String()
	if ra, ok := p.Get("_replyaddr"); ok && net.ParseIP(ra) != nil {
		host = ra
	}
	if isLocalIP(host) {
		host = "127.0.0.1" // as node-roon-api does for a core on this machine
	}
	name, _ := p.Get("name")
	return found{uniqueID: uid, name: name, addr: net.JoinHostPort(host, strconv.Itoa(port))}, true
}

func isLocalIP(host string) bool {
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// soodTargets is where queries go: the configured address, or the
// multicast group and each IPv4 interface's broadcast address.
func soodTargets(o DiscoveryOptions) []*net.UDPAddr {
	if o.Address != "" {
		return []*net.UDPAddr{{IP: net.ParseIP(o.Address), Port: o.Port}}
	}
	out := []*net.UDPAddr{{IP: net.ParseIP(soodMulticast), Port: o.Port}}
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagBroadcast == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil {
				continue
			}
			ip, mask := n.IP.To4(), net.IP(n.Mask).To4()
			if mask == nil {
				continue
			}
			bc := make(net.IP, 4)
			for i := range bc {
				bc[i] = ip[i] | ^mask[i]
			}
			out = append(out, &net.UDPAddr{IP: bc, Port: o.Port})
		}
	}
	return out
}
