package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rouse-dev/rouse/internal/perm"
	"github.com/rouse-dev/rouse/wire"
)

// LoadOrCreateToken returns the API token kept in <dataDir>/api-token,
// creating it (32 random bytes, hex; file 0600 in a 0700 directory) at
// first start. Like sshd, it refuses a token file that group or others can
// read or write, and says how to fix it.
func LoadOrCreateToken(dataDir string) (string, error) {
	if dataDir == "" {
		return "", errors.New("api token: empty data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("api token: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, wire.TokenFile)
	tok, err := ReadToken(path)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	// Write a temporary file, then link it into place: the token file
	// appears whole or not at all, and a concurrent first start wins once.
	tmp, err := os.CreateTemp(dataDir, ".api-token-*")
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	defer os.Remove(tmp.Name())
	tok = randomHex(32)
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("api token: %w", err)
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("api token: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("api token: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ReadToken(path) // someone else created it first
		}
		return "", fmt.Errorf("api token: create %s: %w", path, err)
	}
	return tok, nil
}

// ReadToken reads and checks an existing token file: private to its owner,
// 64 hex digits.
func ReadToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("api token: %s is not a regular file", path)
	}
	if err := perm.Secret(path); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(tok); err != nil || len(tok) < 32 {
		return "", fmt.Errorf("api token: %s is malformed (want a hex token of at least 32 digits, as created: 64); delete it and restart the agent to create a new one", path)
	}
	return tok, nil
}
