package roon

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
	"github.com/rouse-dev/rouse/trackers/roon/fakecore"
)

func TestSOODCodec(t *testing.T) {
	t.Run("ReadsWhatSoodJsWrites", func(t *testing.T) {
		// sood.js's query: "SOOD", 2, 'Q', then name length, name, value
		// length (big-endian), value.
		b := []byte("SOOD\x02Q\x10query_service_id\x00\x24" + RoonServiceID + "\x04_tid\x00\x03abc\x04null\xff\xff\x05empty\x00\x00")
		p, err := ParseSOOD(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Type != 'Q' || len(p.Props) != 4 {
			t.Fatalf("parsed %+v", p)
		}
		if v, _ := p.Get("query_service_id"); v != RoonServiceID {
			t.Errorf("query_service_id = %q", v)
		}
		if p.Props[2].Value != nil {
			t.Error("0xFFFF is null")
		}
		if v, ok := p.Get("empty"); !ok || v != "" {
			t.Error("a zero length is the empty string")
		}
		out, err := p.Encode()
		if err != nil || !bytes.Equal(out, b) {
			t.Errorf("re-encoded %q, %v", out, err)
		}
	})
	for _, bad := range []string{"", "SOOD", "SOOD\x01Q", "XOOD\x02Q", "SOOD\x02Q\x00", "SOOD\x02Q\x05ab", "SOOD\x02Q\x01a\x00", "SOOD\x02Q\x01a\x00\x05ab"} {
		if _, err := ParseSOOD([]byte(bad)); err == nil {
			t.Errorf("ParseSOOD(%q) accepted", bad)
		}
	}
}

// TestDiscoveryOnLoopback finds a fake core with real SOOD datagrams on
// 127.0.0.1 (an injected port), then pairs with it over real TCP.
func TestDiscoveryOnLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	core := fakecore.New("core-sood", "Loopback Core")
	core.SetZones(&fakecore.Zone{ID: "z1", Name: "Den", State: "playing", Track: &fakecore.Track{Title: "T", Artist: "A", Album: "B", Length: 100}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core.HTTPPort = ln.Addr().(*net.TCPAddr).Port
	wg.Go(func() { core.Serve(ctx, ln) })
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { core.ServeSOOD(ctx, pc, "") })
	// A second responder that is not a Roon Core is ignored.
	noise, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer noise.Close()

	o := DefaultOptions()
	o.Discovery.Address = "127.0.0.1"
	o.Discovery.Port = pc.LocalAddr().(*net.UDPAddr).Port
	st := teststore.Open(t)
	tr, err := New(*o, trackers.Deps{Name: "roon", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	f, err := discover(ctx, soodTargets(o.Discovery), time.Second, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.uniqueID != "core-sood" || f.addr != "127.0.0.1:"+strconv.Itoa(core.HTTPPort) {
		t.Errorf("found %+v", f)
	}
	h := fakehost.New()
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tr.Run(rctx, h) }()
	defer func() { rcancel(); <-done }()
	waitReal(t, "waiting for enable", func() bool { return h.Last().State == trackers.StateWaiting })
	if err := core.WaitHeld(context.Background()); err != nil {
		t.Fatal(err)
	}
	core.Enable()
	waitReal(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
	waitReal(t, "an item", func() bool { return st.Len("roon") == 1 })
	if s := tr.Stats(); s.Discoveries != 1 {
		t.Errorf("stats %+v", s)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestDiscoveryTimesOut(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0") // nobody answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = discover(context.Background(), soodTargets(DiscoveryOptions{Address: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}), 100*time.Millisecond, "")
	if err == nil {
		t.Fatal("discovery with no core answered")
	}
}

func waitReal(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("not %s after 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
