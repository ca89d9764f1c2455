package websocket

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// TestSoak runs 100 trackers against a server that drops streams (with and
// without close frames) and goes down and up for a while, then settles:
// every tracker ends with every message exactly once, and nothing leaks.
func TestSoak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const trackersN, perStream = 100, 50
		p := newPipeNet(t)
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(1, 2))
		flapUntil := time.Now().Add(3 * time.Minute)
		p.serve = func(sc *sconn) {
			var sub struct{ Since string }
			_ = json.Unmarshal([]byte(sc.sub), &sub)
			from, _ := strconv.Atoi(sub.Since)
			from = max(from, 1)
			mu.Lock()
			burst := 1 + rng.IntN(5)
			mode := rng.IntN(3)
			mu.Unlock()
			flapping := time.Now().Before(flapUntil)
			sc.pong()
			for id, sent := from, 0; id <= perStream; id, sent = id+1, sent+1 {
				if flapping && sent == burst {
					switch mode {
					case 0:
						sc.c.CloseNow()
					case 1:
						sc.c.Close(ws.StatusInternalError, "flap")
					default:
						sc.c.Close(ws.StatusGoingAway, "restart")
					}
					return
				}
				msg := fmt.Sprintf(`{"id":"%d","t":%d}`, id, int64(id)*1000)
				if sc.c.Write(context.Background(), ws.MessageText, []byte(msg)) != nil {
					return
				}
			}
		}
		st := teststore.Open(t)
		client := p.client()
		defer client.CloseIdleConnections()
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		trs := make([]*Tracker, trackersN)
		for i := range trs {
			o := DefaultOptions()
			o.URL = fmt.Sprintf("ws://stream.test/s/%d", i)
			o.Subscribe = `{"since":"{{.Since}}"}`
			o.Items = ItemsOptions{ID: "id", Time: "t"}
			o.CursorFrom = CursorID
			tr, err := New(*o, trackers.Deps{Name: fmt.Sprint("t", i), Store: st})
			if err != nil {
				t.Fatal(err)
			}
			tr.httpClient = client
			trs[i] = tr
			wg.Go(func() {
				if err := tr.Run(ctx, fakehost.New()); err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		}
		// The whole server flaps too.
		for i := 0; i < 3; i++ {
			time.Sleep(40 * time.Second)
			p.down()
			time.Sleep(10 * time.Second)
			p.up()
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		disconnects := 0
		for i, tr := range trs {
			name := fmt.Sprint("t", i)
			items := st.All(name)
			ids := map[string]bool{}
			for _, it := range items {
				ids[it.ID] = true
			}
			for id := 1; id <= perStream; id++ {
				if !ids[strconv.Itoa(id)] {
					t.Errorf("%s: message %d missing", name, id)
				}
			}
			if len(items) != perStream {
				t.Errorf("%s: %d items, want %d", name, len(items), perStream)
			}
			disconnects += tr.Stats().Disconnects
		}
		if disconnects < trackersN {
			t.Errorf("only %d disconnects: the server did not flap", disconnects)
		}
		t.Logf("%d trackers, %d disconnects, all caught up", trackersN, disconnects)
		cancel()
		wg.Wait()
		p.down()
	})
}
