//go:build !linux

package netwatch

// newOSMon reports that this system has no change notification wired in
// yet: the watcher polls genericProbe every PollInterval instead.
func newOSMon() (osMon, error) { return nil, errPollOnly }
