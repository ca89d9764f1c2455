// Package wire owns the JSON shapes of rouse's local REST API and the few
// constants both of its sides need (the default address, the token file's
// name, the values of its enumerated fields). It is a leaf: the server
// (agent/api), the CLI, the tray and the tests all import it, so a field or
// a value is defined once. Add fields freely; never rename or drop one.
package wire

import "time"

// DefaultListen is the REST API's address when neither the config's listen
// key, --listen nor ROUSE_LISTEN names one.
const DefaultListen = "127.0.0.1:8000"

// TokenFile is the name of the API token file in the agent's data
// directory: the agent creates it, clients read it.
const TokenFile = "api-token"

// Error is the body of every error response: {"error":{"code":..,"message":..}}.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries a stable machine code and a human message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes used by the API.
const (
	CodeBadRequest       = "bad_request"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeBadHost          = "bad_host"
	CodeBadOrigin        = "bad_origin"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeConflict         = "conflict"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
	// The on-demand entry points' own answers.
	CodeChainFailed = "chain_failed" // a required dependency of the chain failed (502)
	CodeBadGateway  = "bad_gateway"  // the chain is ready but its upstream does not answer (502)
)

// Service is one component as the API shows it.
type Service struct {
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	State       string     `json:"state"`
	Since       time.Time  `json:"since"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	NextRetryAt *time.Time `json:"next_retry,omitempty"` // the next try: the heartbeat's retry of a failed component, or an exec child's restart
	Restarts    int        `json:"restarts"`             // times its Run (or its exec child) was started again since the agent started
	LastExit    *Exit      `json:"last_exit,omitempty"`  // how its Run (or its exec child) last ended
	Blocked     string     `json:"blocked,omitempty"`    // waiting for a component the user stopped: "blocked: tunnel is stopped"
	// StartLimited: it failed start_limit times within start_window and is
	// not retried (no next try) until a wake, a config change or a start.
	StartLimited bool     `json:"start_limited,omitempty"`
	DependsOn    []string `json:"depends_on"`
	Optional     []string `json:"optional_depends_on,omitempty"`
	Required     bool     `json:"required"`    // counts for /readyz
	DeadlineMS   int64    `json:"deadline_ms"` // restore deadline
	// DeadlineAuto: the deadline is learned from the wake history
	// (`deadline: auto`); how it was chosen.
	DeadlineAuto *AutoDeadline `json:"deadline_auto,omitempty"`
	Output       []string      `json:"output,omitempty"`   // last lines of an exec child's output
	Detail       any           `json:"detail,omitempty"`   // kind-specific (the scheduler's next runs, ...)
	NeedsNet     bool          `json:"needs_network"`      // waits for the network after a wake
	Desired      string        `json:"desired"`            // "active" or "stopped"
	StartedAt    *time.Time    `json:"ready_at,omitempty"` // when it last became ready
	// OnDemand is the address of the component's on-demand entry point
	// (its on_demand.listen); "" for a component that runs all the time.
	// A component on demand is "idle" while no chain needs it.
	OnDemand string `json:"on_demand,omitempty"`
	// OnDemandError says why the entry point does not listen (its address
	// is taken by another program); rouse tries again with backoff.
	// "" while it listens.
	OnDemandError string `json:"on_demand_error,omitempty"`
	// Chains are the on-demand components whose chain it is part of: it
	// is one of their dependencies, required or optional, transitively
	// (a component's own chain is not listed). Empty for a component in
	// no chain.
	Chains []string `json:"chains,omitempty"`
	// StartsOnDemand: it runs only while a chain needs it (it has
	// on_demand, or only on-demand components need it) and is "idle"
	// otherwise. A member of a chain that a component running all the
	// time needs as well runs all the time.
	StartsOnDemand bool `json:"starts_on_demand,omitempty"`
	// Health is its health check (a tracker's health:), nil without one.
	Health *HealthStatus `json:"health,omitempty"`
}

// HealthStatus is a component's health check as the API shows it.
type HealthStatus struct {
	Check         string `json:"check"` // what runs: "tcp 127.0.0.1:9330", "its readiness check"
	IntervalMS    int64  `json:"interval_ms"`
	TimeoutMS     int64  `json:"timeout_ms"`
	Retries       int    `json:"retries"` // failures in a row that make it unhealthy
	StartPeriodMS int64  `json:"start_period_ms"`
	// Failures is the failures in a row so far (0 after a pass).
	Failures   int        `json:"consecutive_failures"`
	LastCheck  *time.Time `json:"last_check,omitempty"`
	LastResult string     `json:"last_result,omitempty"` // "ok" or "failed"
	LastOutput string     `json:"last_output,omitempty"` // the last failure's output, bounded
	Restarts   int        `json:"health_restarts"`       // restarts for failing it since the agent started
}

// Exit is how a component's Run, or the child an exec component
// supervises, last ended.
type Exit struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"` // "" for a stop the agent asked for
	Code  *int      `json:"code,omitempty"`  // a process's exit status, when there was one
}

