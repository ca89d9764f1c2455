package client

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/rouse-dev/rouse/internal/perm"
)

// DefaultListen is the agent's default address.
const DefaultListen = "127.0.0.1:8000"

// FromEnv returns a client of the local agent. listen and dataDir are what
// the caller resolved from its flags; when empty they fall back to
// ROUSE_LISTEN and ROUSE_DATA, then to 127.0.0.1:8000 and the user's data
// directory ($XDG_DATA_HOME/rouse, else ~/.local/share/rouse). The token
// is read from <data>/api-token, which the agent creates at first start and
// which must be private to its owner.
func FromEnv(listen, dataDir string) (*Client, error) {
	if listen == "" {
		listen = os.Getenv("ROUSE_LISTEN")
	}
	if listen == "" {
		listen = DefaultListen
	}
	if dataDir == "" {
		dataDir = os.Getenv("ROUSE_DATA")
	}
	if dataDir == "" {
		d, err := defaultDataDir()
		if err != nil {
			return nil, err
		}
		dataDir = d
	}
	base, err := baseURL(listen)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, "api-token")
	tok, err := readToken(path)
	if err != nil {
		return nil, err
	}
	return New(base, tok), nil
}

// baseURL turns a listen address into the URL to dial: a wildcard host
// (all interfaces) is reached on loopback.
func baseURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w (want host:port, e.g. %s)", listen, err, DefaultListen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func defaultDataDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "rouse"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the data directory: %w (set ROUSE_DATA or pass --data)", err)
	}
	return filepath.Join(home, ".local", "share", "rouse"), nil
}

// readToken reads the agent's token file. It refuses one that group or
// others can access, as the agent does.
func readToken(path string) (string, error) {
	_, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("no API token at %s: the agent creates it at first start; start it with \"rouse run\", or pass the --data directory it runs with", path)
		}
		if os.IsPermission(err) {
			return "", fmt.Errorf("cannot read the API token %s: %w (run as the agent's user, or with sudo for the system service)", path, err)
		}
		return "", fmt.Errorf("API token: %w", err)
	}
	if err := perm.Secret(path); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsPermission(err) {
			return "", fmt.Errorf("cannot read the API token %s: %w (run as the agent's user, or with sudo for the system service)", path, err)
		}
		return "", fmt.Errorf("API token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("API token %s is empty; delete it and restart the agent", path)
	}
	return tok, nil
}
