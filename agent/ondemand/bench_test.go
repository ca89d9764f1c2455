package ondemand

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// BenchmarkProxyLatency measures what the front adds once the chain is
// ready: each iteration sends one GET straight to the app and one through
// the front (same client, keep-alive, same run, interleaved so both see
// the same machine load) and reports p50/p99 of both.
//
//	go test -run '^$' -bench ProxyLatency -benchtime 5000x ./agent/ondemand
func BenchmarkProxyLatency(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from the app\n")
	}))
	defer up.Close()
	c := newFake("blog", wire.ChainReady, comps()...)
	o := Options{Name: "blog", Listen: "127.0.0.1:0", Upstream: strings.TrimPrefix(up.URL, "http://")}
	f, err := New(o, c, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	direct, front := up.URL+"/", "http://"+f.Addr().String()+"/"
	once := func(url string) time.Duration {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
		return time.Since(start)
	}
	for range 200 { // warm both paths' connections and pools
		once(direct)
		once(front)
	}
	var ds, fs []time.Duration
	for b.Loop() {
		ds = append(ds, once(direct))
		fs = append(fs, once(front))
	}
	slices.Sort(ds)
	slices.Sort(fs)
	pct := func(s []time.Duration, p float64) float64 {
		return float64(s[min(len(s)-1, int(float64(len(s))*p))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(ds, .50), "direct-p50-µs")
	b.ReportMetric(pct(ds, .99), "direct-p99-µs")
	b.ReportMetric(pct(fs, .50), "front-p50-µs")
	b.ReportMetric(pct(fs, .99), "front-p99-µs")
	b.ReportMetric(pct(fs, .50)-pct(ds, .50), "added-p50-µs")
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("%d requests each way; load average (1, 5, 15 min, runnable/total, last pid): %s", len(ds), strings.TrimSpace(string(load)))
}
