package tray

import "os/exec"

// openURL opens url in the user's browser.
func openURL(url string) error { return runOpener(exec.Command("open", url)) }
