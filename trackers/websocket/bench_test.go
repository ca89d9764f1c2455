package websocket

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

// BenchmarkIngest: stream messages ingested per second over loopback into
// the SQLite store (batched), 10,000 messages per iteration.
func BenchmarkIngest(b *testing.B) {
	const n = 10_000
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, `{"id":"%d","t":%d,"payload":"%s"}`, i, 1_700_000_000_000+int64(i), strings.Repeat("x", 100))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(r.Context())
		for _, m := range msgs {
			if c.Write(ctx, ws.MessageText, m) != nil {
				return
			}
		}
		<-ctx.Done()
	}))
	defer srv.Close()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st := teststore.Open(b)
		b.StartTimer()
		o := DefaultOptions()
		o.URL = "ws" + strings.TrimPrefix(srv.URL, "http")
		o.Items = ItemsOptions{ID: "id", Time: "t"}
		tr, err := New(*o, trackers.Deps{Name: "b", Store: st})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tr.Run(ctx, fakehost.New()) }()
		deadline := time.Now().Add(time.Minute)
		for st.Len("b") < n {
			if time.Now().After(deadline) {
				b.Fatalf("stored %d of %d", st.Len("b"), n)
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
		b.StopTimer()
		if err := st.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
}
