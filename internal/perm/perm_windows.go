//go:build windows

package perm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// File does nothing on Windows: ACLs, not mode bits, say who may write.
func File(path string) error { return nil }

// Secret does nothing on Windows, as File.
func Secret(path string) error { return nil }

// Owned does nothing on Windows, as File.
func Owned(path string, fi fs.FileInfo) error { return nil }

// Dir creates path when it does not exist; the user's profile ACL protects it.
func Dir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// CreateFile creates path when it does not exist.
func CreateFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return fmt.Errorf("create %s: %w", path, err)
}

// CheckDir does nothing on Windows, as File.
func CheckDir(path string) error { return nil }
