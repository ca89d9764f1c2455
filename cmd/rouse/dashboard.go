package main

import "net/http"

// dashboardHandler is the page served at GET /; nil serves the API's
// placeholder until the dashboard lands.
func dashboardHandler() http.Handler { return nil }
