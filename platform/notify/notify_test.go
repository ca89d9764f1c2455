package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWatchdogTicks(t *testing.T) {
	t.Run("ItPingsAtOnceAndThenEveryPeriodUntilCancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var (
				mu    sync.Mutex
				times []time.Duration
			)
			start := time.Now()
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				done <- watchdog(ctx, 5*time.Second, func() error {
					mu.Lock()
					times = append(times, time.Since(start))
					mu.Unlock()
					return nil
				}, slog.New(slog.DiscardHandler))
			}()
			time.Sleep(12 * time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Errorf("watchdog = %v, want nil", err)
			}
			mu.Lock()
			defer mu.Unlock()
			want := []time.Duration{0, 5 * time.Second, 10 * time.Second}
			if len(times) != len(want) {
				t.Fatalf("pings at %v, want %v", times, want)
			}
			for i := range want {
				if times[i] != want[i] {
					t.Errorf("ping %d at %v, want %v", i, times[i], want[i])
				}
			}
		})
	})

	t.Run("ARunOfFailuresIsLoggedOnceAndPingingGoesOn", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var (
				mu    sync.Mutex
				calls int
			)
			ping := func() error {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls >= 2 && calls <= 4 {
					return errors.New("socket gone")
				}
				return nil
			}
			var logs logBuf
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- watchdog(ctx, time.Second, ping, slog.New(slog.NewTextHandler(&logs, nil))) }()
			time.Sleep(5500 * time.Millisecond)
			cancel()
			<-done
			mu.Lock()
			defer mu.Unlock()
			if calls != 6 {
				t.Errorf("pings = %d, want 6 (failures do not stop it)", calls)
			}
			out := logs.String()
			if n := strings.Count(out, "ping failed"); n != 1 {
				t.Errorf("failure logged %d times, want 1:\n%s", n, out)
			}
			if n := strings.Count(out, "works again"); n != 1 {
				t.Errorf("recovery logged %d times, want 1:\n%s", n, out)
			}
		})
	})
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\r\nc"); got != "a b  c" {
		t.Errorf("oneLine = %q", got)
	}
}
