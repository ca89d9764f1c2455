package main

import (
	"net/http"

	"github.com/rouse-dev/rouse/agent/dashboard"
)

// dashboardHandler is the page served at GET / (behind the session cookie).
func dashboardHandler() http.Handler { return dashboard.Handler() }
