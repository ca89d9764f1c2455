package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "0123456789abcdefSECRETKEYfedcba98"

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(tr trackers.Component, h trackers.Host) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- tr.Run(ctx, h) }()
	return r
}

func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func keyFile(t testing.TB, key string) string {
	p := filepath.Join(t.TempDir(), "lastfm.key")
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newLastfmTracker(t testing.TB, apiURL, keyPath string, st trackers.Store, name string) *Tracker {
	o := DefaultLastfmOptions()
	o.User = "alice"
	o.APIKeyFile = keyPath
	o.APIURL = apiURL
	tr, err := NewLastfm(*o, trackers.Deps{Name: name, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func hasState(h *fakehost.Host, s trackers.State) bool {
	for _, x := range h.States() {
		if x == s {
			return true
		}
	}
	return false
}

func TestLastfmCatchUp(t *testing.T) {
	t.Run("Ten thousand missed scrobbles arrive once each, and the cursor lands after the newest", func(t *testing.T) {
		const end = 1_700_000_000
		fake := &fakeLastfm{key: testKey, nowPlaying: true}
		fake.add(makeScrobbles(10_000, end)...)
		// New scrobbles arrive in the middle of the catch-up: they push
		// older ones onto later pages, which must not lose any.
		fake.onRequest = func(n int) {
			if n == 5 {
				fake.add(makeScrobbles(30, end+100)...)
			}
		}
		srv := httptest.NewServer(fake)
		defer srv.Close()
		st := teststore.Open(t)
		st.SetCursor("scrobbles", strconv.Itoa(end-20_000)) // an old cursor: a long sleep
		h := fakehost.New()
		tr := newLastfmTracker(t, srv.URL+"/2.0/", keyFile(t, testKey), st, "scrobbles")
		r := start(tr, h)
		eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
		if err := r.stop(t); err != nil {
			t.Fatal(err)
		}
		// The 30 newer ones were added after page 1 was read: the next
		// poll picks them up. The first 10,000 must all be here.
		items := st.All("scrobbles")
		seen := map[string]bool{}
		for _, it := range items {
			if seen[it.ID] {
				t.Fatalf("duplicate item %s", it.ID)
			}
			seen[it.ID] = true
			if strings.Contains(string(it.Data), "nowplaying") {
				t.Fatal("the now-playing entry was stored")
			}
		}
		if len(items) < 10_000 {
			t.Fatalf("stored %d items, want at least 10000", len(items))
		}
		times := map[int64]bool{}
		for _, it := range items {
			times[it.Time.Unix()] = true
		}
		for i := int64(0); i < 10_000; i++ {
			if !times[end-i] {
				t.Fatalf("scrobble at %d missing", end-i)
			}
		}
		c, _ := st.Cursor(context.Background(), "scrobbles")
		if want := strconv.Itoa(end + 1); c != want && c != strconv.Itoa(end+101) {
			t.Fatalf("cursor = %s, want %s (or past the late arrivals)", c, want)
		}
		if !hasState(h, trackers.StateCatchingUp) {
			t.Fatalf("never reported catching_up: %v", h.States())
		}

		// The next poll (a wake) fetches only what is new, and the late
		// arrivals land.
		before := fake.count()
		h2 := fakehost.New()
		r = start(tr, h2)
		eventually(t, "ready again", func() bool { return h2.Last().State == trackers.StateReady })
		if err := r.stop(t); err != nil {
			t.Fatal(err)
		}
		if got := st.Len("scrobbles"); got != 10_030 {
			t.Fatalf("after the next poll: %d items, want 10030", got)
		}
		if n := fake.count() - before; n != 1 {
			t.Fatalf("an up-to-date poll made %d requests, want 1", n)
		}
		c, _ = st.Cursor(context.Background(), "scrobbles")
		if c != strconv.Itoa(end+101) {
			t.Fatalf("cursor = %s, want %d", c, end+101)
		}
	})

	t.Run("A lone scrobble (no array) is read and now playing is not an item", func(t *testing.T) {
		fake := &fakeLastfm{key: testKey, nowPlaying: false}
		fake.add(scrobble{uts: 1000, artist: "a", name: "n"})
		srv := httptest.NewServer(fake)
		defer srv.Close()
		st := teststore.Open(t)
		h := fakehost.New()
		r := start(newLastfmTracker(t, srv.URL, keyFile(t, testKey), st, "one"), h)
		eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
		_ = r.stop(t)
		if st.Len("one") != 1 {
			t.Fatalf("stored %d", st.Len("one"))
		}
		if s := h.States(); len(s) != 1 || s[0] != trackers.StateReady {
			t.Fatalf("a one-page poll reported %v, want just ready", s)
		}
	})
}

func TestCursorNeverPassesAnUncommittedItem(t *testing.T) {
	const end = 1_700_000_000
	fake := &fakeLastfm{key: testKey}
	fake.add(makeScrobbles(1000, end)...)
	srv := httptest.NewServer(fake)
	defer srv.Close()

	// The real store, behind a wrapper that fails the third save (a full
	// disk) and, before each save that moves the cursor, checks that every
	// item below the new cursor is committed or in this very save.
	st := teststore.Open(t)
	var mu sync.Mutex
	saves := 0
	failAt := 3
	fs := &teststore.Faulty{Store: st}
	fs.BeforeSave = func(_ context.Context, tracker string, items []trackers.Item, cursor string) error {
		mu.Lock()
		saves++
		n := saves
		mu.Unlock()
		if n == failAt {
			return errors.New("disk full")
		}
		if cursor == "" {
			return nil
		}
		committed := map[int64]bool{}
		for _, it := range st.All(tracker) {
			committed[it.Time.Unix()] = true
		}
		for _, it := range items {
			committed[it.Time.Unix()] = true
		}
		c, _ := strconv.ParseInt(cursor, 10, 64)
		for i := int64(0); i < 1000; i++ {
			if ts := end - i; ts < c && !committed[ts] {
				t.Errorf("cursor %d set while the item at %d is not committed", c, ts)
				return nil
			}
		}
		return nil
	}
	h := fakehost.New()
	o := DefaultLastfmOptions()
	o.User, o.APIKeyFile, o.APIURL, o.Limit = "alice", keyFile(t, testKey), srv.URL, 100
	tr, err := NewLastfm(*o, trackers.Deps{Name: "s", Store: fs})
	if err != nil {
		t.Fatal(err)
	}
	r := start(tr, h)
	eventually(t, "the failed save reported", func() bool { return h.Last().Err != nil })
	if !strings.Contains(h.Last().Err.Error(), "disk full") {
		t.Fatalf("error = %v", h.Last().Err)
	}
	if c, _ := st.Cursor(context.Background(), "s"); c != "" {
		t.Fatalf("cursor moved to %s after a failed save mid catch-up", c)
	}
	tr.Resume(context.Background()) // the store is back: poll now
	eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady && h.Last().Err == nil })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if st.Len("s") != 1000 {
		t.Fatalf("stored %d, want 1000", st.Len("s"))
	}
	if c, _ := st.Cursor(context.Background(), "s"); c != strconv.Itoa(end+1) {
		t.Fatalf("cursor = %s", c)
	}
}

func TestOldestFirstCheckpointsEachPage(t *testing.T) {
	// An API listing oldest first, no page count: ?since=N returns up to 5
	// items with time >= N. Several items share a second across a page
	// boundary.
	var times []int64
	for i := int64(0); i < 23; i++ {
		times = append(times, 100+i/3) // three items per second
	}
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		var out []string
		for i, ts := range times {
			if ts >= since && len(out) < 5 {
				out = append(out, fmt.Sprintf(`{"id":"i%d","t":%d}`, i, ts))
			}
		}
		fmt.Fprintf(w, `[%s]`, strings.Join(out, ","))
	}))
	defer srv.Close()
	st := teststore.Open(t)
	var cursors []string
	fs := &teststore.Faulty{Store: st, BeforeSave: func(_ context.Context, _ string, _ []trackers.Item, c string) error {
		if c != "" {
			cursors = append(cursors, c)
		}
		return nil
	}}
	o := DefaultOptions()
	o.URL = srv.URL + "/?since={{.Since}}"
	o.Items.Time = "t"
	o.Paging.Order = OrderOldestFirst
	tr, err := New(*o, trackers.Deps{Name: "o", Store: fs})
	if err != nil {
		t.Fatal(err)
	}
	h := fakehost.New()
	r := start(tr, h)
	eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
	_ = r.stop(t)
	if st.Len("o") != 23 {
		t.Fatalf("stored %d of 23", st.Len("o"))
	}
	if last := cursors[len(cursors)-1]; last != "108" {
		t.Fatalf("final cursor %s, want 108 (newest 107 + 1): %v", last, cursors)
	}
	if len(cursors) < 3 {
		t.Fatalf("want a checkpoint per page, got %v", cursors)
	}
}

