package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/rouse-dev/rouse/wire"
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

// rendered is one rendering of the views. The documents are made of the
// components' cached entries (parts) between a head and a tail; the
// health document is assembled in a buffer the renderer reuses, to be
// compressed (what browsers and Go's client ask for), and made as bytes
// of its own only when a client asks for it uncompressed, so a rendering
// allocates its compressed form, not another copy of every entry.
type rendered struct {
	at         time.Time
	head, tail []byte   // the health document around its components array
	parts      [][]byte // each component's entry, cached (shared between renderings)
	health     *view    // wire.Health
	services   *view    // wire.Services, made from parts when first asked
}

// appendList appends the components array.
func (r *rendered) appendList(b []byte) []byte {
	b = append(b, '[')
	for i, p := range r.parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p...)
	}
	return append(b, ']')
}

// listSize is the length of the components array.
func (r *rendered) listSize() int {
	n := 2 + max(0, len(r.parts)-1)
	for _, p := range r.parts {
		n += len(p)
	}
	return n
}

// appendHealth appends the health document.
func (r *rendered) appendHealth(b []byte) []byte {
	return append(r.appendList(append(b, r.head...)), r.tail...)
}

// sameParts reports whether two renderings list the same entries: an
// unchanged entry is the very same cached slice.
func sameParts(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) || (len(a[i]) > 0 && &a[i][0] != &b[i][0]) {
			return false
		}
	}
	return true
}

// view is one rendered document (made on first use when build is set)
// and, made once on first use, its gzipped form. A rendering whose bytes
// equal the previous one's keeps the previous view, so an unchanged
// document is never compressed again.
type view struct {
	build     func() []byte
	plainOnce sync.Once
	plain     []byte
	once      sync.Once
	gz        []byte
}

// bytes is the document.
func (v *view) bytes() []byte {
	v.plainOnce.Do(func() {
		if v.build != nil {
			v.plain, v.build = v.build(), nil
		}
	})
	return v.plain
}

// gzipped is v compressed (made on the first call).
func (v *view) gzipped() []byte {
	v.once.Do(func() { v.gz = gzipBytes(v.bytes()) })
	return v.gz
}

// viewCache holds the latest rendering.
type viewCache struct {
	cur     atomic.Pointer[rendered]
	mu      sync.Mutex   // one rendering at a time; guards comps and gen
	renders atomic.Int64 // how many so far
	running atomic.Bool  // renderViews is running
	// comps is each component's last entry and its JSON: a rendering
	// encodes again only the components whose entry changed (a wake
	// changes a few between two renderings, not all of them).
	comps   map[*unit]*compJSON
	gen     uint64 // renderings made; an entry not seen in one is dropped
	encoded int    // component entries encoded so far (the cache's misses)
	scratch []byte // the health document being compressed (reused)
}

