//go:build linux

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// feed is a fake source that releases numbered items at a steady rate and
// hands out, oldest first, up to 200 of those after the caller's cursor.
// Item k has id "k" and time base+k seconds; ids are handed out in order,
// so everything up to the highest id served has been handed out.
type feed struct {
	base int64
	srv  *httptest.Server
	mu   sync.Mutex
	rel  int64 // released: items 1..rel exist
	max  int64 // the highest id handed out
	stop chan struct{}
	done chan struct{}
}

func newFeed(t *testing.T, perTick int64) *feed {
	f := &feed{base: time.Now().Unix(), stop: make(chan struct{}), done: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		from := max(1, since-f.base)
		f.mu.Lock()
		to := min(f.rel, from+199)
		if to > f.max {
			f.max = to
		}
		f.mu.Unlock()
		items := []map[string]any{}
		for k := from; k <= to; k++ {
			items = append(items, map[string]any{"id": strconv.FormatInt(k, 10), "t": f.base + k})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(items)
	}))
	go func() {
		defer close(f.done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-tk.C:
				f.mu.Lock()
				f.rel += perTick
				f.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { f.halt(); f.srv.Close() })
	return f
}

// halt stops releasing items (once).
func (f *feed) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

func (f *feed) handedOut() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max
}

func (f *feed) config(marker, execAddr string) string {
	return fmt.Sprintf(`
heartbeat: {initial: 200ms, max: 2s}
trackers:
  - name: feed
    kind: http
    url: "%s/items?since={{.Since}}"
    interval: 1s
    needs_network: false
    items: {id: id, time: t, time_format: unix}
    paging: {order: oldest_first}
  - name: child
    kind: exec
    command: %s
    env: %s
    ready: {tcp: %q}
    ready_interval: 50ms
`, f.srv.URL, harness.YAMLList(harness.HelperCommand(marker, harness.ModeSpawnListen, execAddr)), harness.ExecEnv(marker), execAddr)
}

// TestSIGKILLDuringAWriteLoad kills the agent with SIGKILL while a tracker
// stores a steady feed, restarts it on the same data directory, and in the
// end checks that every item handed out is stored exactly once. After each
// kill the supervised child must be gone (Pdeathsig) and the store must
// pass integrity_check.
//
// The child starts a grandchild in its process group, which Pdeathsig does
// not reach: it outlives the kill, and the next start of the agent must
// sweep it (the exec tracker's group record) before its own child is ready.
func TestSIGKILLDuringAWriteLoad(t *testing.T) {
	kills := 10
	if long() {
		kills = 50
	}
	p := harness.NewPower(t, true)
	f := newFeed(t, 20) // 400 items/s
	data := filepath.Join(t.TempDir(), "data")
	execAddr := harness.FreeAddr(t)
	rng := rand.New(rand.NewPCG(7, 7))
	// prev is the marker of the agent killed last: what its child left
	// must be gone once the next agent's child is ready.
	var prev string
	noneLeftOf := func(t *testing.T, prev string) {
		if prev == "" {
			return
		}
		if left := harness.Survivors(prev); len(left) > 0 {
			t.Fatalf("processes of the killed agent's child group survived the next start: %v", left)
		}
	}

	for i := range kills {
		marker := harness.NewMarker()
		a := harness.Start(t, bin, harness.Options{Config: f.config(marker, execAddr), BusAddr: p.Addr(), DataDir: data, Marker: marker})
		t.Run(fmt.Sprintf("Kill%02dTheAPIIsUpAgain", i+1), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			if _, err := a.Client.Health(ctx); err != nil {
				t.Fatalf("GET /api/v1/health after the restart: %v", err)
			}
		})
		a.WaitStates(guard, map[string]string{"child": "ready"})
		t.Run(fmt.Sprintf("Kill%02dTheRestartSweptTheOldGroup", i+1), func(t *testing.T) { noneLeftOf(t, prev) })
		before := f.handedOut()
		harness.Eventually(t, guard, "the tracker to fetch more items", func() bool { return f.handedOut() > before })
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if err := syscall.Kill(a.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, guard, "the agent to die", a.Exited)

		t.Run(fmt.Sprintf("Kill%02dLeavesNoDirectChild", i+1), func(t *testing.T) {
			// The direct child carries the marker in its argv; the
			// grandchild (sleep) only in its environment.
			direct := func() (out []harness.Proc) {
				for _, pr := range harness.Survivors(marker) {
					if strings.Contains(pr.Cmdline, marker) {
						out = append(out, pr)
					}
				}
				return out
			}
			deadline := time.Now().Add(15 * time.Second)
			for len(direct()) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if left := direct(); len(left) > 0 {
				t.Fatalf("the supervised child outlived the SIGKILLed agent: %v", left)
			}
		})
		prev = marker
		t.Run(fmt.Sprintf("Kill%02dLeavesAStoreThatPassesIntegrityCheck", i+1), func(t *testing.T) {
			checkStore(t, data, -1)
		})
		if t.Failed() {
			t.FailNow()
		}
	}

	// The last start catches up on everything handed out, with the feed
	// stopped so the target holds still.
	f.halt()
	marker := harness.NewMarker()
	a := harness.Start(t, bin, harness.Options{Config: f.config(marker, execAddr), BusAddr: p.Addr(), DataDir: data, Marker: marker})
	a.WaitStates(guard, map[string]string{"child": "ready"})
	t.Run("TheLastRestartSweptTheOldGroup", func(t *testing.T) { noneLeftOf(t, prev) })
	var want int64
	harness.Eventually(t, 2*guard, "the tracker to catch up with the feed", func() bool {
		want = f.handedOut()
		return newestID(t, a.Client) == want && f.handedOut() == want
	})
	a.Stop()

	t.Run("EveryItemHandedOutIsStoredExactlyOnce", func(t *testing.T) {
		if want == 0 {
			t.Fatal("the feed handed out nothing")
		}
		checkStore(t, data, want)
	})
}

// newestID is the id of the newest stored item of the feed, 0 if none.
func newestID(t *testing.T, c *client.Client) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	items, err := c.Items(ctx, "feed", client.ItemQuery{Limit: 1})
	if err != nil || len(items.Items) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(items.Items[0].ID, 10, 64)
	return n
}

// checkStore opens the (dead) agent's store, runs PRAGMA integrity_check,
// and when want ≥ 0 checks the feed holds exactly items 1..want.
func checkStore(t *testing.T, data string, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	st, err := store.Open(ctx, agent.StorePath(data), store.Options{})
	if err != nil {
		t.Fatalf("open the store after the kill: %v", err)
	}
	defer st.Close(ctx)
	if err := st.IntegrityCheck(ctx); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if want < 0 {
		return
	}
	n, err := st.CountItems(ctx, "feed")
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%d items stored, want exactly the %d handed out", n, want)
	}
}
