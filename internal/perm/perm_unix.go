//go:build !windows

package perm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File checks a file the agent trusts (its config): a regular file owned by
// the agent's user or root, not writable by group or others, in directories
// that pass the same test up to $HOME or /. A symlink is followed: the link's
// own directories and the target's are both checked.
func File(path string) error { return check(path, false) }

// Secret is File for a file that must also not be readable by group or
// others (the API token).
func Secret(path string) error { return check(path, true) }

// Owned checks only who owns fi, as read from path: the agent's user or
// root. It is for records the agent wrote itself into a directory already
// checked with Dir, where a file planted by someone else must be ignored.
func Owned(path string, fi fs.FileInfo) error {
	uid, ok := owner(fi)
	if !ok || uid == euid() || uid == 0 {
		return nil
	}
	return ownerError(path, uid)
}

// Dir creates path (and missing parents) with mode 0700 when it does not
// exist, then checks it: owned by the agent's user or root, no access at
// all for group or others, and its parents as File checks them. A looser
// directory is refused with the chmod that fixes it; the agent does not
// change an existing directory's mode behind the user's back.
func Dir(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", abs, err)
	}
	return CheckDir(abs)
}

// CheckDir is Dir without creating the directory.
func CheckDir(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("check %s: %w", abs, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("check %s: %w", real, err)
	}
	if !fi.IsDir() {
		return &Error{Path: real, Problem: "is not a directory"}
	}
	if uid, ok := owner(fi); ok && uid != euid() && uid != 0 {
		return ownerError(real, uid)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return &Error{Path: real, Problem: fmt.Sprintf("is open to %s (mode %04o): others can look into the agent's data", who(m, 0o077), uint32(m)),
			Fix: "chmod 700 " + quote(real)}
	}
	if real != abs {
		if err := parents(abs); err != nil {
			return err
		}
	}
	return parents(real)
}

// CreateFile makes sure path exists as a private file: it creates it 0600
// when missing; an existing one must be owned by the agent's user or root,
// and is narrowed to 0600 when group or others could read it (the agent's
// own file, written by an older version with a looser mode).
func CreateFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return &Error{Path: path, Problem: "is not a regular file", Fix: "rm " + quote(path)}
	}
	if err := Owned(path, fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("narrow %s to mode 0600: %w", path, err)
		}
	}
	return nil
}

func check(path string, secret bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return &Error{Path: real, Problem: "is not a regular file"}
	}
	if err := Owned(real, fi); err != nil {
		return err
	}
	m := fi.Mode().Perm()
	if secret && m&0o077 != 0 {
		return &Error{Path: real, Problem: fmt.Sprintf("is accessible by %s (mode %04o)", who(m, 0o077), uint32(m)),
			Fix: "chmod 600 " + quote(real)}
	}
	if m&0o022 != 0 {
		return &Error{Path: real, Problem: fmt.Sprintf("is writable by %s (mode %04o)", who(m, 0o022), uint32(m)),
			Fix: "chmod go-w " + quote(real)}
	}
	if real != abs {
		// Whoever can write the link's directories can point it elsewhere.
		if err := parents(abs); err != nil {
			return err
		}
	}
	return parents(real)
}

// parents checks every directory above the absolute path p, stopping after
// $HOME when p is under it, else at /.
func parents(p string) error {
	home := homeDir()
	child := p
	for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("check %s: %w", dir, err)
		}
		uid, ok := owner(fi)
		if ok && uid != euid() && uid != 0 {
			return ownerError(dir, uid)
		}
		if m := fi.Mode(); m.Perm()&0o022 != 0 && !(m&fs.ModeSticky != 0 && ownedByUs(child)) {
			return &Error{Path: dir, Problem: fmt.Sprintf("is writable by %s (mode %04o), so they could replace %s",
				who(m.Perm(), 0o022), uint32(m.Perm()), p), Fix: "chmod go-w " + quote(dir)}
		}
		if dir == home || dir == filepath.Dir(dir) {
			return nil
		}
		child = dir
	}
}

// ownedByUs: the entry is owned by the agent's user or root, so a sticky
// directory above it protects it from being renamed or removed by others.
func ownedByUs(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil {
		return false
	}
	uid, ok := owner(fi)
	return ok && (uid == euid() || uid == 0)
}

func homeDir() string {
	h := os.Getenv("HOME")
	if h == "" || !filepath.IsAbs(h) {
		return ""
	}
	if r, err := filepath.EvalSymlinks(h); err == nil {
		return r
	}
	return filepath.Clean(h)
}

func owner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// euid is a variable so that tests can pretend to be another user.
var euid = func() uint32 { return uint32(os.Geteuid()) }

func ownerError(path string, uid uint32) error {
	me := euid()
	want := "root or " + userName(me) + " (the agent's user)"
	if me == 0 {
		want = "root (the agent's user)"
	}
	fix := "chown " + userName(me) + " " + quote(path)
	if me != 0 {
		fix = "sudo " + fix
	}
	return &Error{Path: path, Problem: fmt.Sprintf("is owned by %s, not by %s", userName(uid), want), Fix: fix}
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username
	}
	return id
}

func who(m fs.FileMode, mask fs.FileMode) string {
	var w []string
	if m&mask&0o070 != 0 {
		w = append(w, "group")
	}
	if m&mask&0o007 != 0 {
		w = append(w, "others")
	}
	return strings.Join(w, " and ")
}

// quote makes p safe to paste into a shell.
func quote(p string) string {
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+@%:,") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
