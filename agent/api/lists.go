package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// The answers that grow with stored data (items, wakes, job runs) are
// streamed: the server reads the store in small batches and writes each
// element as it goes, and a page ends at pageBytes of elements (or at the
// limit) with a next_cursor. What one answer holds in memory is one batch,
// whatever the store holds.
const (
	// pageBytes is the most element bytes (item data, encoded wakes and
	// runs) one page carries. An item whose data alone is larger is listed
	// with its data left out (omitted_bytes); max_item_bytes cannot be set
	// above it, so only items stored before that limit existed are.
	pageBytes = 4 << 20
	// batchBytes is the most item data read from the store at once.
	batchBytes = 1 << 20
	// batchLen is the most elements read from the store at once.
	batchLen = 100
	// maxLists is how many list answers are produced at once; more wait
	// for their turn (or their client's patience).
	maxLists = 4
	// listWriteTimeout bounds writing one list answer, so a client that
	// stops reading does not hold a turn for ever.
	listWriteTimeout = 60 * time.Second
)

// MaxPageBytes is pageBytes for the packages that must agree with it
// (the trackers' max_item_bytes bound).
const MaxPageBytes = pageBytes

// listWriter streams {"KEY":[e1,e2,...],"next_cursor":"..."}.
type listWriter struct {
	bw  *bufio.Writer
	n   int
	err error // the first write error: the client went away
}

// acquireList takes a turn to produce a list answer; release it after.
func (s *Server) acquireList(ctx context.Context) (release func(), err error) {
	select {
	case s.lists <- struct{}{}:
		return func() { <-s.lists }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// beginList writes the status, headers and the list's opening.
func beginList(w http.ResponseWriter, key string) *listWriter {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(listWriteTimeout))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	lw := &listWriter{bw: bufio.NewWriterSize(w, 32<<10)}
	lw.write([]byte(`{"` + key + `":[`))
	return lw
}

func (lw *listWriter) write(b []byte) {
	if lw.err == nil {
		_, lw.err = lw.bw.Write(b)
	}
}

// add writes one encoded element.
func (lw *listWriter) add(elem []byte) {
	if lw.n > 0 {
		lw.write([]byte{','})
	}
	lw.write(elem)
	lw.n++
}

// end closes the list and the object.
func (lw *listWriter) end(next string) {
	lw.write([]byte{']'})
	if next != "" {
		lw.write([]byte(`,"next_cursor":` + strconv.Quote(next)))
	}
	lw.write([]byte("}\n"))
	if lw.err == nil {
		lw.err = lw.bw.Flush()
	}
}

// abort ends a response whose status is already sent when the backend
// fails mid-way: the connection is cut, so the client sees a truncated
// answer instead of a well-formed short one.
func (s *Server) abort(r *http.Request, err error) {
	s.log.Error("api list failed mid-answer", "method", r.Method, "path", r.URL.Path, "err", err)
	panic(http.ErrAbortHandler)
}

// encodeItem writes an item as wire.Item JSON, with its data as stored.
func encodeItem(buf []byte, it Item) []byte {
	id, _ := json.Marshal(it.ID)
	at, _ := it.Time.UTC().MarshalJSON()
	buf = append(buf, `{"id":`...)
	buf = append(buf, id...)
	buf = append(buf, `,"time":`...)
	buf = append(buf, at...)
	buf = append(buf, `,"data":`...)
	if it.Data == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, it.Data...)
	}
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendInt(buf, it.Seq, 10)
	if it.Data == nil && it.Size > 0 {
		buf = append(buf, `,"omitted_bytes":`...)
		buf = strconv.AppendInt(buf, it.Size, 10)
	}
	return append(buf, '}')
}

func (s *Server) getItems(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var iq ItemQuery
	iq.Since = q.Get("since")
	if iq.Since != "" && !validSince(iq.Since) {
		return badParam("since", "an RFC 3339 time or Unix seconds", iq.Since)
	}
	iq.Cursor = q.Get("cursor") // the backend checks it
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	switch o := q.Get("order"); o {
	case "", "newest":
	case "oldest":
		iq.Oldest = true
	default:
		return badParam("order", "newest or oldest", o)
	}
	release, err := s.acquireList(r.Context())
	if err != nil {
		return err
	}
	defer release()

	var lw *listWriter
	var buf []byte
	var used int64
	n, next, last := 0, "", ""
pages:
	for n < limit {
		bq := iq
		bq.Limit = min(limit-n, batchLen)
		bq.MaxBytes = max(min(batchBytes, pageBytes-used), 1)
		bq.OmitAbove = pageBytes
		if last != "" {
			bq.Cursor = last
		}
		batch, err := s.b.Items(r.Context(), r.PathValue("name"), bq)
		if err != nil {
			if lw == nil {
				return err
			}
			s.abort(r, err)
		}
		if lw == nil {
			lw = beginList(w, "items")
		}
		if len(batch) == 0 {
			break
		}
		for _, it := range batch {
			if n > 0 && used+int64(len(it.Data)) > pageBytes {
				next = last
				break pages
			}
			buf = encodeItem(buf[:0], it)
			lw.add(buf)
			used += int64(len(it.Data))
			n++
			last = strconv.FormatInt(it.Seq, 10)
		}
		if lw.err != nil {
			return nil // the client went away
		}
	}
	if n == limit {
		next = last
	}
	lw.end(next)
	return nil
}

// listBefore streams a newest-first list of id-keyed elements (wakes, job
// runs) fetched by fetch, with ?limit= and ?cursor= (the last id seen).
func listBefore[T any](s *Server, w http.ResponseWriter, r *http.Request, key string, id func(T) int64,
	fetch func(ctx context.Context, limit int, before int64) ([]T, error)) error {
	limit, err := intParam(r, "limit", 20, 1, 1000)
	if err != nil {
		return err
	}
	var before int64
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 1 {
			return badParam("cursor", "a next_cursor from a previous page", c)
		}
		before = n
	}
	release, err := s.acquireList(r.Context())
	if err != nil {
		return err
	}
	defer release()

	var lw *listWriter
	used, n, next := 0, 0, ""
pages:
	for n < limit {
		batch, err := fetch(r.Context(), min(limit-n, batchLen), before)
		if err != nil {
			if lw == nil {
				return err
			}
			s.abort(r, err)
		}
		if lw == nil {
			lw = beginList(w, key)
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			b, err := json.Marshal(e)
			if err != nil {
				s.abort(r, err)
			}
			if n > 0 && used+len(b) > pageBytes {
				next = strconv.FormatInt(before, 10)
				break pages
			}
			lw.add(b)
			used += len(b)
			n++
			before = id(e)
		}
		if lw.err != nil {
			return nil
		}
	}
	if n == limit {
		next = strconv.FormatInt(before, 10)
	}
	lw.end(next)
	return nil
}

func (s *Server) getWakes(w http.ResponseWriter, r *http.Request) error {
	return listBefore(s, w, r, "wakes", func(w wire.Wake) int64 { return w.ID }, s.b.Wakes)
}

func (s *Server) getJobRuns(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	return listBefore(s, w, r, "runs", func(r wire.JobRun) int64 { return r.ID },
		func(ctx context.Context, limit int, before int64) ([]wire.JobRun, error) {
			return s.b.JobRuns(ctx, name, limit, before)
		})
}
