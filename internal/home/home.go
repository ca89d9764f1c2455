// Package home owns one small rule every part of rouse shares: a path that
// starts with "~" (alone or "~/…") means the user's home directory.
// "~user" forms are not expanded.
package home

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Expand replaces a leading "~" or "~/" in p with the home directory. Other
// paths come back as they are. It fails only when p needs the home
// directory and there is none ($HOME unset).
func Expand(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %q: %w", p, err)
	}
	return filepath.Join(dir, p[1:]), nil
}
