// Package stream keeps what the trackers that hold a long-lived
// connection (websocket, roon) show of it in GET /api/v1/services/{name}:
// connections made, reconnects, disconnects by close code, and the last
// disconnect with its time, code and reason (wire.StreamDetail). It also
// turns a WebSocket read error into the code label those counts use.
package stream

import (
	"errors"
	"maps"
	"strconv"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rouse-dev/rouse/wire"
)

// MaxReason bounds a recorded reason.
const MaxReason = 200

// Record counts one tracker's connections. The zero value is ready to
// use; it is safe for concurrent use.
type Record struct {
	mu          sync.Mutex
	connects    int
	disconnects map[string]int
	last        *wire.Disconnect
}

// Connected counts a connection made.
func (r *Record) Connected() {
	r.mu.Lock()
	r.connects++
	r.mu.Unlock()
}

// Disconnected counts a dropped connection with its code label (a close
// code, "timeout" or "error") and reason, at now.
func (r *Record) Disconnected(code, reason string) {
	if len(reason) > MaxReason {
		reason = reason[:MaxReason] + "…"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.disconnects == nil {
		r.disconnects = map[string]int{}
	}
	r.disconnects[code]++
	r.last = &wire.Disconnect{At: time.Now().Round(0).UTC(), Code: code, Reason: reason}
}

// Detail is the record as the API shows it.
func (r *Record) Detail() wire.StreamDetail {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := wire.StreamDetail{Connects: r.connects, Reconnects: max(0, r.connects-1), DisconnectsByCode: maps.Clone(r.disconnects)}
	if d.DisconnectsByCode == nil {
		d.DisconnectsByCode = map[string]int{}
	}
	if r.last != nil {
		l := *r.last
		d.LastDisconnect = &l
	}
	return d
}

// CloseCode turns a WebSocket read error into a code label and a reason:
// the peer's close code and reason, or 1006 (abnormal closure) with the
// error when the connection broke without a close frame.
func CloseCode(err error) (string, string) {
	var ce ws.CloseError
	if errors.As(err, &ce) {
		return strconv.Itoa(int(ce.Code)), ce.Reason
	}
	return strconv.Itoa(int(ws.StatusAbnormalClosure)), err.Error()
}
