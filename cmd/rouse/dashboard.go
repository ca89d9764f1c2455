package main

import (
	"net/http"

	"github.com/rouse-dev/rouse/agent/dashboard"
)

// dashboardHandler is the page served at GET / (its data comes from the API with the tab's session).
func dashboardHandler() http.Handler { return dashboard.Handler() }
