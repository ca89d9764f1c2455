// Package http owns the http tracker kind and its lastfm preset: a poller
// that renders a cursor into a URL template, reads items out of JSON
// responses by configured field paths, stores them through trackers.Store
// and catches up on everything missed after a start, a wake or any gap.
//
// # Catch-up and the cursor
//
// Every poll pages from the stored cursor (.Since) until the source has
// nothing more, committing each page's items before fetching the next, so
// a start, a wake (Resume) and a gap are all the same code path; the
// tracker reports catching_up while a poll has pages left and ready when it
// is done. The invariant is that the cursor never moves past an item that
// is not committed, and that no item is missed:
//
//   - paging.order newest_first (Last.fm): new items arriving mid-catch-up
//     push older items onto later pages, which can only repeat an item on
//     the next page (deduplicated by the store), never skip one — as long
//     as .Since stays fixed and pages go 1..N. The cursor is written only
//     with the last page, in the same transaction, as the newest time seen
//     plus cursor.offset. An interrupted catch-up leaves the cursor where it
//     was; the next one re-fetches and the store drops the duplicates.
//   - paging.order oldest_first: after each page every item up to that
//     page's newest time is committed, so the cursor is checkpointed with
//     each page — without the offset, because a page boundary can split
//     items that share one timestamp. The offset is added only once the
//     catch-up is complete.
//   - no page count and oldest_first: each request starts from the last
//     checkpoint, until a request brings nothing newer.
//
// max_pages bounds one poll; a longer catch-up resumes at the next poll
// from the page where it stopped (same .Since), cursor untouched until it
// completes.
//
// # Failures
//
// Each request has its own timeout (body included). 5xx answers and
// network errors are retried with full-jitter backoff, 429 waits for
// Retry-After (seconds or an HTTP date), all under a per-poll retry budget
// so a wake does not turn into a retry storm. Other 4xx answers fail fast:
// Run returns the error and the agent marks the tracker failed and retries
// it with its own backoff. A poll that exhausts its budget reports the error
// with state starting and the tracker polls again at the next interval.
// Secrets (the Last.fm API key, and any key/token/secret query value) are
// redacted from every error and log line.
package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	nethttp "net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rouse-dev/rouse/internal/backoff"
	"github.com/rouse-dev/rouse/trackers"
	"github.com/rouse-dev/rouse/trackers/internal/jpath"
	"github.com/rouse-dev/rouse/trackers/internal/redact"
)

// maxBody bounds one response body.
const maxBody = 64 << 20

// Kind is the http tracker kind.
var Kind = trackers.KindOf("http", true, DefaultOptions, New)

// Tracker is an http poller. It implements trackers.Component, Resumer and
// Pauser.
type Tracker struct {
	name  string
	store trackers.Store
	log   *slog.Logger
	opts  Options
	tmpl  *urlTemplate
	limit *trackers.ItemLimit

	// prepare, when set, is called at the start of each Run and may
	// replace the URL template and add secrets (the lastfm preset reads its
	// key file here).
	prepare func() (urlTemplate string, secrets redact.Secrets, err error)
	// skip drops items that are not items yet.
	skip func(item any) bool
	// apiError inspects a 2xx/4xx body for an in-band error.
	apiError func(body []byte) (err error, retryable bool)
	// transport replaces the real one in tests.
	transport nethttp.RoundTripper
	// now and rand are injectable for tests.
	now  func() time.Time
	rand func(int64) int64

	mu          sync.Mutex
	secrets     redact.Secrets
	paused      bool
	resumed     chan struct{}
	cycleCancel context.CancelFunc
	cycleDone   chan struct{}
	kick        chan struct{}
	rep         trackers.Reporter
	pending     *catchup
	curTr       *nethttp.Transport
}

var (
	_ trackers.Component = (*Tracker)(nil)
	_ trackers.Resumer   = (*Tracker)(nil)
	_ trackers.Pauser    = (*Tracker)(nil)
)