// Services is GET /api/v1/services.
type Services struct {
	Services []Service `json:"services"`
}

// Overall statuses in Health.Status.
const (
	StatusOK       = "ok"
	StatusDegraded = "degraded"
	StatusStarting = "starting"
	StatusError    = "error"
)

// Health is GET /api/v1/health.
type Health struct {
	Status     string       `json:"status"`
	Store      StoreHealth  `json:"store"`
	Config     ConfigState  `json:"config"`
	Network    *Network     `json:"network,omitempty"`
	Power      *Power       `json:"power,omitempty"`
	Components []Service    `json:"components"`
	LastWake   *WakeSummary `json:"last_wake"` // its components: GET /api/v1/wakes/{id}
	Version    string       `json:"version"`
	StartedAt  time.Time    `json:"started_at"`
	Asleep     bool         `json:"asleep"`
	Waking     bool         `json:"waking"` // a restore is under way
}

// StoreHealth is the store part of Health.
type StoreHealth struct {
	State string `json:"state"` // StoreOpen, StoreClosed, StoreError
	Path  string `json:"path"`
	Error string `json:"error,omitempty"`
}

// Store states in StoreHealth.State.
const (
	StoreOpen   = "open"
	StoreClosed = "closed"
	StoreError  = "error"
)

// ConfigState is the config part of Health: the running config and, when
// the last edit was rejected, why.
type ConfigState struct {
	State string `json:"state"` // ok, rejected, default
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
}

// Power is the sleep-and-wake part of Health.
type Power struct {
	Sources  []string `json:"sources"`   // "logind", "clock", "windows"
	Logind   bool     `json:"logind"`    // connected, and logind is on the bus
	LockHeld bool     `json:"lock_held"` // the sleep delay lock is held
	// LockError says why the delay lock could not be re-taken (it is
	// retried): until it is, a sleep may begin before the agent has
	// checkpointed its store.
	LockError string `json:"lock_error,omitempty"`
	Error     string `json:"error,omitempty"` // the last error a source met
}

// Network is the network part of Health.
type Network struct {
	Online bool      `json:"online"`
	Since  time.Time `json:"since"`
}

// Ready is the body of GET /readyz.
type Ready struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// ActionResult is the body of POST /api/v1/services/{name}/start|stop|restart.
type ActionResult struct {
	Status string `json:"status"` // "started", "stopped", "started with timeout", "running"
	State  string `json:"state,omitempty"`
}

// Action statuses.
const (
	ActionStarted            = "started"
	ActionStopped            = "stopped"
	ActionStartedWithTimeout = "started with timeout"
)

