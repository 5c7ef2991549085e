package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the name of the signing key's file inside the data directory.
const KeyFile = "auth.key"

// KeySize is the length of a generated signing key, and the least Issuer accepts.
const KeySize = 32

// LoadOrCreateKey returns the token signing key kept in <dataDir>/auth.key, creating a random
// one (mode 0600) on first use. The file holds the key hex-encoded on one line, so it can be
// copied into a secret store; several instances that share the key accept each other's
// tokens.
//
// Creation is race-free: the key is written to a temporary file and linked into place, so two
// processes starting together on one data directory end up with the same key.
func LoadOrCreateKey(dataDir string) ([]byte, error) {
	if dataDir == "" {
		return nil, errors.New("auth key: data directory is empty")
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth key: %w", err)
	}
	if err := createKey(dataDir, path); err != nil {
		return nil, err
	}
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("auth key %s: not hex: %w", path, err)
	}
	if len(key) < KeySize {
		return nil, fmt.Errorf("auth key %s: %d bytes, want at least %d", path, len(key), KeySize)
	}
	return key, nil
}

// createKey writes a fresh key to path unless another process got there first.
func createKey(dir, path string) error {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("auth key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, KeyFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("auth key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod makes that independent of its implementation.
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("auth key: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("auth key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("auth key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth key: %w", err)
	}
	// Link fails if the key exists: the first writer wins and nobody sees a half-written file.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("auth key: %w", err)
	}
	return nil
}
