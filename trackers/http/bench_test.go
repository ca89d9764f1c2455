package http

import (
	"bytes"
	"context"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// inProcess serves a handler without sockets and caches its answers by
// URL, to measure the tracker and neither the loopback nor the fake.
type inProcess struct {
	h     nethttp.Handler
	mu    sync.Mutex
	cache map[string][]byte
}

func (p *inProcess) RoundTrip(r *nethttp.Request) (*nethttp.Response, error) {
	p.mu.Lock()
	body, ok := p.cache[r.URL.String()]
	p.mu.Unlock()
	if !ok {
		rec := httptest.NewRecorder()
		p.h.ServeHTTP(rec, r)
		body = rec.Body.Bytes()
		p.mu.Lock()
		p.cache[r.URL.String()] = body
		p.mu.Unlock()
	}
	return &nethttp.Response{StatusCode: 200, Header: nethttp.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// catchUp10k measures one catch-up of 10,000 missed scrobbles (50 pages of
// 200) into a fresh SQLite store per iteration, with the peak growth of the
// Go heap and of the resident set sampled at every page and at the end.
func catchUp10k(b *testing.B, viaLoopback bool) {
	const n = 10_000
	fake := &fakeLastfm{key: testKey}
	fake.add(makeScrobbles(n, 1_700_000_000)...)
	apiURL := "http://lastfm.test/2.0/"
	var rt nethttp.RoundTripper = &inProcess{h: fake, cache: map[string][]byte{}}
	if viaLoopback {
		srv := httptest.NewServer(fake)
		defer srv.Close()
		apiURL, rt = srv.URL+"/2.0/", nil
	}
	kf := keyFile(b, testKey)
	var peak, peakRSS atomic.Uint64
	var base runtime.MemStats
	var baseRSS uint64
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > base.HeapAlloc {
			if d := m.HeapAlloc - base.HeapAlloc; d > peak.Load() {
				peak.Store(d)
			}
		}
		if r := rss(); r > baseRSS && r-baseRSS > peakRSS.Load() {
			peakRSS.Store(r - baseRSS)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := teststore.Open(b)
		runtime.GC()
		runtime.ReadMemStats(&base)
		baseRSS = rss()
		fs := &teststore.Faulty{Store: st, BeforeSave: func(context.Context, string, []trackers.Item, string) error {
			sample()
			return nil
		}}
		tr := newLastfmTracker(b, apiURL, kf, fs, "bench")
		if rt != nil {
			tr.transport = rt
		}
		h := fakehost.New()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- tr.Run(ctx, h) }()
		for h.Last().State != trackers.StateReady {
			select {
			case <-h.Changed():
			case <-time.After(time.Minute):
				b.Fatal("no catch-up within a minute")
			}
		}
		b.StopTimer()
		sample()
		cancel()
		<-done
		if st.Len("bench") != n {
			b.Fatalf("stored %d", st.Len("bench"))
		}
		if err := st.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	if baseRSS > 0 {
		// SQLite's page cache lives outside the Go heap: the resident set
		// shows it.
		b.ReportMetric(float64(peakRSS.Load())/(1<<20), "peak-rss-growth-MiB")
	}
}

// rss is the process's resident set in bytes; 0 where /proc/self/statm
// does not exist (the metric is then not reported).
func rss() uint64 {
	buf, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(buf))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// BenchmarkCatchUp10k: time and peak memory to catch up 10,000 missed
// items over loopback HTTP, into the SQLite store.
func BenchmarkCatchUp10k(b *testing.B) { catchUp10k(b, true) }

// BenchmarkIngest: items ingested per second (parse, dedupe, store) with
// the network taken out.
func BenchmarkIngest(b *testing.B) { catchUp10k(b, false) }

func BenchmarkParsePage(b *testing.B) {
	fake := &fakeLastfm{key: testKey}
	fake.add(makeScrobbles(200, 1_700_000_000)...)
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", fmt.Sprintf("/?method=user.getrecenttracks&format=json&api_key=%s&limit=200&page=1", testKey), nil)
	fake.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	tr := newLastfmTracker(b, "http://x/", keyFile(b, testKey), teststore.Open(b), "p")
	log := fakehost.New().Logger()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		items, _, _, err := tr.parse(nil, log, body)
		if err != nil || len(items) != 200 {
			b.Fatal(err, len(items))
		}
	}
}
