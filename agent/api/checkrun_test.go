package api_test

import (
	"context"
	"net"
	"testing"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/trackers"
)

// TestConfigCheckAndRunAgreeOnListen: `rouse config check` (config.Parse)
// accepts a listen address exactly when `rouse run` (the API's Listen)
// binds it, for every kind of host and whatever "localhost" resolves to.
func TestConfigCheckAndRunAgreeOnListen(t *testing.T) {
	ips := func(s ...string) []net.IPAddr {
		var out []net.IPAddr
		for _, x := range s {
			out = append(out, net.IPAddr{IP: net.ParseIP(x)})
		}
		return out
	}
	resolvers := map[string][]net.IPAddr{
		"loopback":      ips("127.0.0.1", "::1"),
		"v4":            ips("127.0.0.1"),
		"any":           ips("0.0.0.0"),
		"a-lan-address": ips("127.0.0.1", "192.168.1.5"),
		"nothing":       nil,
	}
	hosts := []string{"127.0.0.1", "127.0.0.2", "localhost", "LocalHost", "0.0.0.0", "", "192.0.2.1", "example.org", "localhost.example.org"}
	for rname, resolved := range resolvers {
		for _, host := range hosts {
			listen := net.JoinHostPort(host, "0")
			t.Run(rname+"/"+listen, func(t *testing.T) {
				defer api.SetLookupHost(func(context.Context, string) ([]net.IPAddr, error) { return resolved, nil })()
				_, cerr := config.Parse("rouse.yaml", []byte("listen: \""+listen+"\"\n"), trackers.NewKinds())
				s, err := api.New(&apitest.Backend{}, api.Options{Listen: listen, Token: testToken, Logger: quietLogger()})
				if err != nil {
					t.Fatal(err)
				}
				rerr := s.Listen()
				if rerr == nil {
					serve(t, s)()
				}
				if (cerr == nil) != (rerr == nil) {
					t.Fatalf("config check says %v, run says %v", cerr, rerr)
				}
			})
		}
	}
}