// Wake is one suspend/resume cycle (or a manual recovery).
type Wake struct {
	ID           int64           `json:"id"`
	DetectedBy   string          `json:"detected_by"` // logind, clock, windows, manual, boot
	SleptAt      *time.Time      `json:"slept_at,omitempty"`
	WokeAt       time.Time       `json:"woke_at"`
	SleptSeconds float64         `json:"slept_seconds"`
	Restore      RestoreSummary  `json:"restore"`
	Components   []WakeComponent `json:"components"`
	Done         bool            `json:"done"`
}

// WakeSummary is a Wake without its per-component entries: what
// GET /api/v1/health says about the last wake, so its size does not grow
// with the number of components.
type WakeSummary struct {
	ID           int64          `json:"id"`
	DetectedBy   string         `json:"detected_by"`
	SleptAt      *time.Time     `json:"slept_at,omitempty"`
	WokeAt       time.Time      `json:"woke_at"`
	SleptSeconds float64        `json:"slept_seconds"`
	Restore      RestoreSummary `json:"restore"`
	Done         bool           `json:"done"`
}

// Summary is w without its components.
func (w Wake) Summary() *WakeSummary {
	return &WakeSummary{ID: w.ID, DetectedBy: w.DetectedBy, SleptAt: w.SleptAt, WokeAt: w.WokeAt,
		SleptSeconds: w.SleptSeconds, Restore: w.Restore, Done: w.Done}
}

// RestoreSummary counts how a restore went.
type RestoreSummary struct {
	DurationMS int64 `json:"duration_ms"`
	Ready      int   `json:"ready"`
	TimedOut   int   `json:"timed_out"`
	Failed     int   `json:"failed"`
	Skipped    int   `json:"skipped"` // stopped by the user, or blocked by one that is
	// WaitingForUser counts components that are running and wait for the
	// user (a Roon extension to enable): not slow, so not timed out.
	WaitingForUser int `json:"waiting_for_user"`
	// ParallelEfficiency is the sum of the components' own start times
	// divided by the restore's wall time: above 1, they overlapped.
	ParallelEfficiency float64 `json:"parallel_efficiency,omitempty"`
}

// WakeComponent is one component's part in a restore.
type WakeComponent struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	DurationMS int64  `json:"duration_ms"`
	WaitedMS   int64  `json:"waited_ms"` // time spent waiting for dependencies or network
	Error      string `json:"error,omitempty"`
}

// Wakes is GET /api/v1/wakes.
type Wakes struct {
	Wakes      []Wake `json:"wakes"`
	NextCursor string `json:"next_cursor,omitempty"` // pass as ?cursor= for the next page
}

// Plan is POST /api/v1/wake?dry_run=true.
type Plan struct {
	Components       []PlanStep `json:"components"` // in start order
	EstimatedTotalMS int64      `json:"estimated_total_ms"`
	CriticalPath     []string   `json:"critical_path"`
	NotPlanned       []PlanSkip `json:"not_planned,omitempty"` // stopped by the user, or needing one that is
}

// PlanSkip is a component a wake now would not start, and why ("stopped",
// "blocked: tunnel is stopped").
type PlanSkip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// PlanStep is one component in a Plan.
type PlanStep struct {
	Name        string   `json:"name"`
	WaitsFor    []string `json:"waits_for"`
	EstimatedMS int64    `json:"estimated_ms"` // median of past restores, or its deadline guess when it has none
	Samples     int      `json:"samples"`
	StartAtMS   int64    `json:"start_at_ms"` // estimated start, from the wake
	DeadlineMS  int64    `json:"deadline_ms"`
	// EstimateAtLeast: restores that timed out weigh on the estimate, which
	// is then only a lower bound.
	EstimateAtLeast bool `json:"estimate_at_least,omitempty"`
	// DeadlineAuto: the deadline the next wake would learn (`deadline: auto`).
	DeadlineAuto *AutoDeadline `json:"deadline_auto,omitempty"`
}

