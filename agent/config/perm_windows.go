//go:build windows

package config

// CheckPermissions does nothing on Windows: Unix mode bits do not describe
// who may write a file there, and the installer places the files in
// directories only administrators and the user can write.
func CheckPermissions(path string) error { return nil }