// New builds an http tracker from validated options.
func New(o Options, deps trackers.Deps) (*Tracker, error) {
	if err := trackers.JoinFieldErrors(o.Validate()); err != nil {
		return nil, fmt.Errorf("http tracker %q: %w", deps.Name, err)
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("http tracker %q: no store", deps.Name)
	}
	tmpl, err := parseURLTemplate(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Paging.Order == "" {
		o.Paging.Order = OrderNewestFirst
	}
	if o.Paging.TotalPages == CursorNone {
		o.Paging.TotalPages = ""
	}
	o.Method = strings.ToUpper(o.Method)
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	sample, _ := renderURL(tmpl, 0, 1)
	return &Tracker{
		secrets: redact.Secrets(nil).FromURL(sample).FromHeaders(o.Headers),
		name:    deps.Name,
		store:   deps.Store,
		log:     log,
		opts:    o,
		tmpl:    tmpl,
		limit:   trackers.NewItemLimit(deps.Metrics, deps.Name, o.MaxItemBytes),
		now:     time.Now,
		kick:    make(chan struct{}, 1),
	}, nil
}

// catchup is one poll's progress, kept across polls when max_pages cut it.
type catchup struct {
	since   int64
	page    int
	maxTime int64 // newest item time seen, unix seconds; math.MinInt64 when none
}

// Run polls until ctx ends. See the package doc.
func (t *Tracker) Run(ctx context.Context, h trackers.Host) error {
	log := h.Logger()
	if log == nil {
		log = t.log
	}
	if t.prepare != nil {
		u, secrets, err := t.prepare()
		if err != nil {
			return t.clean(err)
		}
		tmpl, err := parseURLTemplate(u)
		if err != nil {
			return t.clean(fmt.Errorf("url template: %w", err))
		}
		sample, _ := renderURL(tmpl, 0, 1)
		all := append(redact.Secrets(nil).FromURL(sample).FromHeaders(t.opts.Headers), secrets...)
		t.mu.Lock()
		t.tmpl, t.secrets = tmpl, all
		t.mu.Unlock()
	}
	var rt nethttp.RoundTripper = t.transport
	if rt == nil {
		tr := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2
		t.mu.Lock()
		t.curTr = tr
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			t.curTr = nil
			t.mu.Unlock()
			tr.CloseIdleConnections()
		}()
		rt = tr
	}
	client := &nethttp.Client{Transport: rt}
	t.mu.Lock()
	t.rep.Set(trackers.StateStarting)
	t.mu.Unlock()

	reason := "start"
	var lastOK time.Time
	for {
		if err := t.waitUnpaused(ctx); err != nil {
			return nil
		}
		// This poll answers any wake asked for until now.
		select {
		case <-t.kick:
			reason = "wake"
		default:
		}
		cctx, end := t.beginCycle(ctx)
		if cctx == nil {
			continue // paused in between
		}
		log.Debug("poll", "reason", reason)
		wait, err := t.poll(cctx, h, log, client)
		end()
		if ctx.Err() != nil {
			return nil
		}
		if t.isPaused() {
			reason = "wake"
			continue
		}
		switch {
		case err == nil:
			lastOK = t.now().Round(0)
		case isPermanent(err):
			err = t.clean(err)
			log.Error("poll failed; giving up", "err", err)
			return err
		default:
			err = t.clean(err)
			log.Warn("poll failed; will poll again", "err", err, "in", max(wait, t.opts.Interval))
			t.rep.Report(h, trackers.StateStarting, err)
		}
		if wait < t.opts.Interval {
			wait = trackers.PollDelay(t.now(), t.opts.Interval)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-t.kick:
			timer.Stop()
			reason = "wake"
		case <-timer.C:
			reason = "interval"
			// Timers stop during suspend; the wall clock does not.
			if !lastOK.IsZero() && t.now().Round(0).Sub(lastOK) > 2*t.opts.Interval {
				reason = "gap"
			}
		}
	}
}

