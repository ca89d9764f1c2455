package trackers

import (
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

type notes struct{ got []string }

func (n *notes) Report(State, error)       {}
func (n *notes) Logger() *slog.Logger      { return slog.New(slog.DiscardHandler) }
func (n *notes) Note(event, detail string) { n.got = append(n.got, event+": "+detail) }

func TestItemLimitRateLimitsItsNotes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewItemLimit(nil, "feed", 10)
		h := &notes{}
		if err := l.Allow(h, nil, "ok", 10); err != nil {
			t.Fatalf("an item at the limit was refused: %v", err)
		}
		for range 3 {
			if err := l.Allow(h, nil, "big", 11); err == nil || !strings.Contains(err.Error(), "max_item_bytes (10)") {
				t.Fatalf("err = %v", err)
			}
		}
		if len(h.got) != 1 {
			t.Fatalf("notes %q: a burst must note once", h.got)
		}
		time.Sleep(noteEvery)
		_ = l.Allow(h, nil, "big", 11)
		if len(h.got) != 2 || !strings.Contains(h.got[1], "(and 2 more before it)") {
			t.Fatalf("notes %q", h.got)
		}
	})
}
