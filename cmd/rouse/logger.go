package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
)

// newLogger builds a handler writing to w at level in format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	h, err := newHandler(w, level, format)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

func newHandler(w io.Writer, level, format string) (slog.Handler, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: want debug, info, warn or error, got %q", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.NewTextHandler(w, o), nil
	case "json":
		return slog.NewJSONHandler(w, o), nil
	}
	return nil, fmt.Errorf("log format: want text or json, got %q", format)
}

// switchHandler is a slog.Handler whose destination handler can be
// replaced while loggers derived from it (With, WithGroup) are in use:
// `rouse run` logs from boot step 0, before the config that sets the
// level and format is read, and switches once it is.
type switchHandler struct {
	cur *atomic.Pointer[slog.Handler] // shared by every derived handler
	ops []func(slog.Handler) slog.Handler
	// cache is the current handler with ops applied, for one generation.
	cache atomic.Pointer[derived]
}

type derived struct {
	base slog.Handler
	h    slog.Handler
}

func newSwitchHandler(h slog.Handler) *switchHandler {
	cur := &atomic.Pointer[slog.Handler]{}
	cur.Store(&h)
	return &switchHandler{cur: cur}
}

// Switch sends every logger derived from s to h from now on.
func (s *switchHandler) Switch(h slog.Handler) { s.cur.Store(&h) }

func (s *switchHandler) handler() slog.Handler {
	base := *s.cur.Load()
	if len(s.ops) == 0 {
		return base
	}
	if d := s.cache.Load(); d != nil && d.base == base {
		return d.h
	}
	h := base
	for _, op := range s.ops {
		h = op(h)
	}
	s.cache.Store(&derived{base: base, h: h})
	return h
}

func (s *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.handler().Enabled(ctx, l)
}

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.handler().Handle(ctx, r)
}

func (s *switchHandler) with(op func(slog.Handler) slog.Handler) *switchHandler {
	ops := append(s.ops[:len(s.ops):len(s.ops)], op)
	return &switchHandler{cur: s.cur, ops: ops}
}

func (s *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (s *switchHandler) WithGroup(name string) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}
