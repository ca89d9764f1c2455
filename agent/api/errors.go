package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/rouse-dev/rouse/wire"
)

// apiError is an error that knows its status and wire code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

// errf builds an apiError.
func errf(status int, code, format string, args ...any) error {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// badParam is a 400 naming the parameter.
func badParam(name, want, got string) error {
	return errf(http.StatusBadRequest, wire.CodeBadRequest, "parameter %s: must be %s, got %q", name, want, got)
}

// classify maps any error to status, code and the message a client sees.
// Only errors the server made itself or the Backend's sentinels carry their
// text; anything else is a generic 500.
func classify(err error) (int, string, string) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code, ae.message
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, wire.CodeBadRequest, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, wire.CodeNotFound, err.Error()
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, wire.CodeBadRequest, err.Error()
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, wire.CodeConflict, err.Error()
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, wire.CodeUnavailable, "the request was cancelled (the agent is shutting down or the client went away)"
	}
	return http.StatusInternalServerError, wire.CodeInternal, "internal error (details are in the agent's log)"
}

// writeError is the one function that renders an error response.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := classify(err)
	if status >= 500 && status != http.StatusServiceUnavailable {
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("api request refused", "method", r.Method, "path", r.URL.Path, "status", status, "code", code, "err", err)
	}
	s.writeJSON(w, status, wire.Error{Error: wire.ErrorBody{Code: code, Message: msg}})
}

// writeJSON writes v as the JSON response body.
// writeRawJSON writes a 200 with body, JSON rendered beforehand (gzipped
// when gz).
func writeRawJSON(w http.ResponseWriter, body []byte, gz bool) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Vary", "Accept-Encoding")
	if gz {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.Error("api response not encodable", "type", fmt.Sprintf("%T", v), "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"internal error (details are in the agent's log)"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (a q=0 refusal counts as no).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
