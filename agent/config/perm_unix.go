//go:build !windows

package config

import (
	"fmt"
	"os"
	"strings"
)

// CheckPermissions refuses a file that is writable by group or others, as
// sshd does for its keys: such a file could be changed by someone else to
// run commands as the agent's user. The agent uses it for the config file
// and the API token file.
func CheckPermissions(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check permissions: %w", err)
	}
	mode := fi.Mode().Perm()
	var who []string
	if mode&0o020 != 0 {
		who = append(who, "group")
	}
	if mode&0o002 != 0 {
		who = append(who, "others")
	}
	if len(who) == 0 {
		return nil
	}
	return &FieldError{File: path, Err: wrapf(ErrPermissions, "mode %04o is writable by %s; run chmod go-w %s",
		uint32(mode), strings.Join(who, " and "), path)}
}