func TestFaultServers(t *testing.T) {
	generic := func(t *testing.T, u string, mod func(*Options)) (*Tracker, *teststore.Store) {
		o := DefaultOptions()
		o.URL = u + "/items?since={{.Since}}"
		o.Items.Time = "t"
		o.Timeout = 300 * time.Millisecond
		o.Retry = RetryOptions{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Budget: 2}
		if mod != nil {
			mod(o)
		}
		st := teststore.Open(t)
		tr, err := New(*o, trackers.Deps{Name: "f", Store: st})
		if err != nil {
			t.Fatal(err)
		}
		return tr, st
	}

	t.Run("A hanging server is cut off by the request timeout", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			hits.Add(1)
			<-r.Context().Done()
		}))
		defer srv.Close()
		tr, _ := generic(t, srv.URL, nil)
		h := fakehost.New()
		r := start(tr, h)
		eventually(t, "an error", func() bool { return h.Last().Err != nil })
		_ = r.stop(t)
		err := h.Last().Err
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "retry budget") {
			t.Fatalf("err = %v", err)
		}
		if h.Last().State != trackers.StateStarting {
			t.Fatalf("state = %s", h.Last().State)
		}
		if n := hits.Load(); n != 3 {
			t.Fatalf("%d requests, want 1 + 2 retries", n)
		}
	})

	t.Run("A server that resets connections is retried under the budget", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			if hits.Add(1) <= 2 {
				c, _, _ := w.(nethttp.Hijacker).Hijack()
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				return
			}
			fmt.Fprint(w, `[{"id":"a","t":5}]`)
		}))
		defer srv.Close()
		tr, st := generic(t, srv.URL, nil)
		h := fakehost.New()
		r := start(tr, h)
		eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
		_ = r.stop(t)
		if st.Len("f") != 1 || hits.Load() != 3 {
			t.Fatalf("items %d, requests %d", st.Len("f"), hits.Load())
		}
	})

	t.Run("A dribbling server is cut off by the request timeout", func(t *testing.T) {
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(200)
			for {
				if _, err := w.Write([]byte("[")); err != nil {
					return
				}
				w.(nethttp.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}))
		defer srv.Close()
		tr, _ := generic(t, srv.URL, func(o *Options) { o.Retry.Budget = 0 })
		h := fakehost.New()
		r := start(tr, h)
		eventually(t, "an error", func() bool { return h.Last().Err != nil })
		_ = r.stop(t)
		if err := h.Last().Err; !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "read body") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("500 then 429 with Retry-After is honoured and then succeeds", func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			mu.Lock()
			at = append(at, time.Now())
			n := len(at)
			mu.Unlock()
			switch n {
			case 1:
				w.WriteHeader(500)
			case 2:
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(429)
			default:
				fmt.Fprint(w, `[{"id":"a","t":5},{"id":"b","t":6}]`)
			}
		}))
		defer srv.Close()
		tr, st := generic(t, srv.URL, nil)
		h := fakehost.New()
		r := start(tr, h)
		eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
		_ = r.stop(t)
		mu.Lock()
		defer mu.Unlock()
		if len(at) != 3 || st.Len("f") != 2 {
			t.Fatalf("requests %d items %d", len(at), st.Len("f"))
		}
		if gap := at[2].Sub(at[1]); gap < time.Second {
			t.Fatalf("retried %v after a 429 with Retry-After: 1", gap)
		}
	})

	t.Run("A 404 fails fast with a clear error", func(t *testing.T) {
		var hits atomic.Int32
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			hits.Add(1)
			nethttp.Error(w, "no such feed", 404)
		}))
		defer srv.Close()
		tr, _ := generic(t, srv.URL, nil)
		err := tr.Run(context.Background(), fakehost.New())
		if err == nil || !strings.Contains(err.Error(), "404 Not Found: no such feed") {
			t.Fatalf("err = %v", err)
		}
		if hits.Load() != 1 {
			t.Fatalf("a 404 was retried: %d requests", hits.Load())
		}
	})
}