// AutoDeadline is a deadline learned from the wake history: 1.5 × the 95th
// percentile of the last restores (those that timed out counting as their
// deadline), within [min, max]; with too few restores, the default
// deadline within the same bounds.
type AutoDeadline struct {
	DeadlineMS int64 `json:"deadline_ms"`
	Samples    int   `json:"samples"`             // restores it was learned from
	TimedOut   int   `json:"timed_out,omitempty"` // of which timed out (censored: at least their deadline)
	P95MS      int64 `json:"p95_ms,omitempty"`
	TooFew     bool  `json:"too_few,omitempty"` // fewer than 3 samples: the default deadline
	MinMS      int64 `json:"min_ms"`
	MaxMS      int64 `json:"max_ms"`
}

// Event is one Server-Sent Event on GET /api/v1/events.
type Event struct {
	ID   int64  `json:"id"`
	Type string `json:"type"` // EventState, EventWake, EventConfig
	// Exactly one of the following is set, by Type.
	State  *StateEvent  `json:"state,omitempty"`
	Wake   *WakeEvent   `json:"wake,omitempty"`
	Config *ConfigState `json:"config,omitempty"`
	Note   *NoteEvent   `json:"note,omitempty"`
	At     time.Time    `json:"at"`
}

// Event types (the SSE "event:" field).
const (
	EventState  = "state"
	EventWake   = "wake"
	EventConfig = "config"
	EventNote   = "note"
)

// StateEvent is a component's state change.
type StateEvent struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Previous string `json:"previous"`
	Error    string `json:"error,omitempty"`
	Attempts int    `json:"attempts"` // the component's attempts and restarts at the change,
	Restarts int    `json:"restarts"` // as the service view counts them
}

// NoteEvent is something a component noted that is not a state change
// (a stream's disconnect with its close code and reason).
type NoteEvent struct {
	Name   string `json:"name"`
	Event  string `json:"event"` // e.g. "disconnect"
	Detail string `json:"detail"`
}

// WakePhase is where a sleep or wake is, in WakeEvent.Phase.
type WakePhase string

// The wake phases, in the order they come.
const (
	PhaseSleeping  WakePhase = "sleeping"  // the machine is going to sleep: components pause
	PhaseAsleep    WakePhase = "asleep"    // ready for the sleep: the store is closed
	PhaseWaking    WakePhase = "waking"    // a wake was detected (Wake says how)
	PhaseRestoring WakePhase = "restoring" // the restore is under way (Pending of Total left)
	PhaseDone      WakePhase = "done"      // the restore ended (Wake has its outcome)
)

// WakeEvent is wake progress.
type WakeEvent struct {
	Phase WakePhase `json:"phase"`
	Wake  *Wake     `json:"wake,omitempty"`
	// For PhaseRestoring: the component that changed and what is left.
	Pending int `json:"pending"`
	Total   int `json:"total"`
}

// Item is one tracker item.
type Item struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Data any       `json:"data"`
	Seq  int64     `json:"seq"` // store order, used for cursor paging
	// OmittedBytes, when set, is the size of data that was left out (data
	// null): larger than one page carries (stored before max_item_bytes).
	OmittedBytes int64 `json:"omitted_bytes,omitempty"`
}

// StreamDetail is the detail (Service.Detail) of a component that holds a
// long-lived connection (websocket, roon): how often it dropped and why.
type StreamDetail struct {
	Connects          int            `json:"connects"`            // connections made
	Reconnects        int            `json:"reconnects"`          // connections made after the first
	DisconnectsByCode map[string]int `json:"disconnects_by_code"` // close code (or "timeout", "error") → count
	LastDisconnect    *Disconnect    `json:"last_disconnect,omitempty"`
}

// Disconnect is one dropped connection.
type Disconnect struct {
	At     time.Time `json:"at"`
	Code   string    `json:"code"`
	Reason string    `json:"reason,omitempty"`
}

// Items is GET /api/v1/trackers/{name}/items.
type Items struct {
	Items      []Item `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"` // pass as ?cursor= for the next page
}

