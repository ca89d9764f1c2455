package scheduler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// These tests use real processes and sockets, in real time. Timeouts here
// are failure guards, never speed assertions.

func TestCommandAction(t *testing.T) {
	t.Run("ExitCodeAndOutputTailAreRecorded", func(t *testing.T) {
		j := withDefaults(Job{Name: "j", Command: []string{"sh", "-c",
			`i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; echo oops >&2; exit 3`}})
		o := execute(context.Background(), j)
		if o.Result != ResultFailed || o.ExitCode == nil || *o.ExitCode != 3 {
			t.Fatalf("outcome = %+v, want failed with exit code 3", o)
		}
		if len(o.Output) > OutputTail || !strings.HasSuffix(o.Output, "line1999\noops\n") || strings.Contains(o.Output, "line0\n") {
			t.Fatalf("output tail (%d bytes) = ...%q", len(o.Output), o.Output[max(0, len(o.Output)-40):])
		}
	})
	t.Run("SuccessIsOK", func(t *testing.T) {
		o := execute(context.Background(), withDefaults(Job{Name: "j", Command: []string{"true"}}))
		if o.Result != ResultOK || o.ExitCode == nil || *o.ExitCode != 0 || o.Err != "" {
			t.Fatalf("outcome = %+v", o)
		}
	})
	t.Run("MissingProgramFails", func(t *testing.T) {
		o := execute(context.Background(), withDefaults(Job{Name: "j", Command: []string{"/nonexistent/rouse-test"}}))
		if o.Result != ResultFailed || !strings.Contains(o.Err, "start") {
			t.Fatalf("outcome = %+v", o)
		}
	})
	t.Run("EnvironmentIsTheAllowlistPlusEnv", func(t *testing.T) {
		t.Setenv("ROUSE_TEST_SECRET", "leak")
		dir := t.TempDir()
		o := execute(context.Background(), withDefaults(Job{Name: "j", Command: []string{"sh", "-c", "env; pwd"},
			Env: map[string]string{"FOO": "bar"}, Dir: dir}))
		if o.Result != ResultOK {
			t.Fatalf("outcome = %+v", o)
		}
		if strings.Contains(o.Output, "ROUSE_TEST_SECRET") || !strings.Contains(o.Output, "FOO=bar\n") {
			t.Fatalf("environment = %q", o.Output)
		}
		if _, ok := os.LookupEnv("PATH"); ok && !strings.Contains(o.Output, "PATH=") {
			t.Fatalf("PATH not passed: %q", o.Output)
		}
		if !strings.Contains(o.Output, dir) {
			t.Fatalf("working directory not %s: %q", dir, o.Output)
		}
	})
}

func TestHTTPAction(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("pong " + r.Method + " " + r.Header.Get("X-Token")))
		case "/created":
			w.WriteHeader(http.StatusCreated)
		case "/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		}
	}))
	defer srv.Close()
	cases := []struct {
		name   string
		action HTTPAction
		result string
		output string
		err    string
	}{
		{"AnyTwoHundredIsOK", HTTPAction{URL: srv.URL + "/ok", Method: "POST", Headers: map[string]string{"X-Token": "t1"}}, ResultOK, "pong POST t1", ""},
		{"ExpectedStatusIsOK", HTTPAction{URL: srv.URL + "/created", ExpectStatus: 201}, ResultOK, "", ""},
		{"UnexpectedStatusFails", HTTPAction{URL: srv.URL + "/ok", ExpectStatus: 204}, ResultFailed, "pong", "status 200, want 204"},
		{"ServerErrorFails", HTTPAction{URL: srv.URL + "/broken"}, ResultFailed, "boom", "status 500, want 2xx"},
		{"SlowServerTimesOut", HTTPAction{URL: srv.URL + "/slow"}, ResultTimeout, "", "timed out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.action
			j := withDefaults(Job{Name: "h", HTTP: &a, Timeout: 300 * time.Millisecond})
			if c.result != ResultTimeout {
				j.Timeout = 30 * time.Second
			}
			o := execute(context.Background(), j)
			if o.Result != c.result || !strings.Contains(o.Output, c.output) || !strings.Contains(o.Err, c.err) {
				t.Fatalf("outcome = %+v, want result %s, output ~%q, err ~%q", o, c.result, c.output, c.err)
			}
		})
	}
}

func TestFuncAction(t *testing.T) {
	t.Run("APanicIsAFailedRun", func(t *testing.T) {
		o := execute(context.Background(), withDefaults(Job{Name: "f", Func: func(context.Context) (string, error) { panic("bad") }}))
		if o.Result != ResultFailed || !strings.Contains(o.Err, "panic: bad") {
			t.Fatalf("outcome = %+v", o)
		}
	})
	t.Run("OutputIsTrimmedToItsTail", func(t *testing.T) {
		big := strings.Repeat("x", 10000) + "end"
		o := execute(context.Background(), withDefaults(Job{Name: "f", Func: func(context.Context) (string, error) { return big, nil }}))
		if len(o.Output) != OutputTail || !strings.HasSuffix(o.Output, "end") {
			t.Fatalf("output %d bytes", len(o.Output))
		}
	})
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	for _, p := range []string{"abc", "defgh", "ij", "", "klmnopqrstuvwxyz", "1"} {
		_, _ = tl.Write([]byte(p))
	}
	if got := tl.String(); got != "tuvwxyz1" {
		t.Fatalf("tail = %q, want %q", got, "tuvwxyz1")
	}
}

// waitRun polls the store until the run with id has ended (a failure guard
// of 60 s, not a speed check).
func waitRun(t *testing.T, st *testStore, job string, id int64) wire.JobRun {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range st.all(job) {
			if r.ID == id && r.Result != ResultRunning {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("run %d of %s did not end", id, job)
	return wire.JobRun{}
}

// startReal runs a scheduler in real time and stops it at cleanup.
func startReal(t *testing.T, jobs []Job) (*Scheduler, *testStore) {
	t.Helper()
	st := openStore(t)
	s, err := New(jobs, Options{Store: st, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := &fakeHost{}
	go func() { done <- s.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for h.readyCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("scheduler not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, st
}

func TestHTTPJobThroughTheScheduler(t *testing.T) {
	hits := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.Method + " " + r.URL.Path
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s, st := startReal(t, []Job{{Name: "ping", Schedule: "@yearly", HTTP: &HTTPAction{Method: "PUT", URL: srv.URL + "/hook", ExpectStatus: 204}}})
	r, err := s.RunNow(context.Background(), "ping")
	if err != nil {
		t.Fatal(err)
	}
	got := waitRun(t, st, "ping", r.ID)
	if got.Result != ResultOK || got.Reason != ReasonManual || got.EndedAt == nil || got.EndedAt.Before(*got.StartedAt) {
		t.Fatalf("run = %+v", got)
	}
	if hit := <-hits; hit != "PUT /hook" {
		t.Fatalf("server saw %q", hit)
	}
}
