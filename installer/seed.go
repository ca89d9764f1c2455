//go:build linux || windows

package installer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rouse-dev/rouse/agent/config"
)

// seedConfig writes the default config to path when no file is there; an
// existing file (the user's) is never touched.
func seedConfig(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the config directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the default config: %w", err)
	}
	if _, err := f.Write(config.DefaultYAML); err != nil {
		f.Close()
		return fmt.Errorf("write the default config: %w", err)
	}
	return f.Close()
}
