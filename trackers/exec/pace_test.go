package exec

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// probeLog records when each run of a readiness check started and ended,
// relative to t0.
type probeLog struct {
	mu         sync.Mutex
	t0         time.Time
	starts     []time.Duration
	ends       []time.Duration
	deadlines  []time.Duration
	passFrom   time.Duration // the check passes from then on; 0: never
	blockUntil bool          // each run waits for its context to end
}

func (l *probeLog) check(ctx context.Context) error {
	l.mu.Lock()
	now := time.Since(l.t0)
	l.starts = append(l.starts, now)
	if d, ok := ctx.Deadline(); ok {
		l.deadlines = append(l.deadlines, d.Sub(l.t0))
	}
	pass := l.passFrom > 0 && now >= l.passFrom
	block := l.blockUntil
	l.mu.Unlock()
	var err error = errors.New("ready.tcp: connection refused")
	if block {
		<-ctx.Done()
		err = ctx.Err()
	} else if pass {
		err = nil
	}
	l.mu.Lock()
	l.ends = append(l.ends, time.Since(l.t0))
	l.mu.Unlock()
	return err
}

func (l *probeLog) get() (starts, ends, deadlines []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.starts), slices.Clone(l.ends), slices.Clone(l.deadlines)
}

func msList(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

// runFor runs tr in the bubble for d, then stops it.
func runFor(t *testing.T, tr *Tracker, d time.Duration) {
	t.Helper()
	stop := runInBubble(tr, newHost())
	time.Sleep(d)
	synctest.Wait()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestReadyProbePace(t *testing.T) {
	t.Run("TCPFirstAt10msThenDoublingUpToTheInterval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &probeLog{t0: time.Now()}
			tr, _ := newFake(t, func(o *Options) { o.Ready = Ready{TCP: "127.0.0.1:1"} }, l.check)
			runFor(t, tr, 1200*time.Millisecond)
			starts, _, _ := l.get()
			// pauses 10, 20, 40, 80, 160, then 200 (ready_interval) each
			want := msList(10, 30, 70, 150, 310, 510, 710, 910, 1110)
			if !slices.Equal(starts, want) {
				t.Fatalf("checks ran at %v, want %v", starts, want)
			}
		})
	})
	t.Run("ReadyAtTheFirstCheckAfterItListens", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &probeLog{t0: time.Now(), passFrom: 60 * time.Millisecond}
			tr, _ := newFake(t, func(o *Options) { o.Ready = Ready{TCP: "127.0.0.1:1"} }, l.check)
			h := newHost()
			stop := runInBubble(tr, h)
			time.Sleep(69 * time.Millisecond)
			synctest.Wait()
			before := h.count(isState(trackers.StateReady))
			time.Sleep(time.Millisecond)
			synctest.Wait()
			at := h.count(isState(trackers.StateReady))
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if before != 0 {
				t.Fatalf("ready before the check at 70ms: %v", h.all())
			}
			if at != 1 {
				t.Fatalf("not ready at 70ms (with the plain 200ms interval: 200ms): %v", h.all())
			}
		})
	})
	t.Run("CommandStartsAtAQuarterOfTheInterval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &probeLog{t0: time.Now()}
			tr, _ := newFake(t, func(o *Options) { o.Ready = Ready{Command: []string{"true"}} }, l.check)
			runFor(t, tr, 1*time.Second)
			starts, _, _ := l.get()
			want := msList(50, 150, 350, 550, 750, 950)
			if !slices.Equal(starts, want) {
				t.Fatalf("checks ran at %v, want %v", starts, want)
			}
		})
	})
	t.Run("AWakeStartsTheRampOver", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &probeLog{t0: time.Now()}
			tr, _ := newFake(t, func(o *Options) { o.Ready = Ready{HTTP: "http://127.0.0.1:1/"} }, l.check)
			stop := runInBubble(tr, newHost())
			time.Sleep(1000 * time.Millisecond) // checks at ..., 910; next due at 1110
			synctest.Wait()
			tr.Resume(context.Background())
			time.Sleep(200 * time.Millisecond)
			synctest.Wait()
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			starts, _, _ := l.get()
			i := slices.Index(starts, 1000*time.Millisecond)
			if i < 0 {
				t.Fatalf("no check at the wake (1s): %v", starts)
			}
			if got, want := starts[i:], msList(1000, 1010, 1030, 1070, 1150); !slices.Equal(got, want) {
				t.Fatalf("checks after the wake at %v, want %v", got, want)
			}
		})
	})
	t.Run("ReadyTimeoutStillBoundsEachRun", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := &probeLog{t0: time.Now(), blockUntil: true}
			tr, _ := newFake(t, func(o *Options) {
				o.Ready = Ready{TCP: "127.0.0.1:1"}
				o.ReadyTimeout = time.Second
			}, l.check)
			runFor(t, tr, 3500*time.Millisecond)
			starts, ends, deadlines := l.get()
			// each run ends at its ready_timeout; the next waits its pause
			if want := msList(10, 1030, 2070, 3150); !slices.Equal(starts, want) {
				t.Fatalf("checks ran at %v, want %v", starts, want)
			}
			for i := range deadlines {
				if deadlines[i] != starts[i]+time.Second {
					t.Errorf("check %d: deadline %v after a start at %v, want ready_timeout (1s) later", i, deadlines[i], starts[i])
				}
			}
			if want := msList(1010, 2030, 3070); !slices.Equal(ends[:3], want) {
				t.Fatalf("checks ended at %v, want %v", ends, want)
			}
		})
	})
}
