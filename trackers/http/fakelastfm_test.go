package http

import (
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"sort"
	"strconv"
	"sync"
)

// fakeLastfm implements user.getrecenttracks faithfully enough: scrobbles
// newest first, from inclusive, limit and page, totalPages as a string, a
// now-playing entry on page 1, and in-band errors for a bad key.
type fakeLastfm struct {
	key string

	mu         sync.Mutex
	scrobbles  []scrobble // sorted newest first
	nowPlaying bool
	requests   int
	onRequest  func(n int) // called with the request number (1-based), lock not held
}

type scrobble struct {
	uts    int64
	artist string
	name   string
}

func (f *fakeLastfm) add(s ...scrobble) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scrobbles = append(f.scrobbles, s...)
	sort.SliceStable(f.scrobbles, func(i, j int) bool { return f.scrobbles[i].uts > f.scrobbles[j].uts })
}

func (f *fakeLastfm) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *fakeLastfm) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	f.mu.Lock()
	f.requests++
	n := f.requests
	hook := f.onRequest
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	if q.Get("method") != "user.getrecenttracks" || q.Get("format") != "json" {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":3,"message":"Invalid Method - No method with that name in this package"}`)
		return
	}
	if q.Get("api_key") != f.key {
		w.WriteHeader(403)
		fmt.Fprint(w, `{"error":10,"message":"Invalid API key - You must be granted a valid key by last.fm"}`)
		return
	}
	from, _ := strconv.ParseInt(q.Get("from"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 {
		limit = 50
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	f.mu.Lock()
	var sel []scrobble
	for _, s := range f.scrobbles {
		if s.uts >= from {
			sel = append(sel, s)
		}
	}
	np := f.nowPlaying
	f.mu.Unlock()
	total := (len(sel) + limit - 1) / limit
	var tracks []any
	if np && page == 1 {
		tracks = append(tracks, map[string]any{
			"artist": map[string]any{"mbid": "", "#text": "Now"},
			"name":   "Playing",
			"@attr":  map[string]any{"nowplaying": "true"},
		})
	}
	lo, hi := (page-1)*limit, page*limit
	for i := lo; i < hi && i < len(sel); i++ {
		s := sel[i]
		tracks = append(tracks, map[string]any{
			"artist": map[string]any{"mbid": "", "#text": s.artist},
			"name":   s.name,
			"date":   map[string]any{"uts": strconv.FormatInt(s.uts, 10), "#text": "some day"},
		})
	}
	var track any = tracks
	if len(tracks) == 1 {
		track = tracks[0] // Last.fm drops the array for a single track
	}
	if tracks == nil {
		track = []any{}
	}
	json.NewEncoder(w).Encode(map[string]any{
		"recenttracks": map[string]any{
			"track": track,
			"@attr": map[string]any{
				"user": q.Get("user"), "page": strconv.Itoa(page), "perPage": strconv.Itoa(limit),
				"totalPages": strconv.Itoa(total), "total": strconv.Itoa(len(sel)),
			},
		},
	})
}

// scrobbles makes n scrobbles one second apart ending at end.
func makeScrobbles(n int, end int64) []scrobble {
	out := make([]scrobble, n)
	for i := range out {
		out[i] = scrobble{uts: end - int64(i), artist: fmt.Sprintf("artist %d", i%37), name: fmt.Sprintf("track %d", i)}
	}
	return out
}
