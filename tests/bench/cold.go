//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rouse-dev/rouse/agent"
	"github.com/rouse-dev/rouse/agent/store"
	"github.com/rouse-dev/rouse/tests/internal/harness"
	"github.com/rouse-dev/rouse/trackers"
)

// Benchmark 3: cold start. The real binary is started (fork/exec included)
// with ColdN http trackers configured and a StoreMB store (built once with
// agent/store, as a tracker would have filled it), and /healthz is polled
// every millisecond until the first 200. The page cache is warm: this is
// an agent restart, not the first boot of the day.

type coldResult struct {
	N        int       `json:"n"`
	StoreMB  float64   `json:"store_mb"`
	Runs     []float64 `json:"runs_ms"`
	MedianMS float64   `json:"median_ms"`
	MaxMS    float64   `json:"max_ms"`
}

// buildStore writes a store of about mb MB of items into dataDir with
// agent/store, the way a tracker fills it, and returns its size in bytes.
func buildStore(t *tb, dataDir string, mb int) int64 {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	path := agent.StorePath(dataDir)
	ctx := context.Background()
	st, err := store.Open(ctx, path, store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	pad := strings.Repeat("x", 400)
	base := time.Now().Add(-24 * time.Hour)
	seq := 0
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() >= int64(mb)<<20 {
			break
		}
		batch := make([]trackers.Item, 2000)
		for i := range batch {
			seq++
			data, _ := json.Marshal(map[string]any{"track": fmt.Sprintf("track %d", seq), "artist": "bench", "pad": pad})
			batch[i] = trackers.Item{ID: fmt.Sprint(seq), Time: base.Add(time.Duration(seq) * time.Second), Data: data}
		}
		if _, err := st.SaveItems(ctx, "scrobbles", batch, fmt.Sprint(seq)); err != nil {
			t.Fatalf("fill store: %v", err)
		}
		if err := st.Checkpoint(ctx, "TRUNCATE"); err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
	}
	if err := st.Close(ctx); err != nil {
		t.Fatalf("close store: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	return fi.Size()
}

func copyFile(t *tb, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("read %s: %v", from, err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatalf("write %s: %v", to, err)
	}
}

func benchCold(t *tb, o options) *coldResult {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	size := buildStore(t, seed, o.StoreMB)
	g := makeDAG(o.ColdN, o.ProbeSeed)
	srv := newLatencyServer(t, g)
	cfg := filepath.Join(dir, "rouse.yaml")
	if err := os.WriteFile(cfg, []byte(httpTrackerConfig(g, srv.addr)), 0o600); err != nil {
		t.Fatalf("config: %v", err)
	}
	p := harness.NewPower(t, true)
	r := &coldResult{N: o.ColdN, StoreMB: round2(float64(size) / (1 << 20))}
	for i := range o.ColdRuns {
		data := filepath.Join(dir, fmt.Sprintf("data%d", i))
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatalf("data dir: %v", err)
		}
		copyFile(t, agent.StorePath(seed), agent.StorePath(data))
		d := coldStart(t, o.RouseBin, cfg, data, p.Addr())
		r.Runs = append(r.Runs, ms(d))
		_ = os.RemoveAll(data)
	}
	ds := make([]time.Duration, len(r.Runs))
	for i, v := range r.Runs {
		ds[i] = time.Duration(v * float64(time.Millisecond))
	}
	r.MedianMS = ms(median(ds))
	r.MaxMS = ms(maxOf(ds))
	return r
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// coldStart runs the binary and returns the time from just before the
// fork to the first 200 on /healthz; then stops it with SIGTERM.
func coldStart(t *tb, bin, cfg, data, bus string) time.Duration {
	listen := harness.FreeAddr(t)
	cmd := exec.Command(bin, "run", "--config", cfg, "--data", data, "--listen", listen)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rouse: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(harness.StopGuard):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("rouse did not stop within %v", harness.StopGuard)
		}
	}
	defer stop()
	for {
		select {
		case <-done:
			t.Fatalf("rouse exited during start: %s", log.String())
		default:
		}
		resp, err := hc.Get("http://" + listen + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0)
			}
		}
		if time.Since(t0) > harness.StartGuard {
			t.Fatalf("no /healthz within %v", harness.StartGuard)
		}
		time.Sleep(time.Millisecond)
	}
}

func printCold(w io.Writer, r *coldResult) {
	fmt.Fprintf(w, "3. Cold start: process start to the first 200 on /healthz (%d components, %.1f MB store, warm page cache)\n", r.N, r.StoreMB)
	fmt.Fprintf(w, "   median %.1f ms, max %.1f ms over %d runs %v\n\n", r.MedianMS, r.MaxMS, len(r.Runs), r.Runs)
}