func TestAPIKeyNeverLeaks(t *testing.T) {
	var mode atomic.Int32
	fake := &fakeLastfm{key: testKey}
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		switch mode.Load() {
		case 0:
			w.WriteHeader(503)
			io.WriteString(w, "upstream "+r.URL.String()) // echoes the key back
		default:
			fake.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	check := func(t *testing.T, what, s string) {
		t.Helper()
		if strings.Contains(s, testKey) || strings.Contains(s, "SECRETKEY") {
			t.Fatalf("the API key leaked into %s: %s", what, s)
		}
	}
	// firstError runs a tracker against apiURL with a one-try retry budget
	// until it reports an error, stops it and returns its host.
	firstError := func(t *testing.T, apiURL string) *fakehost.Host {
		t.Helper()
		h := fakehost.New()
		tr := newLastfmTracker(t, apiURL, keyFile(t, testKey), teststore.Open(t), "k")
		tr.opts.Retry = RetryOptions{Initial: time.Millisecond, Max: time.Millisecond, Budget: 1}
		r := start(tr, h)
		eventually(t, "an error", func() bool { return h.Last().Err != nil })
		_ = r.stop(t)
		return h
	}
	t.Run("Errors echoed by the server are redacted", func(t *testing.T) {
		h := firstError(t, srv.URL)
		check(t, "the reported error", h.Last().Err.Error())
		check(t, "the logs", h.Logs())
		if !strings.Contains(h.Last().Err.Error(), "503") {
			t.Fatalf("err = %v", h.Last().Err)
		}
	})
	t.Run("A refused key fails with Last.fm's message and no key", func(t *testing.T) {
		mode.Store(1)
		h := fakehost.New()
		tr := newLastfmTracker(t, srv.URL, keyFile(t, "wrong"+testKey), teststore.Open(t), "k")
		err := tr.Run(context.Background(), h)
		if err == nil || !strings.Contains(err.Error(), "Invalid API key") {
			t.Fatalf("err = %v", err)
		}
		check(t, "the error", err.Error())
		check(t, "the logs", h.Logs())
	})
	t.Run("Network errors carry no key", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close() // nothing listens: connection refused
		h := firstError(t, "http://"+addr+"/2.0/")
		check(t, "the error", h.Last().Err.Error())
		check(t, "the logs", h.Logs())
		if !strings.Contains(h.Last().Err.Error(), "REDACTED") {
			t.Fatalf("err = %v", h.Last().Err)
		}
	})
	t.Run("A missing key file says what to do", func(t *testing.T) {
		tr := newLastfmTracker(t, srv.URL, filepath.Join(t.TempDir(), "nope"), teststore.Open(t), "k")
		err := tr.Run(context.Background(), fakehost.New())
		if err == nil || !strings.Contains(err.Error(), "put your Last.fm API key in it") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestOptions(t *testing.T) {
	t.Run("Defaults plus a URL and a time field are valid", func(t *testing.T) {
		o := DefaultOptions()
		o.URL = "https://example.com/api?from={{.Since}}&page={{.Page}}"
		o.Items.Time = "date.uts"
		if errs := o.Validate(); len(errs) != 0 {
			t.Fatal(errs)
		}
	})
	t.Run("Bad values name their keys", func(t *testing.T) {
		o := DefaultOptions()
		o.URL = "ftp://x/{{.Nope}}"
		o.Interval = time.Millisecond
		o.Items.TimeFormat = "julian"
		o.MaxPages = 0
		o.Retry.Max = 0
		got := map[string]bool{}
		for _, e := range o.Validate() {
			got[e.Key] = true
		}
		for _, k := range []string{"url", "interval", "items.time_format", "items.time", "max_pages", "retry.max"} {
			if !got[k] {
				t.Errorf("no error for %s (got %v)", k, got)
			}
		}
	})
	t.Run("Paging none is a shorthand", func(t *testing.T) {
		o := DefaultOptions()
		o.Paging.TotalPages = "total"
		if err := o.Paging.SetScalar("none"); err != nil {
			t.Fatal(err)
		}
		if o.Paging.TotalPages != "" {
			t.Fatalf("%+v", o)
		}
		if err := o.Paging.SetScalar("some"); err == nil {
			t.Fatal("paging: some accepted")
		}
	})
	t.Run("Lastfm needs a user and a key file", func(t *testing.T) {
		o := DefaultLastfmOptions()
		o.Limit = 500
		got := map[string]bool{}
		for _, e := range o.Validate() {
			got[e.Key] = true
		}
		for _, k := range []string{"user", "api_key_file", "limit"} {
			if !got[k] {
				t.Errorf("no error for %s", k)
			}
		}
	})
	t.Run("Both kinds need the network", func(t *testing.T) {
		for name, kind := range map[string]trackers.Kind{"http": Kind, "lastfm": LastfmKind} {
			if kind.Name != name || !kind.NeedsNetwork {
				t.Fatalf("kind %s: %+v", name, kind)
			}
		}
	})
	t.Run("Retry-After reads seconds and HTTP dates", func(t *testing.T) {
		now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		h := nethttp.Header{}
		h.Set("Retry-After", "7")
		if d, ok := retryAfter(h, now); !ok || d != 7*time.Second {
			t.Fatal(d, ok)
		}
		h.Set("Retry-After", now.Add(90*time.Second).Format(nethttp.TimeFormat))
		if d, ok := retryAfter(h, now); !ok || d != 90*time.Second {
			t.Fatal(d, ok)
		}
		h.Set("Retry-After", "soon")
		if _, ok := retryAfter(h, now); ok {
			t.Fatal("garbage accepted")
		}
	})
}

func TestGenericSecretsAreRedacted(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		// A server that echoes credentials back in its error.
		nethttp.Error(w, "bad credentials "+r.Header.Get("Authorization")+" "+r.URL.RawQuery, nethttp.StatusUnauthorized)
	}))
	defer srv.Close()
	o := DefaultOptions()
	o.URL = srv.URL + "/feed?token=tok-SECRET-1&since={{.Since}}"
	o.Headers = map[string]string{"Authorization": "Bearer hdr-SECRET-2"}
	o.Items.Time = "t"
	tr, err := New(*o, trackers.Deps{Name: "g", Store: teststore.Open(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := fakehost.New()
	err = tr.Run(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{err.Error(), h.Logs()} {
		if strings.Contains(s, "SECRET") {
			t.Fatalf("a secret leaked: %s", s)
		}
	}
}

func TestKeyFileTildeExpands(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "k"), []byte("  abcd1234 \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := readKeyFile("~/k")
	if err != nil || k != "abcd1234" {
		t.Fatalf("key %q err %v", k, err)
	}
}
