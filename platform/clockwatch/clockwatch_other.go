//go:build !linux

package clockwatch

import "context"

// runOS: no change notification on this OS; Run polls.
func (w *Watcher) runOS(ctx context.Context) error {
	return errUnsupported
}