// Resume implements trackers.Resumer: it lifts a pause, drops pooled
// connections when it was paused (the machine slept: they are dead) and
// polls at once. A manual wake pauses nothing, so its poll reuses the
// pooled connection instead of paying a new handshake; after a sleep the
// agent did not announce, a dead pooled connection costs one retry, which
// the transport makes by itself for a GET.
func (t *Tracker) Resume(ctx context.Context) {
	t.mu.Lock()
	slept := t.paused
	if t.paused {
		t.paused = false
		close(t.resumed)
	}
	t.rep.Set(trackers.StateStarting) // the agent set it so
	tr := t.curTr
	t.mu.Unlock()
	if tr != nil && slept {
		tr.CloseIdleConnections()
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// Pause implements trackers.Pauser: the poll in flight is cancelled and no
// new one starts until Resume; Pause returns once nothing writes any more
// (or when ctx ends).
func (t *Tracker) Pause(ctx context.Context) {
	t.mu.Lock()
	if !t.paused {
		t.paused = true
		t.resumed = make(chan struct{})
	}
	cancel, done := t.cycleCancel, t.cycleDone
	t.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (t *Tracker) isPaused() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paused
}

func (t *Tracker) waitUnpaused(ctx context.Context) error {
	t.mu.Lock()
	if !t.paused {
		t.mu.Unlock()
		return ctx.Err()
	}
	ch := t.resumed
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Tracker) beginCycle(ctx context.Context) (context.Context, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.paused {
		return nil, nil
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.cycleCancel, t.cycleDone = cancel, done
	return cctx, func() {
		cancel()
		t.mu.Lock()
		t.cycleCancel, t.cycleDone = nil, nil
		t.mu.Unlock()
		close(done)
	}
}

// since reads the stored cursor.
func (t *Tracker) since(ctx context.Context) (since int64, cursor string, err error) {
	if t.opts.Cursor.From == CursorNone {
		return t.opts.InitialSince, "", nil
	}
	c, err := t.store.Cursor(ctx, t.name)
	if err != nil {
		return 0, "", fmt.Errorf("read cursor: %w", err)
	}
	if c == "" {
		return t.opts.InitialSince, "", nil
	}
	n, err := strconv.ParseInt(c, 10, 64)
	if err != nil {
		t.log.Warn("unreadable cursor; starting from initial_since", "cursor", c)
		return t.opts.InitialSince, "", nil
	}
	return n, c, nil
}

// poll runs one catch-up. wait is a delay the server asked for (a
// Retry-After that outlived the budget), to respect before the next poll.
func (t *Tracker) poll(ctx context.Context, h trackers.Host, log *slog.Logger, client *nethttp.Client) (wait time.Duration, err error) {
	since, _, err := t.since(ctx)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	cu := t.pending
	t.pending = nil
	t.mu.Unlock()
	if cu == nil || cu.since != since {
		cu = &catchup{since: since, page: 1, maxTime: math.MinInt64}
	} else {
		log.Info("catch-up goes on", "page", cu.page)
	}
	paged := t.opts.Paging.TotalPages != ""
	oldestFirst := t.opts.Paging.Order == OrderOldestFirst
	useCursor := t.opts.Cursor.From == CursorMaxTime
	offset := t.opts.Cursor.Offset
	budget := t.opts.Retry.Budget
	reqSince := cu.since
	totalAdded := 0
	for n := 1; ; n++ {
		body, wait, err := t.fetch(ctx, log, client, reqSince, cu.page, &budget)
		if err != nil {
			t.keep(cu, n)
			return wait, err
		}
		items, total, refused, err := t.parse(h, log, body)
		if err != nil {
			t.keep(cu, n)
			return 0, err
		}
		pageMax := int64(math.MinInt64)
		for _, it := range items {
			pageMax = max(pageMax, it.Time.Unix())
		}
		prevMax := cu.maxTime
		cu.maxTime = max(cu.maxTime, pageMax)

		var last bool
		switch {
		case paged:
			last = cu.page >= total || len(items) == 0
		case oldestFirst && useCursor:
			last = len(items) == 0 || pageMax <= max(prevMax, reqSince)
		default:
			last = true
		}
		cursor := ""
		if useCursor && cu.maxTime != math.MinInt64 {
			switch {
			case last:
				cursor = strconv.FormatInt(max(cu.maxTime+offset, cu.since), 10)
			case oldestFirst:
				cursor = strconv.FormatInt(max(min(cu.maxTime, cu.maxTime+offset), cu.since), 10)
			}
		}
		added, err := t.store.SaveItems(ctx, t.name, items, cursor)
		if err != nil {
			t.keep(cu, n)
			return 0, fmt.Errorf("save items: %w", err)
		}
		totalAdded += added
		log.Debug("page stored", "page", cu.page, "total_pages", total, "items", len(items), "added", added, "cursor", cursor)
		if last {
			if n > 1 || totalAdded > 0 {
				log.Info("caught up", "pages", n, "added", totalAdded)
			}
			t.rep.Report(h, trackers.StateReady, refused)
			return 0, nil
		}
		t.rep.Report(h, trackers.StateCatchingUp, refused)
		if paged {
			cu.page++
		} else {
			reqSince = cu.maxTime
		}
		if n >= t.opts.MaxPages {
			log.Warn("max_pages reached; the catch-up goes on at the next poll", "max_pages", t.opts.MaxPages)
			if paged && !oldestFirst {
				t.mu.Lock()
				t.pending = cu
				t.mu.Unlock()
			}
			return 0, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// keep remembers a newest-first catch-up interrupted after some pages, so
// the next poll goes on from its page instead of page 1.
func (t *Tracker) keep(cu *catchup, n int) {
	if n > 1 && t.opts.Paging.TotalPages != "" && t.opts.Paging.Order != OrderOldestFirst {
		t.mu.Lock()
		t.pending = cu
		t.mu.Unlock()
	}
}

// fetch gets one page, retrying under the poll's budget.
func (t *Tracker) fetch(ctx context.Context, log *slog.Logger, client *nethttp.Client, since int64, page int, budget *int) ([]byte, time.Duration, error) {
	t.mu.Lock()
	tmpl := t.tmpl
	t.mu.Unlock()
	u, err := renderURL(tmpl, since, page)
	if err != nil {
		return nil, 0, permanent(fmt.Errorf("render url: %w", err))
	}
	bo := backoff.Policy{Initial: t.opts.Retry.Initial, Max: t.opts.Retry.Max, Rand: t.rand}
	for attempt := 0; ; attempt++ {
		body, hdr, err := t.do(ctx, client, u)
		if err == nil {
			return body, 0, nil
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		var wait time.Duration
		var se *StatusError
		switch {
		case isPermanent(err):
			return nil, 0, err
		case errors.As(err, &se) && se.Code == nethttp.StatusTooManyRequests:
			var ok bool
			if wait, ok = retryAfter(hdr, t.now()); !ok {
				wait = bo.Full(attempt)
			}
		default:
			wait = bo.Full(attempt)
		}
		if *budget <= 0 {
			return nil, wait, fmt.Errorf("retry budget (%d) spent: %w", t.opts.Retry.Budget, err)
		}
		*budget--
		log.Debug("request failed; retrying", "err", t.clean(err), "attempt", attempt+1, "wait", wait)
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, 0, err
		}
	}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Method string
	URL    string // redacted
	Code   int
	Body   string // the start of the body
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Code, nethttp.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// do makes one request under the per-request timeout.
func (t *Tracker) do(ctx context.Context, client *nethttp.Client, u string) ([]byte, nethttp.Header, error) {
	rctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(rctx, t.opts.Method, u, nil)
	if err != nil {
		return nil, nil, permanent(fmt.Errorf("build request: %w", err))
	}
	for k, v := range t.opts.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", t.opts.Method, t.redactURL(u), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, resp.Header, fmt.Errorf("%s %s: read body: %w", t.opts.Method, t.redactURL(u), err)
	}
	if len(body) > maxBody {
		return nil, resp.Header, permanent(fmt.Errorf("%s %s: body larger than %d bytes", t.opts.Method, t.redactURL(u), maxBody))
	}
	var apiErr error
	retryable := false
	if t.apiError != nil {
		apiErr, retryable = t.apiError(body)
	}
	if resp.StatusCode/100 == 2 && apiErr == nil {
		return body, resp.Header, nil
	}
	se := &StatusError{Method: t.opts.Method, URL: t.redactURL(u), Code: resp.StatusCode, Body: snippet(body)}
	if apiErr != nil {
		se.Body = apiErr.Error()
		if retryable {
			return nil, resp.Header, se
		}
		return nil, resp.Header, permanent(se)
	}
	switch {
	case resp.StatusCode == nethttp.StatusTooManyRequests, resp.StatusCode >= 500, resp.StatusCode == nethttp.StatusRequestTimeout:
		return nil, resp.Header, se
	}
	return nil, resp.Header, permanent(se)
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// retryAfter reads Retry-After as seconds or an HTTP date.
func retryAfter(h nethttp.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			n = 0
		}
		return time.Duration(n) * time.Second, true
	}
	if at, err := nethttp.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// parse reads the items and the page count out of a body. Items over
// max_item_bytes are left out; refused reports the last one.
func (t *Tracker) parse(h trackers.Host, log *slog.Logger, body []byte) (items []trackers.Item, total int, refused error, err error) {
	o := t.opts.Items
	raw, found, err := jpath.Raw(body, o.Path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("response is not JSON: %w", err)
	}
	if !found {
		return nil, 0, nil, fmt.Errorf("items.path %q not found in the response: %s", o.Path, snippet(body))
	}
	list, err := jpath.List(raw)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("items.path %q: %w", o.Path, err)
	}
	total = 1
	if tp := t.opts.Paging.TotalPages; tp != "" {
		rv, found, err := jpath.Raw(body, tp)
		if err != nil || !found {
			return nil, 0, nil, fmt.Errorf("paging.total_pages %q not found in the response", tp)
		}
		v, err := jpath.Decode(rv)
		n, ok := jpath.Int(v)
		if err != nil || !ok {
			return nil, 0, nil, fmt.Errorf("paging.total_pages %q is not a number: %s", tp, snippet(rv))
		}
		total = int(n)
	}
	now := t.now()
	items = make([]trackers.Item, 0, len(list))
	skipped := 0
	for i, r := range list {
		if err := t.limit.Allow(h, log, fmt.Sprintf("#%d of the page", i+1), len(r)); err != nil {
			refused = err
			continue // not decoded: it may be huge
		}
		v, err := jpath.Decode(r)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("item: %w", err)
		}
		if t.skip != nil && t.skip(v) {
			skipped++
			continue
		}
		it := trackers.Item{Data: json.RawMessage(bytes.Clone(r)), Time: now}
		if o.Time != "" {
			tv, ok := jpath.Get(v, o.Time)
			if !ok {
				skipped++ // not an item until it has a time
				continue
			}
			ts, err := jpath.ParseTime(tv, o.TimeFormat)
			if err != nil {
				log.Warn("item with an unreadable time skipped", "field", o.Time, "err", err)
				skipped++
				continue
			}
			it.Time = ts
		}
		it.ID = itemID(v, r, o)
		items = append(items, it)
	}
	if skipped > 0 {
		log.Debug("items skipped", "count", skipped)
	}
	return items, total, refused, nil
}

func itemID(v any, raw []byte, o ItemsOptions) string {
	if len(o.IDFields) > 0 {
		h := sha256.New()
		for _, f := range o.IDFields {
			fv, _ := jpath.Get(v, f)
			s, _ := jpath.String(fv)
			h.Write([]byte(s))
			h.Write([]byte{0x1f})
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	if o.ID != "" {
		if fv, ok := jpath.Get(v, o.ID); ok {
			if s, ok := jpath.String(fv); ok && s != "" {
				return s
			}
		}
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// redactURL hides secrets and sensitive query values in a URL.
func (t *Tracker) redactURL(u string) string { return t.redact(redact.URL(u)) }

func (t *Tracker) redact(s string) string {
	t.mu.Lock()
	secrets := t.secrets
	t.mu.Unlock()
	return secrets.String(s)
}

// clean returns err with every secret masked (see redact.Secrets.Error),
// keeping its permanence.
func (t *Tracker) clean(err error) error {
	t.mu.Lock()
	secrets := t.secrets
	t.mu.Unlock()
	return secrets.Error(err, func(orig, masked error) error {
		if isPermanent(orig) {
			return permanent(masked)
		}
		return masked
	})
}
