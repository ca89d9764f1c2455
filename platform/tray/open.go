package tray

import (
	"fmt"
	"os/exec"
)

// runOpener runs a browser opener and waits for it: openers hand the URL to
// the browser and exit, so waiting leaves no zombie behind.
func runOpener(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", cmd.Path, err, out)
	}
	return nil
}
