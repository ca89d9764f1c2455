//go:build !windows

package client

import (
	"fmt"
	"io/fs"
)

// checkPrivate refuses a token file that group or others may access.
func checkPrivate(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("API token %s is accessible by group or others (mode %#o); run: chmod 600 %s", path, perm, path)
	}
	return nil
}
