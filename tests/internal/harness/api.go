//go:build linux

package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/client"
	"github.com/rouse-dev/rouse/wire"
)

// callTimeout bounds one API call made by the helpers below.
const callTimeout = 30 * time.Second

func (a *Agent) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// Services returns the components by name, failing the test on an error.
func (a *Agent) Services() map[string]wire.Service {
	a.t.Helper()
	ctx, cancel := a.ctx()
	defer cancel()
	ss, err := a.Client.Services(ctx)
	if err != nil {
		a.t.Fatalf("GET /api/v1/services: %v", err)
	}
	m := make(map[string]wire.Service, len(ss))
	for _, s := range ss {
		m[s.Name] = s
	}
	return m
}

// States renders every component's state, for failure messages.
func (a *Agent) States() string {
	ctx, cancel := a.ctx()
	defer cancel()
	ss, err := a.Client.Services(ctx)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%s=%s ", s.Name, s.State)
		if s.LastError != "" {
			fmt.Fprintf(&b, "(%s) ", s.LastError)
		}
	}
	return b.String()
}

// WaitStates waits until every named component is in its wanted state.
func (a *Agent) WaitStates(guard time.Duration, want map[string]string) {
	a.t.Helper()
	deadline := time.Now().Add(guard)
	for {
		ss := a.Services()
		ok := true
		for n, st := range want {
			if ss[n].State != st {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("after %v: want %v, have %s", guard, want, a.States())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Wakes returns up to limit wakes, newest first. The history lives in the
// store, which is closed while the machine sleeps: a 503 then is retried.
func (a *Agent) Wakes(limit int) []wire.Wake {
	a.t.Helper()
	deadline := time.Now().Add(callTimeout)
	for {
		ctx, cancel := a.ctx()
		ws, err := a.Client.Wakes(ctx, limit)
		cancel()
		if err == nil {
			return ws
		}
		if !Unavailable(err) || time.Now().After(deadline) {
			a.t.Fatalf("GET /api/v1/wakes: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Unavailable reports whether err is the agent's 503 (store closed).
func Unavailable(err error) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable
}

// WaitWakeDone waits until wake id's restore has finished and returns it.
func (a *Agent) WaitWakeDone(guard time.Duration, id int64) wire.Wake {
	a.t.Helper()
	var w wire.Wake
	Eventually(a.t, guard, fmt.Sprintf("wake %d to finish", id), func() bool {
		ctx, cancel := a.ctx()
		defer cancel()
		var err error
		w, err = a.Client.WakeByID(ctx, id)
		if err != nil && !Unavailable(err) {
			a.t.Fatalf("GET /api/v1/wakes/%d: %v", id, err)
		}
		return err == nil && w.Done
	})
	return w
}

// WaitNewWake waits for a finished wake newer than afterID and returns the
// newest one.
func (a *Agent) WaitNewWake(guard time.Duration, afterID int64) wire.Wake {
	a.t.Helper()
	var got wire.Wake
	Eventually(a.t, guard, fmt.Sprintf("a finished wake after %d", afterID), func() bool {
		ws := a.Wakes(1)
		if len(ws) == 0 || ws[0].ID <= afterID || !ws[0].Done {
			return false
		}
		got = ws[0]
		return true
	})
	return got
}

// LastWakeID is the id of the newest wake, 0 when there is none.
func (a *Agent) LastWakeID() int64 {
	a.t.Helper()
	ws := a.Wakes(1)
	if len(ws) == 0 {
		return 0
	}
	return ws[0].ID
}

// Metric reads one sample from /metrics; series is the name with its
// labels as exposed, e.g. `rouse_wakes_total{detected_by="logind"}`. A
// missing series is 0.
func (a *Agent) Metric(series string) float64 {
	a.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: callTimeout}
	resp, err := hc.Get("http://" + a.Listen + "/metrics")
	if err != nil {
		a.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("read /metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				a.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// ComponentOf returns the named component's part of w.
func ComponentOf(w wire.Wake, name string) (wire.WakeComponent, bool) {
	for _, c := range w.Components {
		if c.Name == name {
			return c, true
		}
	}
	return wire.WakeComponent{}, false
}
