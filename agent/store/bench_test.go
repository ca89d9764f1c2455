package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rouse-dev/rouse/trackers"
)

// batch returns n items with ~size bytes of JSON each, IDs from start.
func batch(start, n, size int) []trackers.Item {
	pad := strings.Repeat("x", size)
	now := time.Now()
	out := make([]trackers.Item, n)
	for i := range out {
		out[i] = trackers.Item{
			ID:   fmt.Sprintf("item-%09d", start+i),
			Time: now,
			Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, start+i, pad)),
		}
	}
	return out
}

// BenchmarkSaveItemsBatched stores batches of 500 new ~250-byte items, one
// transaction per batch, and reports items/s.
func BenchmarkSaveItemsBatched(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir()+"/rouse.db", Options{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	const per = 500
	next := 0
	start := time.Now()
	for b.Loop() {
		items := batch(next, per, 200)
		next += per
		n, err := s.SaveItems(ctx, "bench", items, fmt.Sprint(next))
		if err != nil || n != per {
			b.Fatalf("SaveItems = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(next)/time.Since(start).Seconds(), "items/s")
}

// BenchmarkCheckpointClose50MB measures the store's pre-sleep work on a
// ~50 MB database: a FULL checkpoint of a WAL holding 1,000 fresh items
// (~1 MB), then Close. It also reports the Reopen that follows a wake.
func BenchmarkCheckpointClose50MB(b *testing.B) {
	ctx := context.Background()
	path := b.TempDir() + "/rouse.db"
	s, err := Open(ctx, path, Options{Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	const per = 1000
	next := 0
	for size := int64(0); size < 50<<20; {
		if _, err := s.SaveItems(ctx, "bench", batch(next, per, 1000), ""); err != nil {
			b.Fatal(err)
		}
		next += per
		if next%(10*per) == 0 {
			if err := s.Checkpoint(ctx, "TRUNCATE"); err != nil {
				b.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			size = fi.Size()
		}
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	b.Logf("database: %d MB, %d items", fi.Size()>>20, next)

	// A sub-benchmark, so the 50 MB store is built once, not once per b.N
	// round.
	b.Run("FullCheckpointAndClose", func(b *testing.B) {
		benchCheckpointClose(b, s, &next)
	})
}

func benchCheckpointClose(b *testing.B, s *Store, nextp *int) {
	ctx := context.Background()
	const per = 1000
	next := *nextp
	defer func() { *nextp = next }()
	var reopen time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		t0 := time.Now()
		if err := s.Reopen(ctx); err != nil {
			b.Fatal(err)
		}
		reopen += time.Since(t0)
		if _, err := s.SaveItems(ctx, "bench", batch(next, per, 1000), ""); err != nil {
			b.Fatal(err)
		}
		next += per
		b.StartTimer()
		if err := s.Checkpoint(ctx, "FULL"); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(reopen.Microseconds())/1000/float64(b.N), "reopen-ms")
}
