package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Container is what rouse reads of GET /containers/{id}/json (the
// Engine's ContainerInspectResponse); other fields are not decoded.
type Container struct {
	ID     string  `json:"Id"`
	Name   string  `json:"Name"`
	State  *State  `json:"State"`
	Config *Config `json:"Config"`
}

// State is the container's ContainerState.
type State struct {
	Status     string  `json:"Status"` // created, running, paused, restarting, removing, exited, dead
	Running    bool    `json:"Running"`
	Paused     bool    `json:"Paused"`
	Restarting bool    `json:"Restarting"`
	Pid        int     `json:"Pid"`
	ExitCode   int     `json:"ExitCode"`
	StartedAt  string  `json:"StartedAt"`
	FinishedAt string  `json:"FinishedAt"`
	Health     *Health `json:"Health"`
}

// Health statuses of a container with a HEALTHCHECK.
const (
	Starting  = "starting"
	Healthy   = "healthy"
	Unhealthy = "unhealthy"
)

// Health is the state of the container's HEALTHCHECK.
type Health struct {
	Status        string      `json:"Status"`
	FailingStreak int         `json:"FailingStreak"`
	Log           []HealthLog `json:"Log"`
}

// HealthLog is one run of the HEALTHCHECK.
type HealthLog struct {
	ExitCode int    `json:"ExitCode"`
	Output   string `json:"Output"`
}

// Config is the part of the container's configuration rouse reads.
type Config struct {
	Image       string            `json:"Image"`
	Labels      map[string]string `json:"Labels"`
	Healthcheck *HealthConfig     `json:"Healthcheck"`
	StopTimeout *int              `json:"StopTimeout"`
}

// HealthConfig is the container's HEALTHCHECK; Test[0] is "NONE",
// "CMD" or "CMD-SHELL".
type HealthConfig struct {
	Test []string `json:"Test"`
}

// Summary is one entry of GET /containers/json.
type Summary struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// Filters select containers or events: each key (label, type, container,
// event, …) with the values any of which must match. The query carries
// them as the Engine wants, {"key":{"value":true}}.
type Filters map[string][]string

func (f Filters) encode(q url.Values) {
	if len(f) == 0 {
		return
	}
	m := make(map[string]map[string]bool, len(f))
	for k, vs := range f {
		m[k] = make(map[string]bool, len(vs))
		for _, v := range vs {
			m[k][v] = true
		}
	}
	b, _ := json.Marshal(m) // maps of strings always marshal
	q.Set("filters", string(b))
}

func containerPath(id, tail string) string { return "/containers/" + url.PathEscape(id) + tail }

// Inspect returns the container named by name or id; errors.Is(err,
// ErrNotFound) when there is none.
func (c *Client) Inspect(ctx context.Context, id string) (Container, error) {
	var r Container
	if err := c.call(ctx, fmt.Sprintf("inspect container %q", id), http.MethodGet, containerPath(id, "/json"), nil, nil, &r); err != nil {
		return Container{}, err
	}
	if r.State == nil {
		return Container{}, fmt.Errorf("inspect container %q: %s gave no state", id, c.host)
	}
	return r, nil
}

// List returns the containers that match f; all includes stopped ones.
func (c *Client) List(ctx context.Context, all bool, f Filters) ([]Summary, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	f.encode(q)
	var r []Summary
	if err := c.call(ctx, "list containers", http.MethodGet, "/containers/json", q, nil, &r); err != nil {
		return nil, err
	}
	return r, nil
}

// Start starts a container; starting a running one is no error (304).
func (c *Client) Start(ctx context.Context, id string) error {
	return c.call(ctx, fmt.Sprintf("start container %q", id), http.MethodPost, containerPath(id, "/start"), nil, nil, nil)
}

// Unpause unpauses a paused container.
func (c *Client) Unpause(ctx context.Context, id string) error {
	return c.call(ctx, fmt.Sprintf("unpause container %q", id), http.MethodPost, containerPath(id, "/unpause"), nil, nil, nil)
}

// Restart restarts a container; timeout < 0 means the container's own
// stop timeout, else the seconds to wait before killing it.
func (c *Client) Restart(ctx context.Context, id string, timeout int) error {
	return c.call(ctx, fmt.Sprintf("restart container %q", id), http.MethodPost, containerPath(id, "/restart"), stopQuery(timeout), nil, nil)
}

// Stop stops a container; stopping a stopped one is no error (304).
// timeout as for Restart.
func (c *Client) Stop(ctx context.Context, id string, timeout int) error {
	return c.call(ctx, fmt.Sprintf("stop container %q", id), http.MethodPost, containerPath(id, "/stop"), stopQuery(timeout), nil, nil)
}

func stopQuery(timeout int) url.Values {
	if timeout < 0 {
		return nil
	}
	return url.Values{"t": {strconv.Itoa(timeout)}}
}