// compJSON is one component's entry as last rendered.
type compJSON struct {
	svc  wire.Service
	js   []byte
	seen uint64 // the rendering that last listed it
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
// is compressed here, off the requests' path; the services view and the
// uncompressed health view when first asked.
func (a *Agent) refreshViews() *rendered {
	a.views.mu.Lock()
	defer a.views.mu.Unlock()
	r := a.render()
	prev := a.views.cur.Load()
	same := prev != nil && sameParts(prev.parts, r.parts)
	if same {
		r.services = prev.services
	}
	if same && bytes.Equal(prev.head, r.head) && bytes.Equal(prev.tail, r.tail) {
		r.health = prev.health
	} else {
		doc := r.appendHealth(a.views.scratch[:0])
		if cap(doc) <= 4<<20 { // keep a buffer up to 4 MB (about 15,000 components)
			a.views.scratch = doc
		}
		gz := gzipBytes(doc)
		r.health.once.Do(func() { r.health.gz = gz })
	}
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

// render builds the services list from each component's cached JSON
// (encoding only the entries that changed) and splices it into the
// health document; the services document is made from the same list on
// its first request. a.views.mu is held.
func (a *Agent) render() *rendered {
	at := time.Now()
	h := a.healthBase()
	parts, fold := a.componentsJSON()
	h.Status = fold.status(h)
	hb, err := json.Marshal(h)
	if err != nil { // wire types only: cannot happen
		panic(err)
	}
	// "components" is a top-level key of wire.Health only (inside JSON
	// strings quotes are escaped), so the first match is the field.
	const key = `"components":`
	i := bytes.Index(hb, []byte(key+`null`))
	if i < 0 {
		panic("the health document has no components key")
	}
	r := &rendered{at: at, head: hb[:i+len(key)], tail: append(hb[i+len(key+`null`):], '\n'), parts: parts}
	r.health = &view{build: func() []byte {
		return r.appendHealth(make([]byte, 0, len(r.head)+r.listSize()+len(r.tail)))
	}}
	r.services = &view{build: func() []byte {
		b := append(make([]byte, 0, len(`{"services":}`)+r.listSize()+1), `{"services":`...)
		return append(r.appendList(b), '}', '\n')
	}}
	return r
}

// componentsJSON is every component's entry as JSON (as Services lists
// them), each taken from the cache when it is unchanged since the last
// rendering, and their status folded.
func (a *Agent) componentsJSON() ([][]byte, statusFold) {
	v := &a.views
	if v.comps == nil {
		v.comps = map[*unit]*compJSON{}
	}
	v.gen++
	us := a.allUnits()
	parts := make([][]byte, len(us))
	var fold statusFold
	for i, u := range us {
		ws := a.service(u)
		fold.add(&ws)
		c := v.comps[u]
		if c == nil {
			c = &compJSON{}
			v.comps[u] = c
		}
		c.seen = v.gen
		if c.js == nil || !sameService(&c.svc, &ws) {
			c.svc = ws
			js, err := json.Marshal(&c.svc)
			if err != nil { // wire types only: cannot happen
				panic(err)
			}
			v.encoded++
			c.js = js
		}
		parts[i] = c.js
	}
	if len(v.comps) > len(us) {
		for u, c := range v.comps {
			if c.seen != v.gen {
				delete(v.comps, u) // removed by a config edit
			}
		}
	}
	return parts, fold
}

// sameService reports whether a and b encode the same, comparing every
// field of wire.Service (TestSameServiceSeesEveryField fails when one is
// added and not compared here). It may say false for equal entries (a
// time with another monotonic reading): the entry is then encoded again.
func sameService(a, b *wire.Service) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.State == b.State && a.Since == b.Since &&
		a.Attempts == b.Attempts && a.LastError == b.LastError && sameTime(a.NextRetryAt, b.NextRetryAt) &&
		a.Restarts == b.Restarts && sameExit(a.LastExit, b.LastExit) && a.Blocked == b.Blocked &&
		a.StartLimited == b.StartLimited && slices.Equal(a.DependsOn, b.DependsOn) &&
		(a.DependsOn == nil) == (b.DependsOn == nil) && slices.Equal(a.Optional, b.Optional) &&
		(a.Optional == nil) == (b.Optional == nil) && a.Required == b.Required &&
		a.DeadlineMS == b.DeadlineMS && samePtr(a.DeadlineAuto, b.DeadlineAuto) &&
		slices.Equal(a.Output, b.Output) && (a.Output == nil) == (b.Output == nil) &&
		reflect.DeepEqual(a.Detail, b.Detail) && a.NeedsNet == b.NeedsNet && a.Desired == b.Desired &&
		sameTime(a.StartedAt, b.StartedAt) && a.OnDemand == b.OnDemand && a.OnDemandError == b.OnDemandError &&
		slices.Equal(a.Chains, b.Chains) && (a.Chains == nil) == (b.Chains == nil) && a.StartsOnDemand == b.StartsOnDemand &&
		sameHealth(a.Health, b.Health)
}

// samePtr: both nil, or both set to equal values.
func samePtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func sameTime(a, b *time.Time) bool { return samePtr(a, b) }

func sameExit(a, b *wire.Exit) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.At == b.At && a.Error == b.Error && samePtr(a.Code, b.Code)
}

func sameHealth(a, b *wire.HealthStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.LastCheck, y.LastCheck = nil, nil
	return x == y && sameTime(a.LastCheck, b.LastCheck)
}

// gzipBytes compresses b with klauspost/compress's stateless level: as
// fast as its level 1 on a rendering (0.9 vs 1.1 ms for 1,000
// components, 3% larger) and it keeps nothing between calls — a pooled
// level-1 writer holds 2 MB of tables and history, which an idle agent
// kept on its heap until two garbage collections passed.
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/12 + 64)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.StatelessCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// HealthGzip is HealthJSON gzipped (api.GzipSnapshotter).
func (a *Agent) HealthGzip(ctx context.Context) []byte { return a.currentViews().health.gzipped() }

// ServicesGzip is ServicesJSON gzipped (api.GzipSnapshotter).
func (a *Agent) ServicesGzip(ctx context.Context) []byte { return a.currentViews().services.gzipped() }

// HealthJSON is GET /api/v1/health as rendered JSON (api.Snapshotter).
func (a *Agent) HealthJSON(ctx context.Context) []byte { return a.currentViews().health.bytes() }

// ServicesJSON is GET /api/v1/services as rendered JSON (api.Snapshotter).
func (a *Agent) ServicesJSON(ctx context.Context) []byte { return a.currentViews().services.bytes() }

var _ interface {
	HealthJSON(context.Context) []byte
	ServicesJSON(context.Context) []byte
} = (*Agent)(nil)
