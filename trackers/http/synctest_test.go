package http

import (
	"context"
	"fmt"
	"io"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// scripted is a RoundTripper answering from a script, recording when each
// request came (fake time inside a bubble).
type scripted struct {
	mu     sync.Mutex
	script func(n int, r *nethttp.Request) *nethttp.Response
	at     []time.Time
}

func (s *scripted) RoundTrip(r *nethttp.Request) (*nethttp.Response, error) {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	n := len(s.at)
	s.mu.Unlock()
	resp := s.script(n, r)
	if resp == nil {
		return nil, fmt.Errorf("connection reset by peer")
	}
	resp.Request = r
	return resp, nil
}

func (s *scripted) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at...)
}

func answer(code int, body string, hdr ...string) *nethttp.Response {
	h := nethttp.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	return &nethttp.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader(body))}
}

func scriptedTracker(t *testing.T, s *scripted, mod func(*Options)) (*Tracker, *teststore.Store) {
	o := DefaultOptions()
	o.URL = "http://api.test/items?since={{.Since}}"
	o.Items.Time = "t"
	if mod != nil {
		mod(o)
	}
	st := teststore.Open(t)
	tr, err := New(*o, trackers.Deps{Name: "x", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	tr.transport = s
	tr.rand = func(n int64) int64 { return n - 1 } // always the ceiling
	return tr, st
}

func TestRetryTimingUnderFakeTime(t *testing.T) {
	t.Run("Backoff doubles to its cap and Retry-After overrides it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &scripted{script: func(n int, _ *nethttp.Request) *nethttp.Response {
				switch n {
				case 1, 2, 3, 4:
					return answer(500, "")
				case 5:
					return nil // a reset
				case 6:
					return answer(429, "", "Retry-After", "7")
				}
				return answer(200, `[{"id":"a","t":10}]`)
			}}
			tr, st := scriptedTracker(t, s, func(o *Options) { o.Retry.Max = 4 * time.Second })
			h := fakehost.New()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- tr.Run(ctx, h) }()
			time.Sleep(time.Minute)
			cancel()
			<-done
			at := s.times()
			var gaps []time.Duration
			for i := 1; i < 7; i++ {
				gaps = append(gaps, at[i].Sub(at[i-1]))
			}
			want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second, 7 * time.Second}
			if fmt.Sprint(gaps) != fmt.Sprint(want) {
				t.Fatalf("gaps %v, want %v", gaps, want)
			}
			if st.Len("x") != 1 || h.Last().State != trackers.StateReady {
				t.Fatalf("items %d, states %v", st.Len("x"), h.States())
			}
		})
	})
	t.Run("The budget caps retries per poll and the next poll comes at the interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &scripted{script: func(int, *nethttp.Request) *nethttp.Response { return answer(503, "") }}
			tr, _ := scriptedTracker(t, s, func(o *Options) { o.Retry.Budget = 3 })
			h := fakehost.New()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			start := time.Now()
			go func() { done <- tr.Run(ctx, h) }()
			time.Sleep(time.Second + 2*time.Second + 4*time.Second + time.Millisecond)
			synctest.Wait()
			if n := len(s.times()); n != 4 {
				t.Fatalf("%d requests in the first poll, want 1 + 3", n)
			}
			if err := h.Last().Err; err == nil || !strings.Contains(err.Error(), "retry budget (3) spent") {
				t.Fatalf("err = %v", err)
			}
			// The poll ended 7 s in; the next is due a minute later, on
			// the machine's shared grid (trackers.PollDelay).
			next := start.Add(7 * time.Second).Add(trackers.PollDelay(start.Add(7*time.Second), time.Minute))
			if d := next.Sub(start.Add(7 * time.Second)); d < 58*time.Second || d > 62*time.Second {
				t.Fatalf("next poll %v after the first, want about a minute", d)
			}
			time.Sleep(time.Until(next) - time.Millisecond)
			synctest.Wait()
			if n := len(s.times()); n != 4 {
				t.Fatalf("polled again before the interval: %d", n)
			}
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			if n := len(s.times()); n != 5 {
				t.Fatalf("no poll at the interval: %d", n)
			}
			cancel()
			<-done
		})
	})
	t.Run("Pause stops polling and Resume polls at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &scripted{script: func(n int, r *nethttp.Request) *nethttp.Response {
				return answer(200, fmt.Sprintf(`[{"id":"%d","t":%d}]`, n, n))
			}}
			tr, st := scriptedTracker(t, s, nil)
			h := fakehost.New()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- tr.Run(ctx, h) }()
			synctest.Wait()
			tr.Pause(context.Background())
			n := len(s.times())
			time.Sleep(3 * time.Hour)
			synctest.Wait()
			if len(s.times()) != n {
				t.Fatal("polled while paused")
			}
			woke := time.Now()
			tr.Resume(context.Background())
			synctest.Wait()
			at := s.times()
			if len(at) != n+1 || !at[n].Equal(woke) {
				t.Fatalf("no immediate poll after Resume: %d requests", len(at))
			}
			if h.Last().State != trackers.StateReady || st.Len("x") != 2 {
				t.Fatalf("states %v items %d", h.States(), st.Len("x"))
			}
			cancel()
			<-done
		})
	})
	t.Run("A Pause mid-retry cancels the wait and writes nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := &scripted{script: func(n int, r *nethttp.Request) *nethttp.Response {
				if n == 1 {
					return answer(429, "", "Retry-After", "3600")
				}
				return answer(200, `[{"id":"a","t":1}]`)
			}}
			tr, st := scriptedTracker(t, s, nil)
			fs := &teststore.Faulty{Store: st} // counts every SaveItems call
			tr.store = fs
			h := fakehost.New()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- tr.Run(ctx, h) }()
			time.Sleep(time.Minute)
			start := time.Now()
			tr.Pause(context.Background())
			if time.Since(start) != 0 {
				t.Fatal("Pause waited")
			}
			time.Sleep(2 * time.Hour)
			synctest.Wait()
			if fs.Calls() != 0 || len(s.times()) != 1 {
				t.Fatalf("saves %d requests %d while paused", fs.Calls(), len(s.times()))
			}
			tr.Resume(context.Background())
			synctest.Wait()
			if st.Len("x") != 1 {
				t.Fatal("nothing stored after Resume")
			}
			cancel()
			<-done
		})
	})
}

func TestMaxPagesContinuesAtTheNextPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLastfm{key: testKey}
		fake.add(makeScrobbles(500, 1_700_000_000)...)
		st := teststore.Open(t)
		var pages []string
		fs := &teststore.Faulty{Store: st, BeforeSave: func(_ context.Context, _ string, items []trackers.Item, cursor string) error {
			pages = append(pages, fmt.Sprintf("%d:%s", len(items), cursor))
			return nil
		}}
		tr := newLastfmTracker(t, "http://lastfm.test/2.0/", keyFile(t, testKey), fs, "m")
		tr.transport = &inProcess{h: fake, cache: map[string][]byte{}}
		tr.opts.MaxPages = 2
		h := fakehost.New()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		start := time.Now()
		go func() { done <- tr.Run(ctx, h) }()
		synctest.Wait()
		if st.Len("m") != 400 || h.Last().State != trackers.StateCatchingUp {
			t.Fatalf("after the first poll: %d items, states %v", st.Len("m"), h.States())
		}
		if c, _ := st.Cursor(ctx, "m"); c != "" {
			t.Fatalf("cursor moved mid catch-up: %s", c)
		}
		time.Sleep(trackers.PollDelay(start, time.Minute)) // the first poll took no time
		synctest.Wait()
		if st.Len("m") != 500 || h.Last().State != trackers.StateReady {
			t.Fatalf("after the second poll: %d items, states %v", st.Len("m"), h.States())
		}
		want := "[200: 200: 100:1700000001]"
		if fmt.Sprint(pages) != want {
			t.Fatalf("pages %v, want %s (pages 1-2, then 3 with the cursor)", pages, want)
		}
		cancel()
		<-done
	})
}
