// Package client owns the Go client of rouse's local REST API, used by the
// CLI, the tray and the tests: one typed method per route, server errors
// decoded into *APIError, an event-stream reader that reconnects with
// backoff and Last-Event-ID, and FromEnv, which finds the agent's address
// and reads its token file.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// Client talks to one agent. Its methods are safe for concurrent use.
type Client struct {
	base  string
	token string
	// HTTP does the requests (default: a client of its own with no overall
	// timeout, so long Start/Restart calls and event streams work, but a
	// connect bounded by ConnectTimeout; bound a call with its context).
	HTTP *http.Client
}

// ConnectTimeout bounds opening a connection to the agent: it listens on
// loopback, so a connection not made by then will not be made, and a
// command must say so rather than hang.
const ConnectTimeout = 2 * time.Second

// NoAgentError is a request that could not reach the agent at all: nothing
// listens at its address, or the connection could not be made in time.
type NoAgentError struct {
	URL string // the agent's base URL
	Err error  // the dial error
}

func (e *NoAgentError) Error() string {
	return fmt.Sprintf("no agent answers at %s: %v", e.URL, rootCause(e.Err))
}

func (e *NoAgentError) Unwrap() error { return e.Err }

// IsNoAgent reports whether err is a request that could not reach the agent.
func IsNoAgent(err error) bool {
	var ne *NoAgentError
	return errors.As(err, &ne)
}

// rootCause is the innermost error of a dial failure ("connection
// refused", "i/o timeout"), which is what a user can act on.
func rootCause(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// noAgent wraps a transport error that happened before a connection was
// made; other errors are returned as they are.
func (c *Client) noAgent(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return &NoAgentError{URL: c.base, Err: err}
	}
	return err
}

// New returns a client of the agent at baseURL (e.g. "http://127.0.0.1:8000")
// authenticating with token.
func New(baseURL, token string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		HTTP:  &http.Client{Transport: tr},
	}
}

// BaseURL is the agent's URL this client talks to.
func (c *Client) BaseURL() string { return c.base }

