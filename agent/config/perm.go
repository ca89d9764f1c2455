package config

import (
	"errors"

	"github.com/rouse-dev/rouse/internal/perm"
)

// CheckPermissions refuses a config file that someone other than the
// agent's user or root could change — the file or any directory above it,
// as sshd's StrictModes checks (see internal/perm) — because whoever can
// change the config can run commands as the agent's user. The error names
// the command that fixes it.
func CheckPermissions(path string) error {
	err := perm.File(path)
	if err == nil {
		return nil
	}
	var pe *perm.Error
	if errors.As(err, &pe) {
		return &FieldError{File: path, Err: err}
	}
	return err
}
