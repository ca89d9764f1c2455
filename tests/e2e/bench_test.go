//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/wire"
)

func waitAllReady(b *testing.B, a *harness.Agent, names []string) {
	b.Helper()
	want := map[string]string{}
	for _, n := range names {
		want[n] = "ready"
	}
	a.WaitStates(guard, want)
}

// BenchmarkAPILatencyDuringWake: 100 exec components restart on every
// wake while four loops hammer GET /api/v1/health, from the sleep notice to
// the end of the restore. Reports the worst and the 99th percentile
// latency over all iterations.
func BenchmarkAPILatencyDuringWake(b *testing.B) {
	p := harness.NewPower(b, true)
	marker := harness.NewMarker()
	cfg := baseConfig
	var names []string
	for i := range 100 {
		n := fmt.Sprintf("c%03d", i)
		names = append(names, n)
		cfg += execEntry(marker, n, []string{"sleep", "3600"}, "", "restart_on_wake: true\nready_after: 300ms")
	}
	a := harness.Start(b, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	waitAllReady(b, a, names)
	c := client.New("http://"+a.Listen, readToken(b, a))
	defer c.Close()

	var lat []time.Duration
	var fails int
	b.ResetTimer()
	for range b.N {
		last := a.LastWakeID()
		stop := make(chan struct{})
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					t0 := time.Now()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err := c.Health(ctx)
					cancel()
					d := time.Since(t0)
					mu.Lock()
					if err != nil {
						fails++
					}
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		waitLock(b, p)
		suspend(b, p)
		a.WaitNewWake(guard, last)
		close(stop)
		wg.Wait()
	}
	b.StopTimer()
	waitAllReady(b, a, names)
	if fails > 0 {
		b.Errorf("%d health requests failed during wakes", fails)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat))/float64(b.N), "requests/op")
}

func readToken(b *testing.B, a *harness.Agent) string {
	tok, err := os.ReadFile(filepath.Join(a.DataDir, "api-token"))
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}

// BenchmarkWakeToAllReady: ten components that each take a known time to
// start (0.1 s to 1 s, restarted on every wake). Reports the time from
// PrepareForSleep(false) to all ready divided by the slowest component's
// own start time as the agent measured it in the wake record.
func BenchmarkWakeToAllReady(b *testing.B) {
	p := harness.NewPower(b, true)
	marker := harness.NewMarker()
	cfg := baseConfig + "\nscheduler: {enabled: false}\n"
	cfg = strings.Replace(cfg, "trackers:", "", 1) + "trackers:"
	var names []string
	for i := range 10 {
		n := fmt.Sprintf("c%d", i)
		names = append(names, n)
		addr := harness.FreeAddr(b)
		delay := time.Duration(i+1) * 100 * time.Millisecond
		cfg += execEntry(marker, n, harness.HelperCommand(marker, harness.ModeListen, addr, delay.String()), addr, "restart_on_wake: true")
	}
	a := harness.Start(b, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), Marker: marker})
	waitAllReady(b, a, names)
	c := client.New("http://"+a.Listen, readToken(b, a))
	defer c.Close()

	var ratios []float64
	b.ResetTimer()
	for range b.N {
		last := a.LastWakeID()
		if err := p.Logind.WaitLockHeld(harness.Ctx(b, guard)); err != nil {
			b.Fatal(err)
		}
		if err := p.Logind.PrepareForSleep(true); err != nil {
			b.Fatal(err)
		}
		if err := p.Logind.WaitLockReleased(harness.Ctx(b, logindDelay)); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := p.Logind.PrepareForSleep(false); err != nil {
			b.Fatal(err)
		}
		for {
			ss, err := c.Services(harness.Ctx(b, guard))
			if err == nil && !slices.ContainsFunc(ss, func(s wire.Service) bool { return s.State != "ready" }) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		allReady := time.Since(t0)
		w := a.WaitNewWake(guard, last)
		var slowest int64
		for _, comp := range w.Components {
			slowest = max(slowest, comp.DurationMS)
		}
		ratios = append(ratios, allReady.Seconds()*1000/float64(slowest))
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "ratio-median")
	b.ReportMetric(ratios[len(ratios)-1], "ratio-max")
}

// buildBigStore builds, once per run, a data directory whose store holds
// about 50 MB of tracker items, through the agent itself.

func buildBigStore(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(workDir, "big")
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return filepath.Join(dir, "data")
	}
	const perPage, pages = 5000, 10
	payload := strings.Repeat("x", 900)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		var items []map[string]any
		if since <= feedEpoch && page >= 1 && page <= pages {
			for i := range perPage {
				n := (page-1)*perPage + i
				items = append(items, map[string]any{"id": strconv.Itoa(n), "t": feedEpoch + n, "data": payload})
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items, "total": pages})
	}))
	defer srv.Close()
	p := harness.NewPower(b, true)
	cfg := baseConfig + fmt.Sprintf(`
  - name: bulk
    kind: http
    url: "%s/?since={{.Since}}&page={{.Page}}"
    interval: 1h
    timeout: 60s
    needs_network: false
    items: {path: items, id: id, time: t, time_format: unix}
    paging: {total_pages: total, order: oldest_first}
    initial_since: %d`, srv.URL, feedEpoch)
	a := harness.Start(b, bin, harness.Options{Config: cfg, BusAddr: p.Addr(), DataDir: filepath.Join(dir, "data")})
	harness.Eventually(b, 5*time.Minute, "50,000 items", func() bool {
		page, err := a.Client.Items(harness.Ctx(b, guard), "bulk", client.ItemQuery{Limit: 1})
		return err == nil && len(page.Items) == 1 && page.Items[0].ID == strconv.Itoa(perPage*pages-1)
	})
	a.Stop()
	if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	return filepath.Join(dir, "data")
}

// BenchmarkPreSleepOn50MBStore: the pre-sleep work (pause, checkpoint,
// close) on a store of about 50 MB, measured as logind sees it: from
// PrepareForSleep(true) to the lock release. A tracker writes between
// sleeps so every checkpoint has work.
func BenchmarkPreSleepOn50MBStore(b *testing.B) {
	data := buildBigStore(b)
	var size int64
	for _, f := range []string{"rouse.db", "rouse.db-wal"} {
		if fi, err := os.Stat(filepath.Join(data, f)); err == nil {
			size += fi.Size()
		}
	}
	src := &feed{}
	srv := httptest.NewServer(src)
	b.Cleanup(srv.Close)
	p := harness.NewPower(b, true)
	a := harness.Start(b, bin, harness.Options{Config: baseConfig + feedEntry("feed", srv.URL), BusAddr: p.Addr(), DataDir: data})
	waitAllReady(b, a, []string{"feed", "scheduler"})

	var total time.Duration
	var worst time.Duration
	b.ResetTimer()
	for range b.N {
		last := a.LastWakeID()
		if err := p.Logind.WaitLockHeld(harness.Ctx(b, guard)); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := p.Logind.PrepareForSleep(true); err != nil {
			b.Fatal(err)
		}
		if err := p.Logind.WaitLockReleased(harness.Ctx(b, logindDelay)); err != nil {
			b.Fatalf("the lock was not released within %v", logindDelay)
		}
		d := time.Since(t0)
		total += d
		worst = max(worst, d)
		if err := p.Logind.PrepareForSleep(false); err != nil {
			b.Fatal(err)
		}
		a.WaitNewWake(guard, last)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "presleep-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "presleep-max-ms")
	b.ReportMetric(float64(size)/(1<<20), "store-MB")
}
