//go:build !windows

package api

import (
	"fmt"
	"io/fs"
)

// checkPrivate refuses a secret file that group or others may read or
// write, as sshd does.
func checkPrivate(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("api token: %s is accessible by group or others (mode %#o); run: chmod 600 %s", path, perm, path)
	}
	return nil
}
