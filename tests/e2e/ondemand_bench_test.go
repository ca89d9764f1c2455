//go:build linux

package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// BenchmarkOnDemandFirstByte: the chain (db ready ~2 s after it
// starts, then the app ~1 s after it starts, an optional sidecar) behind
// its entry point. Each iteration waits until idle_stop stopped the chain,
// then times a curl-like request from sending to the first byte of the
// app's answer, and compares it with the chain's critical path as the
// agent recorded it (db's own start time + the app's). Reported: both, the
// overhead (first byte − critical path) and the 1-minute load average.
//
//	go test ./tests/e2e -run '^$' -bench OnDemandFirstByte -benchtime 5x
func BenchmarkOnDemandFirstByte(b *testing.B) {
	p := harness.NewPower(b, true)
	marker := harness.NewMarker()
	front, db, side, app := harness.FreeAddr(b), harness.FreeAddr(b), harness.FreeAddr(b), harness.FreeAddr(b)
	a := harness.Start(b, bin, harness.Options{Config: chainConfig(marker, front, db, side, app, nil, "idle_stop: 300ms"), BusAddr: p.Addr(), Marker: marker})
	var first, critical time.Duration
	load := 0.0
	for b.Loop() {
		b.StopTimer()
		a.WaitStates(guard, idleAll)
		harness.Eventually(b, guard, "the chain stopped", func() bool { return len(a.Children()) == 0 })
		before := a.LastWakeID()
		b.StartTimer()
		code, body, ttfb := get(b, "http://"+front+"/")
		b.StopTimer()
		if code != http.StatusOK || body != "hello from the app" {
			b.Fatalf("%d %q", code, body)
		}
		w := a.WaitNewWake(guard, before)
		dbc, ok1 := harness.ComponentOf(w, "db")
		appc, ok2 := harness.ComponentOf(w, "app")
		if w.DetectedBy != "demand" || !ok1 || !ok2 {
			b.Fatalf("record %+v", w)
		}
		first += ttfb
		critical += time.Duration(dbc.DurationMS+appc.DurationMS) * time.Millisecond
		load += loadAvg()
		b.StartTimer()
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((first / n).Milliseconds()), "first-byte-ms")
	b.ReportMetric(float64((critical / n).Milliseconds()), "critical-path-ms")
	b.ReportMetric(float64(((first - critical) / n).Milliseconds()), "overhead-ms")
	b.ReportMetric(load/float64(b.N), "load1")
	b.ReportMetric(0, "ns/op")
}