// Close releases idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// APIError is an error response from the agent.
type APIError struct {
	Status  int    // HTTP status
	Code    string // wire.Code*; "" when the body was not a JSON error
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("agent answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// IsNotFound reports whether err is the agent's 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// do sends one request and returns the response when its status is
// acceptable, or an error (*APIError for an error response).
func (c *Client) do(ctx context.Context, method, path string, ok ...int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if err := c.noAgent(err); IsNoAgent(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// decodeError reads an error response.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e wire.Error
	if err := json.Unmarshal(body, &e); err == nil && e.Error.Code != "" {
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	msg := strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return &APIError{Status: resp.StatusCode, Message: msg}
}

// call decodes the body of a request answered with one of ok (default 200)
// into v and returns the status.
func (c *Client) call(ctx context.Context, method, path string, v any, ok ...int) (int, error) {
	if len(ok) == 0 {
		ok = []int{http.StatusOK}
	}
	resp, err := c.do(ctx, method, path, ok...)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Alive is GET /healthz: nil when the agent answers.
func (c *Client) Alive(ctx context.Context) error {
	_, err := c.call(ctx, http.MethodGet, "/healthz", nil)
	return err
}

// Ready is GET /readyz. A not-ready agent (503) is not an error: the
// reasons are in the result.
func (c *Client) Ready(ctx context.Context) (wire.Ready, error) {
	var r wire.Ready
	_, err := c.call(ctx, http.MethodGet, "/readyz", &r, http.StatusOK, http.StatusServiceUnavailable)
	return r, err
}

// Health is GET /api/v1/health.
func (c *Client) Health(ctx context.Context) (wire.Health, error) {
	var h wire.Health
	_, err := c.call(ctx, http.MethodGet, "/api/v1/health", &h)
	return h, err
}

// Services is GET /api/v1/services.
func (c *Client) Services(ctx context.Context) ([]wire.Service, error) {
	var s wire.Services
	_, err := c.call(ctx, http.MethodGet, "/api/v1/services", &s)
	return s.Services, err
}

// Service is GET /api/v1/services/{name}.
func (c *Client) Service(ctx context.Context, name string) (wire.Service, error) {
	var s wire.Service
	_, err := c.call(ctx, http.MethodGet, "/api/v1/services/"+url.PathEscape(name), &s)
	return s, err
}

func (c *Client) action(ctx context.Context, name, action string) (string, int, error) {
	var r wire.ActionResult
	code, err := c.call(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(name)+"/"+action, &r, http.StatusOK, http.StatusAccepted)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			code = ae.Status
		}
		return "", code, err
	}
	return r.Status, code, nil
}

// Start is POST /api/v1/services/{name}/start: "started" (200), or
// "started with timeout" (202) when its deadline passed first.
func (c *Client) Start(ctx context.Context, name string) (status string, httpCode int, err error) {
	return c.action(ctx, name, "start")
}

// Stop is POST /api/v1/services/{name}/stop: "stopped" (200).
func (c *Client) Stop(ctx context.Context, name string) (status string, httpCode int, err error) {
	return c.action(ctx, name, "stop")
}

// Restart is POST /api/v1/services/{name}/restart, answered like Start.
func (c *Client) Restart(ctx context.Context, name string) (status string, httpCode int, err error) {
	return c.action(ctx, name, "restart")
}

// Wake is POST /api/v1/wake: a recovery now. It returns the recorded wake;
// follow the restore with Events.
func (c *Client) Wake(ctx context.Context) (wire.Wake, error) {
	var w wire.Wake
	_, err := c.call(ctx, http.MethodPost, "/api/v1/wake", &w, http.StatusAccepted)
	return w, err
}

// WakePlan is POST /api/v1/wake?dry_run=true: what a wake now would do.
func (c *Client) WakePlan(ctx context.Context) (wire.Plan, error) {
	var p wire.Plan
	_, err := c.call(ctx, http.MethodPost, "/api/v1/wake?dry_run=true", &p)
	return p, err
}

// StartPlan is POST /api/v1/services/{name}/start?dry_run=true: the plan
// of starting name and its dependencies.
func (c *Client) StartPlan(ctx context.Context, name string) (wire.Plan, error) {
	var p wire.Plan
	_, err := c.call(ctx, http.MethodPost, "/api/v1/services/"+url.PathEscape(name)+"/start?dry_run=true", &p)
	return p, err
}

// Chain is GET /api/v1/services/{name}/chain: an on-demand component's
// chain as its waiting page shows it.
func (c *Client) Chain(ctx context.Context, name string) (wire.Chain, error) {
	var ch wire.Chain
	_, err := c.call(ctx, http.MethodGet, "/api/v1/services/"+url.PathEscape(name)+"/chain", &ch)
	return ch, err
}

// Wakes is GET /api/v1/wakes: the last limit wakes, newest first (limit 0:
// the server's default, 20).
func (c *Client) Wakes(ctx context.Context, limit int) ([]wire.Wake, error) {
	var w wire.Wakes
	_, err := c.call(ctx, http.MethodGet, "/api/v1/wakes"+limitQuery(limit), &w)
	return w.Wakes, err
}

// WakeByID is GET /api/v1/wakes/{id}.
func (c *Client) WakeByID(ctx context.Context, id int64) (wire.Wake, error) {
	var w wire.Wake
	_, err := c.call(ctx, http.MethodGet, "/api/v1/wakes/"+strconv.FormatInt(id, 10), &w)
	return w, err
}

// ItemQuery selects a page of tracker items; zero values are the server's
// defaults.
type ItemQuery struct {
	Since  string // RFC 3339 time or Unix seconds
	Cursor string // a previous page's NextCursor
	Limit  int    // 1..1000 (default 100)
	Oldest bool   // oldest first (default newest first)
}

// Items is GET /api/v1/trackers/{name}/items.
func (c *Client) Items(ctx context.Context, tracker string, q ItemQuery) (wire.Items, error) {
	v := url.Values{}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Oldest {
		v.Set("order", "oldest")
	}
	path := "/api/v1/trackers/" + url.PathEscape(tracker) + "/items"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var items wire.Items
	_, err := c.call(ctx, http.MethodGet, path, &items)
	return items, err
}

// Jobs is GET /api/v1/jobs.
func (c *Client) Jobs(ctx context.Context) ([]wire.Job, error) {
	var j wire.Jobs
	_, err := c.call(ctx, http.MethodGet, "/api/v1/jobs", &j)
	return j.Jobs, err
}

// RunJob is POST /api/v1/jobs/{name}/run: the run it started (Result
// "running", or "skipped" when max_instances is reached).
func (c *Client) RunJob(ctx context.Context, name string) (wire.JobRun, error) {
	var r wire.RunResult
	_, err := c.call(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(name)+"/run", &r, http.StatusAccepted)
	return r.Run, err
}

// JobRuns is GET /api/v1/jobs/{name}/runs, newest first (limit 0: the
// server's default, 20).
func (c *Client) JobRuns(ctx context.Context, name string, limit int) ([]wire.JobRun, error) {
	var r wire.JobRuns
	_, err := c.call(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(name)+"/runs"+limitQuery(limit), &r)
	return r.Runs, err
}

// LoginCode is a one-time dashboard login.
type LoginCode = wire.LoginCode

// LoginCode is POST /api/v1/login-codes: what `rouse open` prints.
func (c *Client) LoginCode(ctx context.Context) (LoginCode, error) {
	var l LoginCode
	_, err := c.call(ctx, http.MethodPost, "/api/v1/login-codes", &l)
	return l, err
}

func limitQuery(limit int) string {
	if limit <= 0 {
		return ""
	}
	return "?limit=" + strconv.Itoa(limit)
}
