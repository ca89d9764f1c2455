package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/agent/api"
	"github.com/rouse-dev/rouse/agent/api/apitest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// startAPI serves the real API server over a fake backend on a free
// loopback port, with its token in a fresh data directory.
func startAPI(t *testing.T, b api.Backend) (addr, dataDir string, srv *api.Server) {
	t.Helper()
	dataDir = t.TempDir()
	if err := os.Chmod(dataDir, 0o700); err != nil { // private, as the agent wants it
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "api-token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b == nil {
		b = &apitest.Backend{}
	}
	srv, err := api.New(b, api.Options{Listen: "127.0.0.1:0", Token: testToken, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return srv.Addr().String(), dataDir, srv
}

// runCLI runs the rouse command line in-process and returns its output and
// exit code. The guard only catches a hang.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	code := exitCode(err, &out)
	return out.String(), code
}
