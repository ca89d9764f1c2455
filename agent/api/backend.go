package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// Backend is what the server asks of the agent. The agent implements it;
// the server owns HTTP, security and JSON, nothing else. Methods return the
// sentinel errors below (wrapped with %w is fine) so the server can pick the
// status code; any other error is a 500.
type Backend interface {
	// Health is GET /api/v1/health.
	Health(ctx context.Context) wire.Health
	// Ready is GET /readyz: ready when the store is open and every required
	// component is ready. Each reason names a component and its state;
	// only with detail (the caller showed the token) does it add the error,
	// which can hold user names, hosts, paths and upstream answers.
	Ready(ctx context.Context, detail bool) wire.Ready
	// Services lists every component, in config order.
	Services(ctx context.Context) []wire.Service
	// Service returns one component, or ErrNotFound.
	Service(ctx context.Context, name string) (wire.Service, error)
	// Start, Stop and Restart act on one component. Start and Restart wait
	// until it is ready or its deadline passes; then they return
	// wire.ActionStarted or wire.ActionStartedWithTimeout (the server answers
	// 200 or 202). Stop returns wire.ActionStopped. ErrNotFound for an
	// unknown name.
	Start(ctx context.Context, name string) (string, error)
	Stop(ctx context.Context, name string) (string, error)
	Restart(ctx context.Context, name string) (string, error)
	// Wake runs a recovery now, the same path as a real resume, with
	// detected_by "manual". It returns once the wake is recorded; the
	// restore goes on in the background (follow it on the event stream).
	Wake(ctx context.Context) (wire.Wake, error)
	// WakePlan is the dry run: what a wake now would do.
	WakePlan(ctx context.Context) (wire.Plan, error)
	// Wakes lists up to limit wakes, newest first, with ids below before
	// (0: from the newest). The server pages with it.
	Wakes(ctx context.Context, limit int, before int64) ([]wire.Wake, error)
	// WakeByID returns one wake, or ErrNotFound.
	WakeByID(ctx context.Context, id int64) (wire.Wake, error)
	// Subscribe streams events. Events after lastID still in the backlog
	// come first (lastID 0: none). The channel is closed when ctx is done
	// or the subscriber is too slow to keep up (it then reconnects with
	// Last-Event-ID).
	Subscribe(ctx context.Context, lastID int64) <-chan wire.Event
	// Items returns one batch of a tracker's items as stored, honouring
	// every field of q; ErrNotFound for an unknown tracker. The server
	// streams a page from several batches.
	Items(ctx context.Context, tracker string, q ItemQuery) ([]Item, error)
	// Jobs lists the scheduler's jobs.
	Jobs(ctx context.Context) ([]wire.Job, error)
	// RunJob starts a run of the job now and returns it (result "running",
	// or "skipped" when max_instances is reached). ErrNotFound.
	RunJob(ctx context.Context, name string) (wire.JobRun, error)
	// JobRuns lists up to limit runs of a job, newest first, with ids
	// below before (0: from the newest). ErrNotFound.
	JobRuns(ctx context.Context, name string, limit int, before int64) ([]wire.JobRun, error)
}

// ChainBackend is implemented by a Backend whose components can start on
// demand (the agent): a chain's plan and its live view.
type ChainBackend interface {
	// StartPlan is POST /api/v1/services/{name}/start?dry_run=true: the
	// plan of starting name and its dependencies. ErrNotFound.
	StartPlan(ctx context.Context, name string) (wire.Plan, error)
	// ChainView is GET /api/v1/services/{name}/chain. ErrNotFound for an
	// unknown name or one that does not start on demand.
	ChainView(ctx context.Context, name string) (wire.Chain, error)
}

// Snapshotter is implemented by a Backend that keeps its read views
// rendered: the server writes those bytes (JSON, newline-terminated) as
// they are instead of calling Health or Services and encoding the answer.
type Snapshotter interface {
	HealthJSON(ctx context.Context) []byte
	ServicesJSON(ctx context.Context) []byte
}

// GzipSnapshotter is a Snapshotter that also keeps its views gzipped: a
// client that accepts gzip gets those bytes (a tenth of the size to
// write). A nil answer means none is ready: the plain view is served.
type GzipSnapshotter interface {
	HealthGzip(ctx context.Context) []byte
	ServicesGzip(ctx context.Context) []byte
}

// ItemQuery selects a batch of tracker items.
type ItemQuery struct {
	Since  string // RFC 3339 time or Unix seconds: only items at or after it ("" = all)
	Cursor string // the Seq of the last item already seen, in decimal ("" = from the start)
	Limit  int    // at most this many items
	Oldest bool   // oldest first (default newest first)
	// MaxBytes ends the batch before the item whose data would take the
	// batch's data past it; the first item always comes.
	MaxBytes int64
	// OmitAbove leaves out the data of items larger than it (Item.Data nil).
	OmitAbove int64
}

// Item is one stored item as the server streams it.
type Item struct {
	Seq  int64
	ID   string
	Time time.Time
	Data json.RawMessage // as stored (valid JSON); nil when left out
	Size int64           // the data's size in bytes
}

// Errors a Backend returns so the server can pick the status code.
var (
	ErrNotFound    = errors.New("not found")     // 404
	ErrBadRequest  = errors.New("bad request")   // 400
	ErrConflict    = errors.New("conflict")      // 409
	ErrUnavailable = errors.New("not available") // 503 (the store is closed while asleep, ...)
)

// Errorf is an error of kind sentinel (one of the Err values above) whose
// message is the formatted text alone: the sentinel picks the status and
// the code, which the response carries already, so a whole sentence need
// not end in ": not found" (which the CLI would print before "(404
// not_found)").
func Errorf(sentinel error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: sentinel}
}

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
