package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
)

// The API's read views — GET /api/v1/health and /api/v1/services — are
// rendered to JSON by one goroutine, once per change and at most every
// viewInterval, and served as those bytes. A client polling as hard as it
// can costs the agent a write of bytes already made, never a render, and
// no request waits on a lock a restore or the store holds for long.
//
// What changes announces itself on the event bus (state changes, wakes,
// notes, config edits): the renderer wakes on it. A few parts announce
// nothing (an exec component's last output lines, the scheduler's next
// runs, the network, the store file's identity): a request finding a
// rendering older than viewMaxAge asks the renderer for a new one, and one
// older than viewStale renders it itself, so those parts lag a polling
// client by at most one poll. Idle with no client, nothing renders and nothing ticks.

// viewInterval is the shortest time between two renderings: changes that
// arrive faster are merged into the next one.
const viewInterval = 50 * time.Millisecond

// viewMaxAge is how old a rendering may be before a request asks the
// renderer for a new one (and is served the one there is); past viewStale
// (the first request after a quiet spell) the request renders itself.
const (
	viewMaxAge = time.Second
	viewStale  = 5 * time.Second
)

// rendered is one rendering of the views.
type rendered struct {
	at       time.Time
	health   *view // wire.Health
	services *view // wire.Services
}

// view is one rendered document and, made once on first use, its gzipped
// form. A rendering whose bytes equal the previous one's keeps the
// previous view, so an unchanged document is never compressed again.
type view struct {
	plain []byte
	once  sync.Once
	gz    []byte
}

// gzipped is v compressed (made on the first call).
func (v *view) gzipped() []byte {
	v.once.Do(func() { v.gz = gzipBytes(v.plain) })
	return v.gz
}

// viewCache holds the latest rendering.
type viewCache struct {
	cur     atomic.Pointer[rendered]
	mu      sync.Mutex   // one rendering at a time
	renders atomic.Int64 // how many so far
	running atomic.Bool  // renderViews is running
}

// renderViews renders after every burst of published events, at most
// every viewInterval, until ctx is done.
func (a *Agent) renderViews(ctx context.Context) {
	a.views.running.Store(true)
	defer a.views.running.Store(false)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.events.changed:
		}
		if d := viewInterval - time.Since(last); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		a.refreshViews()
	}
}

// refreshViews renders the views now and returns them. The health view
// is compressed here, off the requests' path (what browsers and Go's
// client ask for); the services view when first asked.
func (a *Agent) refreshViews() *rendered {
	a.views.mu.Lock()
	defer a.views.mu.Unlock()
	r := a.render()
	if prev := a.views.cur.Load(); prev != nil {
		if bytes.Equal(prev.health.plain, r.health.plain) {
			r.health = prev.health
		}
		if bytes.Equal(prev.services.plain, r.services.plain) {
			r.services = prev.services
		}
	}
	r.health.gzipped()
	a.views.cur.Store(r)
	a.views.renders.Add(1)
	return r
}

// currentViews is the latest rendering, rendered now if there is none or
// it is older than viewMaxAge. When another rendering is under way it
// returns the previous one rather than wait.
func (a *Agent) currentViews() *rendered {
	r := a.views.cur.Load()
	if r != nil && time.Since(r.at) < viewMaxAge {
		return r
	}
	if r != nil && time.Since(r.at) < viewStale && a.views.running.Load() {
		// The renderer makes a new one; this request does not wait for it.
		select {
		case a.events.changed <- struct{}{}:
		default:
		}
		return r
	}
	if r != nil && !a.views.mu.TryLock() {
		return r
	}
	if r != nil {
		a.views.mu.Unlock()
	}
	return a.refreshViews()
}

// render marshals the services list once and splices it into the health
// document.
func (a *Agent) render() *rendered {
	at := time.Now()
	h := a.Health(context.Background())
	list, err := json.Marshal(h.Components)
	if err != nil { // wire types only: cannot happen
		panic(err)
	}
	h.Components = nil
	hb, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	// "components" is a top-level key of wire.Health only (inside JSON
	// strings quotes are escaped), so the first match is the field.
	hb = bytes.Replace(hb, []byte(`"components":null`), append([]byte(`"components":`), list...), 1)
	sb := make([]byte, 0, len(list)+len(`{"services":}`)+1)
	sb = append(append(append(sb, `{"services":`...), list...), '}')
	return &rendered{at: at, health: &view{plain: append(hb, '\n')}, services: &view{plain: append(sb, '\n')}}
}

// gzipWriters are reused across renderings: one holds about half a
// megabyte of tables, so an idle agent lets the pool drop it.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// gzipBytes compresses b (fastest level: a rendering is made up to 20
// times a second during a restore).
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b) / 6)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	zw.Reset(nil)
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// HealthGzip is HealthJSON gzipped (api.GzipSnapshotter).
func (a *Agent) HealthGzip(ctx context.Context) []byte { return a.currentViews().health.gzipped() }

// ServicesGzip is ServicesJSON gzipped (api.GzipSnapshotter).
func (a *Agent) ServicesGzip(ctx context.Context) []byte { return a.currentViews().services.gzipped() }

// HealthJSON is GET /api/v1/health as rendered JSON (api.Snapshotter).
func (a *Agent) HealthJSON(ctx context.Context) []byte { return a.currentViews().health.plain }

// ServicesJSON is GET /api/v1/services as rendered JSON (api.Snapshotter).
func (a *Agent) ServicesJSON(ctx context.Context) []byte { return a.currentViews().services.plain }

var _ interface {
	HealthJSON(context.Context) []byte
	ServicesJSON(context.Context) []byte
} = (*Agent)(nil)
