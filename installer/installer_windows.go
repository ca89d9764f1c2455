package installer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kardianos/service"
)

// checkFlavour refuses --user: Windows services are system-wide.
func checkFlavour(o *Options) error {
	if o.User {
		return errors.New("per-user services do not exist on Windows: run \"rouse install\" (without --user) from an elevated prompt")
	}
	return nil
}

func checkPlatform(s service.System) error {
	if s == nil {
		return errors.New("no service manager found")
	}
	return nil
}

// dataRoot is %ProgramData%\rouse: the service's config and data.
func dataRoot() string {
	base := os.Getenv("ProgramData")
	if base == "" {
		base = `C:\ProgramData`
	}
	return filepath.Join(base, "rouse")
}

func configure(_ Options, c *service.Config) error {
	root := dataRoot()
	c.Arguments = []string{"run", "--config", filepath.Join(root, "rouse.yaml"), "--data", filepath.Join(root, "data")}
	c.Option["StartType"] = "automatic"
	c.Option["OnFailure"] = "restart"
	c.Option["OnFailureDelayDuration"] = "2s"
	return nil
}

// serviceFile is "": the service control manager keeps no file.
func serviceFile(Options) (string, error) { return "", nil }

func preflight(Options) error { return nil }

// prepare seeds the default config the service reads.
func prepare(Options) error {
	return seedConfig(filepath.Join(dataRoot(), "rouse.yaml"))
}

func hints(_ Options, w io.Writer) {
	fmt.Fprintf(w, "config: %s\n", filepath.Join(dataRoot(), "rouse.yaml"))
}
