// Package browser holds the tests that drive the dashboard in headless
// Chromium (chromedp). It is a module of its own so that the browser
// driver stays out of the product's go.mod; a replace directive points it
// at the main module in this repository.
package browser
