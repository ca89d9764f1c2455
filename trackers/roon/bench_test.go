package roon

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
	"github.com/rouse-dev/rouse/trackers/roon/fakecore"
)

// BenchmarkWakeToReady measures, over loopback TCP against the fake core,
// the time from Resume (the agent's call after PrepareForSleep(false)) to
// the tracker reporting ready again: "resubscribe" with the connection
// alive (ping, unsubscribe, subscribe), "redial" after the core dropped it
// during the sleep (dial, info, register with the saved token, subscribe),
// and "redial_info_2s" with the core answering info after 2 s.
func BenchmarkWakeToReady(b *testing.B) {
	for _, c := range []struct {
		name  string
		drop  bool
		delay time.Duration
	}{{"resubscribe", false, 0}, {"redial", true, 0}, {"redial_info_2s", true, 2 * time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			core := fakecore.New("core-bench", "Bench Core")
			core.SetZones(&fakecore.Zone{ID: "z", Name: "Den", State: "playing", Track: &fakecore.Track{Title: "T", Artist: "A", Album: "B", Length: 100}})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() { core.Serve(ctx, ln) })
			o := DefaultOptions()
			o.Core = ln.Addr().String()
			tr, err := New(*o, trackers.Deps{Name: "roon", Store: teststore.Open(b)})
			if err != nil {
				b.Fatal(err)
			}
			h := fakehost.New()
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = tr.Run(rctx, h) }()
			defer func() { rcancel(); <-done }()
			if err := core.WaitHeld(ctx); err != nil {
				b.Fatal(err)
			}
			core.Enable()
			waitBench(b, h, func() bool { return h.Last().State == trackers.StateReady })
			core.SetInfoDelay(c.delay)
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				n := tr.Stats().Subscribed
				if c.drop {
					core.Drop()
					waitBench(b, h, func() bool { return h.Last().State == trackers.StateStarting })
				}
				t0 := time.Now()
				tr.Resume(ctx)
				waitBench(b, h, func() bool { return tr.Stats().Subscribed > n && h.Last().State == trackers.StateReady })
				total += time.Since(t0)
			}
			b.StopTimer()
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/wake")
			if la, err := os.ReadFile("/proc/loadavg"); err == nil {
				b.Logf("load average: %s", strings.TrimSpace(string(la)))
			}
		})
	}
}

func waitBench(b *testing.B, h *fakehost.Host, cond func() bool) {
	end := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			b.Fatalf("timed out; states %v", h.States())
		}
		select {
		case <-h.Changed():
		case <-time.After(time.Millisecond):
		}
	}
}
