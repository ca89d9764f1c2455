//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

// TestOnDemandWebSocket: a WebSocket opened on an on-demand entry point
// whose chain is idle is held, then upgraded through the binary's proxy
// once the component (a TCP tunnel to an echo service, up after 1 s) is
// ready, and carries messages both ways.
func TestOnDemandWebSocket(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), b...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(echo.Close) // after the agent has stopped
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	front, tunnel := harness.FreeAddr(t), harness.FreeAddr(t)
	cfg := baseConfig + execEntry(marker, "tunnel", harness.HelperCommand(marker, harness.ModeProxy, tunnel, echo.Listener.Addr().String(), "1s"), tunnel,
		fmt.Sprintf("on_demand: {listen: %q, upstream: %q, mode: http}", front, tunnel)) + "\n"
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"tunnel": "idle"})

	ctx := harness.Ctx(t, guard)
	ws, resp, err := websocket.Dial(ctx, "ws://"+front+"/stream", nil)
	if err != nil {
		t.Fatalf("WebSocket through the entry point: %v (%+v)", err, resp)
	}
	defer ws.CloseNow()
	if c := chainOf(t, a, "tunnel"); c.State != wire.ChainReady || c.Trigger != "demand" {
		t.Fatalf("after the upgrade the chain is %+v", c)
	}
	for i, msg := range []string{"hello", strings.Repeat("x", 20000)} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "echo: "+msg {
			t.Errorf("message %d: got %d bytes back, want %d", i, len(b), len("echo: ")+len(msg))
		}
	}
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
	a.Stop()
	a.CheckNoSurvivors()
}
