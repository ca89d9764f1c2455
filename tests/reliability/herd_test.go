//go:build linux

package reliability

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// streams is a fake websocket server that can go down (503 to every
// handshake, live connections dropped) and records every handshake
// attempt by tracker and time.
type streams struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	conns    map[*ws.Conn]context.CancelFunc
	attempts []attempt
	wg       sync.WaitGroup
}

type attempt struct {
	name string
	at   time.Time
}

func newStreams(t *testing.T) *streams {
	s := &streams{conns: map[*ws.Conn]context.CancelFunc{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.attempts = append(s.attempts, attempt{strings.TrimPrefix(r.URL.Path, "/s/"), time.Now()})
		down := s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.mu.Lock()
		s.conns[c] = cancel
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		// Read until the connection ends (answers pings meanwhile).
		for {
			if _, _, err := c.Read(ctx); err != nil {
				break
			}
		}
		c.CloseNow()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		cancel()
	}))
	t.Cleanup(func() {
		s.drop(true)
		s.srv.Close()
	})
	return s
}

// drop ends every live connection and sets the server down or up.
func (s *streams) drop(down bool) {
	s.mu.Lock()
	s.down = down
	for _, cancel := range s.conns {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *streams) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *streams) since(t0 time.Time) []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []attempt
	for _, a := range s.attempts {
		if !a.at.Before(t0) {
			out = append(out, a)
		}
	}
	return out
}

// TestThunderingHerd: 50 websocket trackers lose their server as the
// machine wakes; it answers 503 for a while. Beyond each tracker's first
// attempt after the wake, reconnects must be spread out by their jittered
// backoff: no 100 ms window may hold more than herdBound attempts. Once
// the server is back every tracker is ready again.
func TestThunderingHerd(t *testing.T) {
	const (
		n         = 50
		herdBound = 25 // half the herd; equal jitter over ≥ 500 ms gives ~10
	)
	downFor := 4 * time.Second
	if long() {
		downFor = 15 * time.Second
	}
	s := newStreams(t)
	var cfg strings.Builder
	cfg.WriteString("heartbeat: {initial: 500ms, max: 4s}\nscheduler: {enabled: false}\ntrackers:\n")
	wsURL := "ws" + strings.TrimPrefix(s.srv.URL, "http")
	want := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("s%02d", i)
		fmt.Fprintf(&cfg, "  - {name: %s, kind: websocket, url: \"%s/s/%s\", needs_network: false, backoff: {initial: 1s, max: 4s}, cleanup_grace: 0s}\n", name, wsURL, name)
		want[name] = "ready"
	}
	p := harness.NewPower(t, false)
	a := harness.Start(t, bin, harness.Options{Config: cfg.String(), BusAddr: p.Addr()})
	a.WaitStates(guard, want)
	boot := a.WaitWakeDone(guard, a.LastWakeID())

	t0 := time.Now()
	s.drop(true)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := a.Client.Wake(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(downFor)
	s.setDown(false)
	a.WaitNewWake(guard, boot.ID)
	a.WaitStates(guard, want)
	all := s.since(t0)

	t.Run("EveryTrackerTriedAtOnceAndThenBackedOff", func(t *testing.T) {
		per := map[string]int{}
		for _, at := range all {
			per[at.name]++
		}
		if len(per) != n {
			t.Fatalf("%d of %d trackers tried to reconnect", len(per), n)
		}
		// With a 1 s initial backoff, a tracker makes at most a handful of
		// attempts while the server is down; dozens would be a busy loop.
		limit := int(downFor/(500*time.Millisecond)) + 3
		for name, c := range per {
			if c > limit {
				t.Errorf("%s made %d attempts in %v, want at most %d", name, c, downFor, limit)
			}
		}
	})

	t.Run("NoWindowOf100msHoldsABurstOfRetries", func(t *testing.T) {
		seen := map[string]bool{}
		windows := map[int64]int{}
		retries := 0
		for _, at := range all {
			if !seen[at.name] {
				seen[at.name] = true // the first attempt after the wake
				continue
			}
			retries++
			windows[at.at.Sub(t0).Milliseconds()/100]++
		}
		if retries == 0 {
			t.Fatal("no retries were made: the server was never seen down")
		}
		var keys []int64
		for k := range windows {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		worst := 0
		for _, k := range keys {
			worst = max(worst, windows[k])
		}
		t.Logf("%d retries over %d windows, the busiest holds %d", retries, len(keys), worst)
		if worst > herdBound {
			t.Errorf("a 100 ms window held %d retries (bound %d): %v", worst, herdBound, windows)
		}
	})
}
