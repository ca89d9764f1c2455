package main

// browserCommand opens url with the default browser.
func browserCommand(url string) (string, []string) { return "open", []string{url} }
