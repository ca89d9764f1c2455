package client

import (
	"cmp"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/rouse-dev/rouse/internal/perm"
	"github.com/rouse-dev/rouse/wire"
)

// FromEnv returns a client of the local agent. listen and dataDir are what
// the caller resolved from its flags and config; when empty they are
// resolved as Listen and DataDir do. The token is read from
// <data>/api-token, which the agent creates at first start and which must
// be private to its owner.
func FromEnv(listen, dataDir string) (*Client, error) {
	listen = Listen(listen, "")
	dataDir, err := DataDir(dataDir, "")
	if err != nil {
		return nil, err
	}
	base, err := baseURL(listen)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, wire.TokenFile)
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
		return "", fmt.Errorf("listen address %q: %w (want host:port, e.g. %s)", listen, err, wire.DefaultListen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// Listen resolves the API address, as the agent (rouse run) and every
// client do: listen when set (--listen), else $ROUSE_LISTEN, else
// fromConfig (the config's listen key), else wire.DefaultListen.
func Listen(listen, fromConfig string) string {
	return cmp.Or(listen, os.Getenv("ROUSE_LISTEN"), fromConfig, wire.DefaultListen)
}

// DataDir resolves the data directory, as the agent (rouse run) and every
// client do, so that they meet in the same one: dir when set (--data),
// else $ROUSE_DATA, else fromConfig (the config's data key), else
// $XDG_DATA_HOME/rouse, else ~/.local/share/rouse.
func DataDir(dir, fromConfig string) (string, error) {
	if d := cmp.Or(dir, os.Getenv("ROUSE_DATA"), fromConfig); d != "" {
		return d, nil
	}
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