// Job is one scheduled job as GET /api/v1/jobs shows it.
type Job struct {
	Name     string     `json:"name"`
	Schedule string     `json:"schedule"`
	Timezone string     `json:"timezone,omitempty"`
	Misfire  string     `json:"misfire"`
	NextRun  *time.Time `json:"next_run,omitempty"`
	LastRun  *JobRun    `json:"last_run,omitempty"`
	Running  int        `json:"running"`
	BuiltIn  bool       `json:"built_in,omitempty"`
}

// Jobs is GET /api/v1/jobs.
type Jobs struct {
	Jobs []Job `json:"jobs"`
}

// JobRun is one run of a job.
type JobRun struct {
	ID          int64      `json:"id"`
	Job         string     `json:"job"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	Result      string     `json:"result"`           // ok, failed, timeout, skipped, running
	Reason      string     `json:"reason,omitempty"` // manual, schedule, misfire, overlap
	ExitCode    *int       `json:"exit_code,omitempty"`
	Output      string     `json:"output,omitempty"` // tail
	Error       string     `json:"error,omitempty"`
	// WakeID: an @wake or @sleep hook's run, the wake it ran for (an @sleep
	// run: the wake that followed the sleep).
	WakeID int64 `json:"wake_id,omitempty"`
}

// JobRuns is GET /api/v1/jobs/{name}/runs.
type JobRuns struct {
	Runs       []JobRun `json:"runs"`
	NextCursor string   `json:"next_cursor,omitempty"` // pass as ?cursor= for the next page
}

// RunResult is the body of POST /api/v1/jobs/{name}/run: the run's result
// ("running" or "skipped") and the run itself.
type RunResult struct {
	Status string `json:"status"`
	Run    JobRun `json:"run"`
}

// LoginCode is the body of POST /api/v1/login-codes: a one-time code and
// the URL that exchanges it for a dashboard session (valid 60 s, once).
type LoginCode struct {
	Code string `json:"code"`
	URL  string `json:"url"`
}

// Chain is an on-demand component's chain as its waiting page and
// GET /api/v1/services/{name}/chain show it: the component and its
// dependencies in start order.
type Chain struct {
	Name  string `json:"name"`
	State string `json:"state"` // ChainIdle, ChainStarting, ChainWaiting, ChainReady, ChainFailed, ChainStopping
	// Reason says why the chain failed ("db: exited with status 1"), was
	// stopped ("idle for 30m0s"), or what it waits for ("blog is waiting
	// for db, which is unhealthy").
	Reason     string           `json:"reason,omitempty"`
	Trigger    string           `json:"trigger,omitempty"` // demand, manual, wake
	StartedAt  *time.Time       `json:"started_at,omitempty"`
	DeadlineMS int64            `json:"deadline_ms"`
	Components []ChainComponent `json:"components"`
}

// ChainComponent is one component of a Chain.
type ChainComponent struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Required bool   `json:"required"`
	// WaitingFor is the required dependency (a member too) a waiting
	// member waits for; "" when it waits for nothing in the chain.
	WaitingFor string `json:"waiting_for,omitempty"`
	ElapsedMS  int64  `json:"elapsed_ms"` // since this start began waiting for it
	// EstimatedMS is learned as the dry run's estimate (the median of its
	// last starts, wakes and chain starts) from Samples starts on record;
	// with none (its first start) both are 0: there is no estimate yet.
	EstimatedMS int64  `json:"estimated_ms"`
	Samples     int    `json:"samples"`
	Error       string `json:"error,omitempty"`
}

// Chain states.
const (
	ChainIdle     = "idle"
	ChainStarting = "starting"
	// ChainWaiting: no start is under way, and the component waits (the
	// component state "waiting"), most often for a dependency that left
	// ready (unhealthy, restarting) and that the Reason names.
	ChainWaiting  = "waiting"
	ChainReady    = "ready"
	ChainFailed   = "failed"
	ChainStopping = "stopping"
)
