// Command packaging builds rouse's Debian package:
//
//	cd packaging && go run . -version 1.2.3 -arch amd64 -out ../dist/
//
// It is a module of its own (a replace directive points it at the main
// module in this repository) so that nfpm and what it pulls in stay out of
// the product's go.mod.
//
// It compiles cmd/rouse for linux/<arch> (CGO off, -X main.version) and
// packs it with nfpm's deb packager together with the default config
// (/etc/rouse/rouse.yaml, a conffile), the systemd system and user units
// rendered by the installer package (the very units "rouse install"
// writes), and maintainer scripts that create the data directory and
// reload systemd but enable and start nothing.
package main

import (
	"embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/rouse-dev/rouse/agent/config"
	"github.com/rouse-dev/rouse/installer"
)

//go:embed scripts/postinst scripts/prerm scripts/postrm
var scripts embed.FS

// Options say what to build.
type Options struct {
	Version    string // package and binary version; a leading "v" is dropped
	Arch       string // Go architecture (amd64, arm64, ...)
	Out        string // output directory
	Maintainer string
	Binary     string // a prebuilt linux binary to pack instead of compiling one
}

func main() {
	var o Options
	flag.StringVar(&o.Version, "version", "", "version (required), e.g. 1.2.3")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "target architecture (Go name)")
	flag.StringVar(&o.Out, "out", "dist", "output directory")
	flag.StringVar(&o.Maintainer, "maintainer", "rouse developers <rouse-dev@users.noreply.github.com>", "Maintainer field")
	flag.StringVar(&o.Binary, "binary", "", "pack this prebuilt binary instead of building cmd/rouse")
	flag.Parse()
	path, err := Build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "packaging:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// Build compiles rouse (unless o.Binary is set) and writes the .deb into
// o.Out, returning its path.
func Build(o Options) (string, error) {
	o.Version = strings.TrimPrefix(o.Version, "v")
	if o.Version == "" || o.Version[0] < '0' || o.Version[0] > '9' {
		return "", fmt.Errorf("-version %q: a Debian version starts with a digit (e.g. 1.2.3)", o.Version)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", o.Out, err)
	}
	work, err := os.MkdirTemp("", "rouse-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	bin := o.Binary
	if bin == "" {
		bin = filepath.Join(work, "rouse")
		if err := compile(o, bin); err != nil {
			return "", err
		}
	}
	write := func(name string, data []byte, mode os.FileMode) (string, error) {
		p := filepath.Join(work, name)
		return p, os.WriteFile(p, data, mode)
	}
	conf, err := write("rouse.yaml", config.DefaultYAML, 0o644)
	if err != nil {
		return "", err
	}
	systemUnit, userUnit, err := Units()
	if err != nil {
		return "", err
	}
	sysPath, err := write("rouse.system.service", []byte(systemUnit), 0o644)
	if err != nil {
		return "", err
	}
	userPath, err := write("rouse.user.service", []byte(userUnit), 0o644)
	if err != nil {
		return "", err
	}
	sc := map[string]string{}
	for _, name := range []string{"postinst", "prerm", "postrm"} {
		b, err := scripts.ReadFile("scripts/" + name)
		if err != nil {
			return "", err
		}
		if sc[name], err = write(name, b, 0o755); err != nil {
			return "", err
		}
	}

	info := &nfpm.Info{
		Name:        "rouse",
		Arch:        o.Arch,
		Platform:    "linux",
		Version:     o.Version,
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  o.Maintainer,
		Homepage:    "https://github.com/rouse-dev/rouse",
		Description: "resilience agent: brings trackers, tunnels and jobs back after sleep\nrouse notices suspend and resume, reopens its store, and restores its\ncomponents concurrently under deadlines while its local REST API keeps\nanswering. The package installs the binary, a default configuration and\nsystemd units; it enables and starts nothing.",
		Overridables: nfpm.Overridables{
			Recommends: []string{"systemd"},
			Contents: files.Contents{
				{Source: bin, Destination: "/usr/bin/rouse", FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: conf, Destination: "/etc/rouse/rouse.yaml", Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Source: sysPath, Destination: "/lib/systemd/system/rouse.service", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Source: userPath, Destination: "/usr/lib/systemd/user/rouse.service", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
			},
			Scripts: nfpm.Scripts{PostInstall: sc["postinst"], PreRemove: sc["prerm"], PostRemove: sc["postrm"]},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("package contents: %w", err)
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	target := filepath.Join(o.Out, pkg.ConventionalFileName(info))
	f, err := os.Create(target)
	if err != nil {
		return "", err
	}
	info.Target = target
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(target)
		return "", fmt.Errorf("build the deb: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return target, nil
}

// Units renders the system and user units the package ships, for
// /usr/bin/rouse.
func Units() (system, user string, err error) {
	system, err = installer.Render(installer.SystemUnit, installer.Values{Path: "/usr/bin/rouse", Arguments: installer.SystemArguments})
	if err != nil {
		return "", "", err
	}
	user, err = installer.Render(installer.UserUnit, installer.Values{Path: "/usr/bin/rouse", Arguments: installer.UserArguments})
	return system, user, err
}

// compile builds cmd/rouse from the main module (the replace target).
func compile(o Options, out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+o.Version, "-o", out, "./cmd/rouse")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/rouse: %w\n%s", err, b)
	}
	return nil
}

// moduleRoot is the directory of the main module as this module's
// go.mod resolves it.
func moduleRoot() (string, error) {
	b, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/rouse-dev/rouse").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/rouse-dev/rouse (run this from inside the packaging module): %w", err)
	}
	dir := strings.TrimSpace(string(b))
	if dir == "" {
		return "", errors.New("the main module has no directory: run this from inside the packaging module")
	}
	return dir, nil
}
