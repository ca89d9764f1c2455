// Package promreg owns the one way rouse registers a Prometheus collector
// that may already be registered: a component rebuilt under the same name
// (a config reload) or a second scheduler on one registry shares the
// collector registered first instead of failing or counting apart.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it, or returns the collector of
// the same type already registered under the same descriptor. reg nil:
// c is returned unregistered (metrics are not exported). The error is any
// other registration failure; c is returned with it, usable but not
// exported.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
