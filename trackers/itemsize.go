package trackers

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/promreg"
)

// Item size bounds shared by the kinds that store items (http, lastfm,
// websocket): their max_item_bytes option.
const (
	// DefaultMaxItemBytes is max_item_bytes when unset: 1 MiB.
	DefaultMaxItemBytes = 1 << 20
	// MaxItemBytesLimit is the largest max_item_bytes accepted: 4 MiB, the
	// most item data one page of the REST API carries.
	MaxItemBytesLimit = 4 << 20
)

// CheckMaxItemBytes returns the field error for a max_item_bytes out of
// range, or nil.
func CheckMaxItemBytes(n int64) *FieldError {
	if n < 1 || n > MaxItemBytesLimit {
		return &FieldError{Key: "max_item_bytes", Msg: fmt.Sprintf("must be from 1 to %d (4 MiB), got %d", MaxItemBytesLimit, n)}
	}
	return nil
}

// ItemLimit refuses items larger than max_item_bytes: such an item is not
// stored, and each refusal is counted in rouse_items_refused_total, logged,
// noted as a "note" event (when the host is a Noter) and returned as an
// error the tracker reports as its last error, so it shows in the API. The
// tracker goes on with the next item.
type ItemLimit struct {
	name    string
	max     int64
	refused *promreg.Counter

	mu         sync.Mutex
	lastNote   time.Time
	suppressed int
}

// noteEvery rate-limits the log line and note event of refusals: a source
// that sends nothing but huge items must not flood the event backlog.
const noteEvery = 10 * time.Second

// NewItemLimit builds the limit for tracker name, registering the counter
// on reg (nil: not exported).
func NewItemLimit(reg *promreg.Registry, name string, max int64) *ItemLimit {
	cv, _ := reg.CounterVec("rouse_items_refused_total",
		"Items a tracker did not store, by tracker and reason (too_large: over max_item_bytes).",
		"tracker", "reason") // unexported on error; the limit holds the same
	return &ItemLimit{name: name, max: max, refused: cv.With(name, "too_large")}
}

// Max is max_item_bytes.
func (l *ItemLimit) Max() int64 { return l.max }

// Allow reports whether an item of size bytes may be stored; when not, it
// records the refusal (metric, log, note) and returns the error to report.
func (l *ItemLimit) Allow(h Host, log *slog.Logger, id string, size int) error {
	if int64(size) <= l.max {
		return nil
	}
	l.refused.Inc()
	err := fmt.Errorf("item %s not stored: %d bytes, more than max_item_bytes (%d)", shortID(id), size, l.max)
	l.mu.Lock()
	now := time.Now()
	quiet := !l.lastNote.IsZero() && now.Sub(l.lastNote) < noteEvery
	more := l.suppressed
	if quiet {
		l.suppressed++
	} else {
		l.lastNote, l.suppressed = now, 0
	}
	l.mu.Unlock()
	if quiet {
		return err
	}
	detail := err.Error()
	if more > 0 {
		detail += fmt.Sprintf(" (and %d more before it)", more)
	}
	if log != nil {
		log.Warn("item not stored: larger than max_item_bytes", "item", shortID(id), "bytes", size, "max_item_bytes", l.max, "more", more)
	}
	if n, ok := h.(Noter); ok {
		n.Note("item_too_large", detail)
	}
	return err
}

// shortID keeps an id readable in a message.
func shortID(id string) string {
	if len(id) > 64 {
		return id[:64] + "…"
	}
	return id
}
