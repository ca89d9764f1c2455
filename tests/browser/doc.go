// Package browser holds the tests that drive the dashboard in headless
// Chromium (chromedp): the dashboard's own tests against an in-process
// agent, and TestOnDemandInChromium against the built rouse binary
// (tests/internal/harness builds and starts it, as in tests/e2e). It is a
// module of its own so that the browser driver stays out of the product's
// go.mod; a replace directive points it at the main module in this
// repository.
package browser
