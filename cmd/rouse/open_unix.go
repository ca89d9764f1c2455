//go:build !windows && !darwin

package main

// browserCommand opens url with the desktop's default browser.
func browserCommand(url string) (string, []string) { return "xdg-open", []string{url} }
