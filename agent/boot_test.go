package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/internal/dirlock"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// dataDir is a fresh private data directory.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// emptyConfig has no components and no scheduler: ready once the store is.
func emptyConfig() *config.Config {
	cfg := config.Default()
	off := false
	cfg.Scheduler.Enabled = &off
	return cfg
}

// get fetches url (with the data directory's token when dir is set) and
// returns the status and body.
func get(t *testing.T, url, dir string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dir != "" {
		tok, err := os.ReadFile(filepath.Join(dir, "api-token"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runAgent runs a on its own goroutine and returns Run's result channel.
func runAgent(ctx context.Context, a *Agent) <-chan error {
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return done
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want an *ExitError", err)
	}
	return ee.Code
}

// assertReleased checks a failed boot left nothing held: the lock can be
// taken and the address bound again.
func assertReleased(t *testing.T, dir, addr string) {
	t.Helper()
	l, err := dirlock.Acquire(dir)
	if err != nil {
		t.Fatalf("the lock is still held after a failed boot: %v", err)
	}
	l.Release()
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the API address is still bound after a failed boot: %v", err)
		}
		ln.Close()
	}
}

func TestBoot(t *testing.T) {
	t.Run("HealthzAnswersBeforeTheConfigIsReadAndReadyzSaysStarting", func(t *testing.T) {
		dir, addr := dataDir(t), freeAddr(t)
		release := make(chan struct{})
		a, err := New(Options{DataDir: dir, Listen: addr, Logger: discard,
			LoadConfig: func() (*config.Config, error) {
				<-release
				return emptyConfig(), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := runAgent(ctx, a)
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		var code int
		var body string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if code, body = get(t, "http://"+addr+"/healthz", ""); code != 0 {
				break
			}
		}
		if code != 200 || !strings.Contains(body, `"alive"`) {
			t.Fatalf("/healthz while the config is read = %d %s", code, body)
		}
		if _, err := os.Stat(StorePath(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the store exists before the config is read: %v", err)
		}
		code, body = get(t, "http://"+addr+"/readyz", "")
		if code != 503 || !strings.Contains(body, "starting: reading the config") {
			t.Fatalf("/readyz while the config is read = %d %s", code, body)
		}
		code, body = get(t, "http://"+addr+"/api/v1/health", dir)
		if code != 200 || !strings.Contains(body, `"status":"starting"`) {
			t.Fatalf("/api/v1/health while the config is read = %d %s", code, body)
		}
		// A call that needs the agent waits for the boot, and is answered.
		wakes := make(chan string, 1)
		go func() {
			code, body := get(t, "http://"+addr+"/api/v1/wakes", dir)
			wakes <- fmt.Sprint(code, " ", body)
		}()
		select {
		case got := <-wakes:
			t.Fatalf("/api/v1/wakes answered %s before the boot was done", got)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		if got := <-wakes; !strings.HasPrefix(got, "200 ") {
			t.Fatalf("/api/v1/wakes after the boot = %s", got)
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if code, body = get(t, "http://"+addr+"/readyz", ""); code == 200 {
				break
			}
		}
		var rd struct{ Ready bool }
		if code != 200 || json.Unmarshal([]byte(body), &rd) != nil || !rd.Ready {
			t.Fatalf("/readyz after boot = %d %s", code, body)
		}
	})
	t.Run("ASecondAgentOnTheSameDataDirectoryExits1HavingOpenedNothing", func(t *testing.T) {
		dir := dataDir(t)
		first, err := dirlock.Acquire(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Release()
		loaded := false
		a, err := New(Options{DataDir: dir, Listen: freeAddr(t), Logger: discard,
			LoadConfig: func() (*config.Config, error) { loaded = true; return emptyConfig(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Run(context.Background())
		if code := exitCodeOf(t, err); code != 1 {
			t.Fatalf("exit code %d, want 1", code)
		}
		want := fmt.Sprintf("another rouse (pid %d) is already using %s", os.Getpid(), dir)
		if err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
		if loaded {
			t.Fatal("the config was read")
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != dirlock.FileName {
				t.Errorf("the second agent left %s in the data directory", e.Name())
			}
		}
	})
	t.Run("TheUncleanShutdownIsNotClaimedByASecondAgent", func(t *testing.T) {
		dir := dataDir(t)
		a, stop := testAgent(t, dir, nil)
		defer stop()
		b, err := New(Options{Config: emptyConfig(), DataDir: dir, Logger: discard, noAPI: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.boot(context.Background()); exitCodeOf(t, err) != 1 {
			t.Fatalf("second boot = %v", err)
		}
		if b.store != nil {
			t.Fatal("the second agent opened the store")
		}
		if a.store.State() != "open" {
			t.Fatalf("the first agent's store is %s", a.store.State())
		}
	})
	t.Run("AStopDuringTheBootIsACleanStop", func(t *testing.T) {
		dir, addr := dataDir(t), freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		a, err := New(Options{DataDir: dir, Listen: addr, Logger: discard,
			LoadConfig: func() (*config.Config, error) {
				cancel() // SIGTERM arrives while the config is read
				return emptyConfig(), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Run(ctx); err != nil {
			t.Fatalf("Run = %v, want nil: a stop while booting is not a failure", err)
		}
		assertReleased(t, dir, addr)
	})
	t.Run("ABadConfigExits78AndRollsBack", func(t *testing.T) {
		dir, addr := dataDir(t), freeAddr(t)
		a, err := New(Options{DataDir: dir, Listen: addr, Logger: discard,
			LoadConfig: func() (*config.Config, error) { return nil, errors.New("rouse.yaml:3: trackers[0].kind: unknown") }})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Run(context.Background())
		if code := exitCodeOf(t, err); code != ExitBadConfig {
			t.Fatalf("exit code %d, want %d", code, ExitBadConfig)
		}
		assertReleased(t, dir, addr)
	})
	t.Run("AStoreThatCannotOpenExits1AndRollsBack", func(t *testing.T) {
		dir, addr := dataDir(t), freeAddr(t)
		// A directory where the database file should be.
		if err := os.MkdirAll(StorePath(dir), 0o700); err != nil {
			t.Fatal(err)
		}
		a, err := New(Options{Config: emptyConfig(), DataDir: dir, Listen: addr, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Run(context.Background())
		if code := exitCodeOf(t, err); code != 1 || !strings.HasPrefix(err.Error(), "cannot open the store: ") {
			t.Fatalf("Run = %d %v, want 1 and cannot open the store", code, err)
		}
		assertReleased(t, dir, addr)
	})
	t.Run("AnUnknownKindExits78AndClosesTheStore", func(t *testing.T) {
		dir, addr := dataDir(t), freeAddr(t)
		cfg := emptyConfig()
		cfg.Trackers = append(cfg.Trackers, config.Tracker{Name: "x", Kind: "no-such-kind", Hash: "x"})
		a, err := New(Options{Config: cfg, DataDir: dir, Listen: addr, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Run(context.Background())
		if code := exitCodeOf(t, err); code != ExitBadConfig {
			t.Fatalf("Run = %d %v, want 78", code, err)
		}
		if st := a.store.State(); st != "closed" {
			t.Fatalf("the store is %s after the failed boot, want closed", st)
		}
		assertReleased(t, dir, addr)
	})
}
