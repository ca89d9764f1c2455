package http

import (
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rouse-dev/rouse/internal/promreg"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/fakehost"
	"github.com/rouse-dev/rouse/trackers/internal/teststore"
)

func TestAnItemOverMaxItemBytesIsNotStoredAndThePollGoesOn(t *testing.T) {
	big := strings.Repeat("x", 2<<20) // a 2 MiB field: over the 1 MiB default
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		fmt.Fprintf(w, `[{"id":"a","t":100},{"id":"huge","t":101,"blob":%q},{"id":"b","t":102}]`, big)
	}))
	defer srv.Close()
	st := teststore.Open(t)
	reg := promreg.New()
	o := DefaultOptions()
	o.URL = srv.URL + "/?since={{.Since}}"
	o.Items.Time = "t"
	tr, err := New(*o, trackers.Deps{Name: "feed", Store: st, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := fakehost.New()
	r := start(tr, h)
	eventually(t, "ready", func() bool { return h.Last().State == trackers.StateReady })
	_ = r.stop(t)
	if got := strings.Join(st.IDs("feed"), ","); got != "a,b" {
		t.Fatalf("stored %s, want a,b (huge refused, the rest kept)", got)
	}
	if c := st.CursorOf("feed"); c != "103" {
		t.Fatalf("cursor %s: the poll must go on past the refused item", c)
	}
	last := h.Last()
	if last.Err == nil || !strings.Contains(last.Err.Error(), "max_item_bytes") {
		t.Fatalf("last report %+v: the refusal must be the visible error", last)
	}
	notes := h.Notes()
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "item_too_large: ") || !strings.Contains(notes[0], "bytes, more than max_item_bytes (1048576)") {
		t.Fatalf("notes %q", notes)
	}
	var refused float64
	for _, v := range reg.Samples("rouse_items_refused_total") {
		refused += v
	}
	if refused != 1 {
		t.Fatalf("rouse_items_refused_total = %v, want 1", refused)
	}
}

func TestMaxItemBytesIsBounded(t *testing.T) {
	for _, n := range []int64{0, -1, 4<<20 + 1} {
		o := DefaultOptions()
		o.URL = "http://x/"
		o.Cursor.From = CursorNone
		o.MaxItemBytes = n
		errs := o.Validate()
		if len(errs) != 1 || errs[0].Key != "max_item_bytes" {
			t.Fatalf("%d: errors %v", n, errs)
		}
	}
	o := DefaultLastfmOptions()
	o.User, o.APIKeyFile, o.MaxItemBytes = "u", "k", 5<<20
	if errs := o.Validate(); len(errs) != 1 || errs[0].Key != "max_item_bytes" {
		t.Fatalf("lastfm: %v", errs)
	}
}
