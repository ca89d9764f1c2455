//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// streamServer sends total numbered messages over a WebSocket, then holds
// the connection open. It records when each connection arrived.
type streamServer struct {
	total int

	mu       sync.Mutex
	sent     int
	connects []time.Time
}

func (s *streamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.connects = append(s.connects, time.Now())
	s.mu.Unlock()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := c.CloseRead(r.Context())
	for {
		s.mu.Lock()
		if s.sent >= s.total {
			s.mu.Unlock()
			break
		}
		s.sent++
		n := s.sent
		s.mu.Unlock()
		msg := fmt.Sprintf(`{"id":%d,"t":%d,"text":"message %d"}`, n, time.Now().UnixMilli(), n)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-ctx.Done()
}

func TestStreamBehindATunnel(t *testing.T) {
	ws := &streamServer{total: 50}
	srv := httptest.NewServer(ws)
	t.Cleanup(srv.Close) // after the agent has stopped
	p := harness.NewPower(t, true)
	marker := harness.NewMarker()
	tunnel := harness.FreeAddr(t)
	cfg := baseConfig +
		execEntry(marker, "tunnel", harness.HelperCommand(marker, harness.ModeProxy, tunnel, srv.Listener.Addr().String(), "2s"), tunnel, "") +
		fmt.Sprintf(`
  - name: stream
    kind: websocket
    url: ws://%s/stream
    depends_on: [tunnel]
    needs_network: false
    items: {id: id, time: t, time_format: unix_ms}
    cursor_from: id`, tunnel)
	a := harness.Start(t, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	a.WaitStates(guard, map[string]string{"tunnel": "ready", "stream": "ready"})

	t.Run("TheStreamStartsOnlyOnceTheTunnelIsReady", func(t *testing.T) {
		svc := a.Services()
		tun, st := svc["tunnel"], svc["stream"]
		if tun.StartedAt == nil {
			t.Fatal("the tunnel has no ready_at")
		}
		ws.mu.Lock()
		first := ws.connects[0]
		ws.mu.Unlock()
		// ready_at is rounded to the agent's clock reading; allow 1 ms.
		if first.Before(tun.StartedAt.Add(-time.Millisecond)) {
			t.Errorf("the stream connected at %v, before the tunnel was ready at %v", first, *tun.StartedAt)
		}
		if st.Attempts != 1 {
			t.Errorf("the stream took %d attempts; it should not have started before its dependency", st.Attempts)
		}
		boot := a.WaitWakeDone(guard, a.LastWakeID())
		if c, _ := harness.ComponentOf(boot, "stream"); c.State != "ready" || c.WaitedMS < 1000 {
			t.Errorf("stream in the boot restore: %+v, want ready after waiting about 2 s for the tunnel", c)
		}
	})

	t.Run("ItemsFlowToTheAPIWithCursorPaging", func(t *testing.T) {
		harness.Eventually(t, guard, "50 items", func() bool {
			page, err := a.Client.Items(harness.Ctx(t, guard), "stream", client.ItemQuery{Limit: 100})
			return err == nil && len(page.Items) == 50
		})
		var ids []int
		q := client.ItemQuery{Limit: 7, Oldest: true}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			page, err := a.Client.Items(harness.Ctx(t, guard), "stream", q)
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				n, err := strconv.Atoi(it.ID)
				if err != nil {
					t.Fatalf("item id %q", it.ID)
				}
				ids = append(ids, n)
			}
			if page.NextCursor == "" {
				break
			}
			q.Cursor = page.NextCursor
		}
		if len(ids) != 50 {
			t.Fatalf("paged %d items, want 50: %v", len(ids), ids)
		}
		for i, n := range ids {
			if n != i+1 {
				t.Fatalf("oldest-first paging out of order at %d: %v", i, ids)
			}
		}
		newest, err := a.Client.Items(context.Background(), "stream", client.ItemQuery{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(newest.Items) != 3 || newest.Items[0].ID != "50" {
			t.Errorf("newest first: %+v, want 50 first", newest.Items)
		}
	})
}
