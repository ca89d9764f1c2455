package http

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// TestSoak runs 100 lastfm trackers against a Last.fm that flaps (500s,
// 429s and connection resets) for a while, then settles; after a wake every
// tracker has every scrobble exactly once, and nothing leaks (TestMain).
func TestSoak(t *testing.T) {
	// Three pages per tracker (scrobblesN / pageSize): every catch-up spans
	// pages. 15,000 items go through the one SQLite writer; the volume
	// itself is TestLastfmCatchUp's and the benchmarks' business.
	const trackersN, scrobblesN, pageSize = 100, 150, 50
	fake := &fakeLastfm{key: testKey}
	fake.add(makeScrobbles(scrobblesN, 1_700_000_000)...)
	var flapping atomic.Bool
	flapping.Store(true)
	var failures atomic.Int64
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if flapping.Load() {
			switch rand.IntN(5) {
			case 0:
				failures.Add(1)
				w.WriteHeader(500)
				return
			case 1:
				failures.Add(1)
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(429)
				return
			case 2:
				failures.Add(1)
				c, _, _ := w.(nethttp.Hijacker).Hijack()
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				return
			}
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()

	st := teststore.Open(t)
	kf := keyFile(t, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	trs := make([]*Tracker, trackersN)
	hosts := make([]*fakehost.Host, trackersN)
	for i := range trs {
		o := DefaultLastfmOptions()
		o.User, o.APIKeyFile, o.APIURL, o.Limit = "alice", kf, srv.URL, pageSize
		tr, err := NewLastfm(*o, trackers.Deps{Name: fmt.Sprint("t", i), Store: st})
		if err != nil {
			t.Fatal(err)
		}
		tr.opts.Retry = RetryOptions{Initial: 5 * time.Millisecond, Max: 40 * time.Millisecond, Budget: 3}
		trs[i], hosts[i] = tr, fakehost.New()
		wg.Go(func() {
			if err := tr.Run(ctx, hosts[i]); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	time.Sleep(time.Second)
	// A sleep and a wake in the middle of the storm.
	for _, tr := range trs {
		tr.Pause(context.Background())
	}
	for _, tr := range trs {
		tr.Resume(context.Background())
	}
	time.Sleep(500 * time.Millisecond)
	flapping.Store(false)
	for _, tr := range trs {
		tr.Resume(context.Background()) // the network is back: a wake
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := range trs {
		name := fmt.Sprint("t", i)
		for (st.Len(name) < scrobblesN || hosts[i].Last().State != trackers.StateReady) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := st.Len(name); n != scrobblesN {
			t.Errorf("%s: %d of %d scrobbles", name, n, scrobblesN)
		}
		if c, _ := st.Cursor(context.Background(), name); c != "1700000001" {
			t.Errorf("%s: cursor %q", name, c)
		}
	}
	cancel()
	wg.Wait()
	if failures.Load() < trackersN {
		t.Errorf("only %d injected failures", failures.Load())
	}
	t.Logf("%d trackers caught up through %d injected failures", trackersN, failures.Load())
}
