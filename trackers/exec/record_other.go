//go:build !linux

package exec

import "log/slog"

// groupRecord is Linux-only: elsewhere nothing is persisted, and a group
// left behind by a killed agent is not swept at the next start.
type groupRecord struct{}

func recordGroup(string, int, string) (*groupRecord, error) { return nil, nil }
func dropRecord(string, *groupRecord)                       {}
func sweepStale(string, *slog.Logger)                       {}
