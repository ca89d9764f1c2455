//go:build linux

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/trackers/roon/fakecore"
)

// TestHostileRoonCore points the built binary's roon tracker at a core
// found by SOOD among malformed replies, then has the core send garbage:
// random frames, MOO with broken framing, answers to ids never sent,
// oversized frames. The agent must stay up and answering, never crash,
// and pair again once the core behaves.
func TestHostileRoonCore(t *testing.T) {
	p := harness.NewPower(t, false)
	core := fakecore.New("core-hostile", "Hostile Core")
	core.SetZones(&fakecore.Zone{ID: "z", Name: "Den", State: "playing", Track: &fakecore.Track{Title: "T", Artist: "A", Album: "B", Length: 100}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core.HTTPPort = ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { core.Serve(ctx, ln) })

	// SOOD: every query gets 50 malformed replies first, then the real one.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	noisy := &noisySOOD{PacketConn: pc}
	wg.Go(func() { core.ServeSOOD(ctx, noisy, "") })

	cfg := fmt.Sprintf(`
trackers:
  - name: roon
    kind: roon
    discovery: {address: 127.0.0.1, port: %d}
    ping_interval: 1s
    backoff: {initial: 50ms, max: 200ms}
`, pc.LocalAddr().(*net.UDPAddr).Port)
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr()})
	a.WaitStates(guard, map[string]string{"roon": "waiting"})
	if err := core.WaitHeld(harness.Ctx(t, guard)); err != nil {
		t.Fatal(err)
	}
	core.Enable()
	a.WaitStates(guard, map[string]string{"roon": "ready"})

	rng := rand.New(rand.NewPCG(1, 2))
	frames := [][]byte{
		[]byte("MOO/1 COMPLETE Success\nRequest-Id: 99999\n\n"),
		[]byte("MOO/1 CONTINUE Changed\nRequest-Id: 2\nContent-Length: 999999\nContent-Type: application/json\n\n{}"),
		[]byte("MOO/1 CONTINUE Changed\nRequest-Id: 2\nContent-Length: 5\nContent-Type: application/json\n\n{\"a\":"),
		[]byte("MOO/1 REQUEST com.roonlabs.ping:1/ping\n\n"),
		[]byte("MOO/1 REQUEST com.evil:1/x\nRequest-Id: 1\n\n"),
		append([]byte("MOO/1 CONTINUE Changed\nRequest-Id: 2\nContent-Length: 20000000\nContent-Type: application/json\n\n"), bytes.Repeat([]byte("["), 20_000_000)...),
		[]byte("\n\n\n"),
		[]byte{},
	}
	end := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		f := frames[i%len(frames)]
		if i%3 == 0 {
			f = make([]byte, rng.IntN(4096))
			for j := range f {
				f[j] = byte(rng.IntN(256))
			}
		}
		core.SendRaw(f)
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := a.Client.Health(hctx)
		hcancel()
		if err != nil {
			t.Fatalf("the API stopped answering under a hostile core: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.Exited() {
		t.Fatalf("the agent exited; log:\n%s", a.Log())
	}
	// The loop's last frames may still be on their way: settle on a
	// connection that answers a ping with no registration in between.
	// The agent reads a connection in order, so it has then read all
	// the garbage sent before the ping, and is still connected.
	settled := time.Now().Add(guard)
	for {
		a.WaitStates(guard, map[string]string{"roon": "ready"})
		_, regs, _ := core.Counts()
		core.Ping()
		for core.PendingPings() > 0 && time.Now().Before(settled) {
			time.Sleep(5 * time.Millisecond)
		}
		if _, now, _ := core.Counts(); now == regs && core.Sessions() == 1 && core.PendingPings() == 0 {
			break
		}
		if time.Now().After(settled) {
			t.Fatalf("roon never settled on one connection after the garbage stopped (sessions %d)", core.Sessions())
		}
	}
	if s := a.Services()["roon"]; s.State != "ready" {
		t.Errorf("roon is %s after the garbage stopped", s.State)
	}
	for _, e := range core.Errors() {
		// The raw REQUEST com.evil:1/x (Request-Id 1) is answered
		// InvalidRequest, as lib.js does; the fake did not send it itself,
		// so it counts the answer as unknown. Anything else is a fault.
		if e != "answer to unknown Request-Id 1" {
			t.Errorf("the agent sent the core a bad message: %s", e)
		}
	}
	if strings.Contains(a.Log(), "panic") {
		t.Error("a panic in the log")
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(a.Pid()) + "/status"); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				t.Logf("agent peak RSS after the hostile core: %s", strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")))
			}
		}
	}
}

// noisySOOD sends 50 malformed or foreign replies before each real one.
type noisySOOD struct{ net.PacketConn }

func (n *noisySOOD) WriteTo(b []byte, addr net.Addr) (int, error) {
	junk := [][]byte{
		[]byte("SOOD\x02R\x0aservice_id\x00\x24" + "00000000-0000-0000-0000-000000000000"),
		[]byte("SOOD\x02R\x0aservice_id"),
		[]byte("SOOD\x01R"),
		[]byte("SOOD\x02R\xff"),
		[]byte("SOOD\x02R\x0aservice_id\x00\x24" + fakecore.RoonServiceID + "\x09http_port\x00\x05nope!"),
		[]byte("SOOD\x02Q\x10query_service_id\x00\x24" + fakecore.RoonServiceID),
	}
	for i := range 50 {
		_, _ = n.PacketConn.WriteTo(junk[i%len(junk)], addr)
	}
	return n.PacketConn.WriteTo(b, addr)
}
