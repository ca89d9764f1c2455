package fakecore

import (
	"context"
	"errors"
	"net"
	"strconv"
)

// RoonServiceID is the service a Roon Core announces over SOOD.
const RoonServiceID = "00720724-5143-4a9b-abac-0e50cba674bb"

// ServeSOOD answers SOOD queries for the Roon service on pc until ctx
// ends: a reply ('R') to the sender with service_id, unique_id, name,
// display_version, http_port and the query's _tid, as sood.js parses it.
// ReplyAddr, when set, is sent as _replyaddr.
func (c *Core) ServeSOOD(ctx context.Context, pc net.PacketConn, replyAddr string) {
	stop := context.AfterFunc(ctx, func() { _ = pc.Close() })
	defer stop()
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		props, typ, err := parseSOOD(buf[:n])
		if err != nil || typ != 'Q' || props["query_service_id"] != RoonServiceID {
			continue
		}
		out := [][2]string{
			{"service_id", RoonServiceID}, {"unique_id", c.ID}, {"name", c.Name},
			{"display_version", c.Version}, {"http_port", strconv.Itoa(c.HTTPPort)},
		}
		if replyAddr != "" {
			out = append(out, [2]string{"_replyaddr", replyAddr})
		}
		if tid, ok := props["_tid"]; ok {
			out = append(out, [2]string{"_tid", tid})
		}
		_, _ = pc.WriteTo(encodeSOOD('R', out), from)
	}
}

func encodeSOOD(typ byte, props [][2]string) []byte {
	b := []byte("SOOD\x02")
	b = append(b, typ)
	for _, p := range props {
		b = append(b, byte(len(p[0])))
		b = append(b, p[0]...)
		b = append(b, byte(len(p[1])>>8), byte(len(p[1])))
		b = append(b, p[1]...)
	}
	return b
}

// parseSOOD is sood.js's _parse, strict.
func parseSOOD(b []byte) (map[string]string, byte, error) {
	bad := errors.New("bad SOOD packet")
	if len(b) < 6 || string(b[:4]) != "SOOD" || b[4] != 2 {
		return nil, 0, bad
	}
	props := map[string]string{}
	pos := 6
	for pos < len(b) {
		n := int(b[pos])
		pos++
		if n == 0 || pos+n+2 > len(b) {
			return nil, 0, bad
		}
		name := string(b[pos : pos+n])
		pos += n
		l := int(b[pos])<<8 | int(b[pos+1])
		pos += 2
		if l == 0xFFFF {
			continue
		}
		if pos+l > len(b) {
			return nil, 0, bad
		}
		props[name] = string(b[pos : pos+l])
		pos += l
	}
	return props, b[5], nil
}
