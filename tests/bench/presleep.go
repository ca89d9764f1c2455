//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/tests/internal/harness"
)

// Benchmark 6: the pre-sleep budget. The real binary runs on a store of
// StoreMB MB with a busy writer — 10 http trackers each storing 1,000 new
// items (~0.5 kB) every second — and the fake logind plays
// PrepareForSleep(true); the time measured is until the agent has closed
// its inhibitor fd (pause, checkpoint, close all done), against logind's
// default 5 s (InhibitDelayMaxSec). Then PrepareForSleep(false) and the
// next cycle, once the writer is busy again.

const (
	logindBudget = 5 * time.Second
	busyTrackers = 10
	itemsPerPoll = 1000
)

type preSleepResult struct {
	StoreMB  float64   `json:"store_mb"`
	Runs     []float64 `json:"runs_ms"`
	MedianMS float64   `json:"median_ms"`
	MaxMS    float64   `json:"max_ms"`
	BudgetMS float64   `json:"budget_ms"`
	GrowthKB int64     `json:"store_growth_kb"`
}

// busyServer hands out itemsPerPoll new items per request, after since.
func busyServer(t *tb) *httptest.Server {
	pad := strings.Repeat("y", 400)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		items := make([]map[string]any, itemsPerPoll)
		for i := range items {
			at := since + int64(i)
			items[i] = map[string]any{"id": fmt.Sprintf("%s-%d", r.URL.Path, at), "t": at, "pad": pad}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(items)
	}))
	t.Cleanup(s.Close)
	return s
}

func benchPreSleep(t *tb, o options) *preSleepResult {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	size := buildStore(t, data, o.StoreMB)
	srv := busyServer(t)
	var cfg strings.Builder
	cfg.WriteString("trackers:\n")
	for i := range busyTrackers {
		fmt.Fprintf(&cfg, "  - {name: busy%d, kind: http, url: \"%s/b%d?since={{.Since}}\", interval: 1s, needs_network: false, items: {time: t}, initial_since: %d}\n",
			i, srv.URL, i, time.Now().Add(-time.Hour).Unix())
	}
	p := harness.NewPower(t, true)
	a := harness.Start(t, o.RouseBin, harness.Options{Config: cfg.String(), BusAddr: p.Addr(), DataDir: data})
	defer a.Stop()
	waitLastWake(t, a.Client)
	r := &preSleepResult{StoreMB: round2(float64(size) / (1 << 20)), BudgetMS: ms(logindBudget)}
	var ds []time.Duration
	for range o.Cycles {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := p.Logind.WaitLockHeld(ctx); err != nil {
			cancel()
			t.Fatalf("the agent holds no delay lock: %v", err)
		}
		time.Sleep(o.PreSleepSettle) // the writer is busy again
		last := a.LastWakeID()
		t0 := time.Now()
		if err := p.Logind.PrepareForSleep(true); err != nil {
			cancel()
			t.Fatalf("PrepareForSleep(true): %v", err)
		}
		if err := p.Logind.WaitLockReleased(ctx); err != nil {
			cancel()
			t.Fatalf("the lock was not released within a minute: %v", err)
		}
		ds = append(ds, time.Since(t0))
		if err := p.Logind.PrepareForSleep(false); err != nil {
			cancel()
			t.Fatalf("PrepareForSleep(false): %v", err)
		}
		cancel()
		a.WaitNewWake(harness.StartGuard, last)
	}
	if fi, err := os.Stat(agent.StorePath(data)); err == nil {
		r.GrowthKB = (fi.Size() - size) >> 10 // a sign the writer ran
	}
	for _, d := range ds {
		r.Runs = append(r.Runs, ms(d))
	}
	r.MedianMS, r.MaxMS = ms(median(ds)), ms(maxOf(ds))
	if maxOf(ds) > logindBudget {
		t.Errorf("pre-sleep took %v, over logind's %v", maxOf(ds), logindBudget)
	}
	return r
}

func printPreSleep(w io.Writer, r *preSleepResult) {
	fmt.Fprintf(w, "6. Pre-sleep: PrepareForSleep(true) to the inhibitor fd closed (%.1f MB store, %d busy writers)\n", r.StoreMB, busyTrackers)
	fmt.Fprintf(w, "   median %.1f ms, max %.1f ms of logind's %.0f ms (runs %v)\n\n", r.MedianMS, r.MaxMS, r.BudgetMS, r.Runs)
}
