package websocket

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	ws "github.com/coder/websocket"
)

func TestAMessageOverMaxItemBytesIsNotStoredAndTheStreamGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, func(o *Options) { o.MaxItemBytes = 64 << 10 })
		r.start()
		sc := r.accept()
		sc.pong()
		base := time.Now().UnixMilli()
		send(t, sc, 1, base+1)
		huge := fmt.Sprintf(`{"id":"2","t":%d,"blob":%q}`, base+2, strings.Repeat("x", 100<<10))
		if err := sc.c.Write(context.Background(), ws.MessageText, []byte(huge)); err != nil {
			t.Fatal(err)
		}
		send(t, sc, 3, base+3)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := strings.Join(r.store.IDs("s"), ","); got != "1,3" {
			t.Fatalf("stored %s, want 1,3", got)
		}
		last := r.host.Last()
		if last.Err == nil || !strings.Contains(last.Err.Error(), "max_item_bytes (65536)") {
			t.Fatalf("last report %+v", last)
		}
		var notes []string
		for _, n := range r.host.Notes() {
			if strings.HasPrefix(n, "item_too_large: ") {
				notes = append(notes, n)
			}
		}
		if len(notes) != 1 {
			t.Fatalf("notes %q", r.host.Notes())
		}
		if st := r.tr.Stats(); st.Disconnects != 0 {
			t.Fatalf("the stream was dropped: %+v", st)
		}
		r.stop()
	})
}

func TestMaxItemBytesIsBounded(t *testing.T) {
	for _, n := range []int64{0, 4<<20 + 1} {
		o := DefaultOptions()
		o.URL = "ws://x/"
		o.MaxItemBytes = n
		errs := o.Validate()
		if len(errs) != 1 || errs[0].Key != "max_item_bytes" {
			t.Fatalf("%d: errors %v", n, errs)
		}
	}
}
