package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rouse-dev/rouse/wire"
)

// drainBody reads a POST body (already limited to maxBodyBytes). No route
// takes parameters in the body today; a non-empty one must still be JSON.
func drainBody(r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) > 0 && !json.Valid(body) {
		return errf(http.StatusBadRequest, wire.CodeBadRequest, "request body is not valid JSON")
	}
	return nil
}

// intParam reads an integer query parameter in [lo, hi], def when absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badParam(name, "an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi), v)
	}
	return n, nil
}

func (s *Server) getHealthz(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "alive", "version": s.o.Version})
	return nil
}

func (s *Server) getReadyz(w http.ResponseWriter, r *http.Request) error {
	// No token needed: names and states only. A token (or session) shown
	// must be right, and then the reasons carry their errors.
	detail := false
	if hasCredentials(r) {
		if _, err := s.authenticate(r); err != nil {
			return err
		}
		detail = true
	}
	rd := s.b.Ready(r.Context(), detail)
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	s.writeJSON(w, status, rd)
	return nil
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	if sn, ok := s.b.(Snapshotter); ok {
		if gz, ok := s.b.(GzipSnapshotter); ok && acceptsGzip(r) {
			if b := gz.HealthGzip(r.Context()); b != nil {
				writeRawJSON(w, b, true)
				return nil
			}
		}
		writeRawJSON(w, sn.HealthJSON(r.Context()), false)
		return nil
	}
	h := s.b.Health(r.Context())
	if h.Version == "" {
		h.Version = s.o.Version
	}
	if h.Components == nil {
		h.Components = []wire.Service{}
	}
	s.writeJSON(w, http.StatusOK, h)
	return nil
}

func (s *Server) getServices(w http.ResponseWriter, r *http.Request) error {
	if sn, ok := s.b.(Snapshotter); ok {
		if gz, ok := s.b.(GzipSnapshotter); ok && acceptsGzip(r) {
			if b := gz.ServicesGzip(r.Context()); b != nil {
				writeRawJSON(w, b, true)
				return nil
			}
		}
		writeRawJSON(w, sn.ServicesJSON(r.Context()), false)
		return nil
	}
	list := s.b.Services(r.Context())
	if list == nil {
		list = []wire.Service{}
	}
	s.writeJSON(w, http.StatusOK, wire.Services{Services: list})
	return nil
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) error {
	svc, err := s.b.Service(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, svc)
	return nil
}

// postAction is start, stop or restart: 200, or 202 when the component's
// deadline passed first and it goes on in the background.
func (s *Server) postAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		var status string
		var err error
		switch action {
		case "start":
			dry, perr := dryRun(r)
			if perr != nil {
				return perr
			}
			if dry {
				return s.startPlan(w, r, name)
			}
			status, err = s.b.Start(r.Context(), name)
		case "stop":
			status, err = s.b.Stop(r.Context(), name)
		default:
			status, err = s.b.Restart(r.Context(), name)
		}
		if err != nil {
			return err
		}
		res := wire.ActionResult{Status: status}
		if svc, err := s.b.Service(r.Context(), name); err == nil {
			res.State = svc.State
		}
		code := http.StatusOK
		if status == wire.ActionStartedWithTimeout {
			code = http.StatusAccepted
		}
		s.writeJSON(w, code, res)
		return nil
	}
}

// dryRun reads the dry_run query parameter.
func dryRun(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("dry_run")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badParam("dry_run", "true or false", v)
	}
	return b, nil
}

// startPlan is POST /api/v1/services/{name}/start?dry_run=true.
func (s *Server) startPlan(w http.ResponseWriter, r *http.Request, name string) error {
	cb, ok := s.b.(ChainBackend)
	if !ok {
		return Errorf(ErrNotFound, "this agent plans no chains")
	}
	p, err := cb.StartPlan(r.Context(), name)
	if err != nil {
		return err
	}
	if p.Components == nil {
		p.Components = []wire.PlanStep{}
	}
	s.writeJSON(w, http.StatusOK, p)
	return nil
}

// getChain is GET /api/v1/services/{name}/chain.
func (s *Server) getChain(w http.ResponseWriter, r *http.Request) error {
	cb, ok := s.b.(ChainBackend)
	if !ok {
		return Errorf(ErrNotFound, "no component starts on demand here")
	}
	c, err := cb.ChainView(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) postWake(w http.ResponseWriter, r *http.Request) error {
	dry, err := dryRun(r)
	if err != nil {
		return err
	}
	if dry {
		p, err := s.b.WakePlan(r.Context())
		if err != nil {
			return err
		}
		if p.Components == nil {
			p.Components = []wire.PlanStep{}
		}
		s.writeJSON(w, http.StatusOK, p)
		return nil
	}
	wk, err := s.b.Wake(r.Context())
	if err != nil {
		return err
	}
	if wk.ID > 0 {
		w.Header().Set("Location", "/api/v1/wakes/"+strconv.FormatInt(wk.ID, 10))
	}
	s.writeJSON(w, http.StatusAccepted, wk)
	return nil
}

func (s *Server) getWake(w http.ResponseWriter, r *http.Request) error {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return badParam("id", "a positive integer", v)
	}
	wk, err := s.b.WakeByID(r.Context(), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, wk)
	return nil
}

// validSince accepts what ItemQuery.Since documents: RFC 3339 or Unix seconds.
func validSince(v string) bool {
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return true
	}
	_, err := strconv.ParseInt(v, 10, 64)
	return err == nil
}

func (s *Server) getJobs(w http.ResponseWriter, r *http.Request) error {
	list, err := s.b.Jobs(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []wire.Job{}
	}
	s.writeJSON(w, http.StatusOK, wire.Jobs{Jobs: list})
	return nil
}

// RunResult is the body of POST /api/v1/jobs/{name}/run.
type RunResult = wire.RunResult

func (s *Server) postRunJob(w http.ResponseWriter, r *http.Request) error {
	run, err := s.b.RunJob(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusAccepted, RunResult{Status: run.Result, Run: run})
	return nil
}
