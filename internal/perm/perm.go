// Package perm owns the one check of who can change the files the agent
// trusts: its config, its API token, its data directory and what is in it.
//
// The rule is sshd's StrictModes: a trusted file, and every directory above
// it up to the user's home directory (or up to / when the file is not under
// it), must be owned by the agent's user or by root and must not be writable
// by group or others — otherwise someone else could change the file, or swap
// it by renaming an entry in a directory they can write, and have the agent
// run commands as its user. A secret (the API token) and the data directory
// must also not be readable by group or others.
//
// One refinement over sshd: a directory that has the sticky bit (such as
// /tmp) and is owned by root or the agent's user is accepted although
// others may write it, because the sticky bit lets only an entry's owner
// rename or remove it, and the entry below is itself checked to be owned by
// the agent's user or root.
//
// Every error is an *Error that says what to run to fix it and matches
// ErrInsecure with errors.Is. On Windows the checks do nothing: mode bits do
// not say who may write a file there, ACLs do.
package perm

import (
	"errors"
	"strings"
)

// ErrInsecure is what every refusal of this package matches.
var ErrInsecure = errors.New("insecure permissions")

// Error is one refusal: which path, what is wrong, and the command that
// fixes it.
type Error struct {
	Path    string // the path refused: the file or one of its directories
	Problem string // e.g. "is writable by group and others (mode 0777)"
	Fix     string // a shell command, e.g. "chmod go-w /etc/rouse"
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	b.WriteByte(' ')
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString("; run: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInsecure) true.
func (e *Error) Is(target error) bool { return target == ErrInsecure }
