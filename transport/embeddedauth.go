package transport

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// trustOwnCertificate is the client TLS configuration of the process's own connections to
// the embedded broker: it trusts exactly the broker's first certificate, for the host of
// listen, and nothing else.
func trustOwnCertificate(server *tls.Config, listen string) (*tls.Config, error) {
	if len(server.Certificates) == 0 || len(server.Certificates[0].Certificate) == 0 {
		return nil, errors.New("embedded: TLS without a server certificate")
	}
	leaf, err := x509.ParseCertificate(server.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("embedded: TLS certificate: %w", err)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded: listen %q: %w", listen, err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return nil, fmt.Errorf("embedded: the TLS certificate does not name the listen host: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: host}, nil
}

// prepareDataDir makes the broker's directory its owner's only, and drops the SASL users kfake
// persisted on an earlier run: on load they would replace the configured user, and a run
// without SASL persists none at all, which would lock every client out.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("embedded: data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("embedded: data dir: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, "sasl.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("embedded: stale SASL users: %w", err)
	}
	return nil
}

// loadOrCreatePassword returns the embedded broker's SASL password: the one in file (default
// <dataDir>/client.secret) if it exists, else a new random one written there with mode 0600.
// With neither a file nor a data dir it is random and in memory only.
func loadOrCreatePassword(file, dataDir string, log *zap.Logger) (string, error) {
	if file == "" && dataDir != "" {
		file = filepath.Join(dataDir, "client.secret")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			pass := strings.TrimSpace(string(b))
			if pass == "" {
				return "", fmt.Errorf("embedded: password file %s is empty (delete it to have a new password generated)", file)
			}
			if st, err := os.Stat(file); err == nil && st.Mode().Perm()&0o077 != 0 {
				if err := os.Chmod(file, 0o600); err != nil {
					return "", fmt.Errorf("embedded: password file %s is readable by others: %w", file, err)
				}
				log.Warn("password file was readable by others; made it 0600", zap.String("file", file))
			}
			return pass, nil
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("embedded: password file: %w", err)
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("embedded: password: %w", err)
	}
	pass := base64.RawURLEncoding.EncodeToString(raw)
	if file == "" {
		return pass, nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("embedded: password file: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("embedded: password file: %w", err)
	}
	_, werr := f.WriteString(pass + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(file)
		return "", fmt.Errorf("embedded: password file: %w", err)
	}
	log.Info("generated the embedded broker's SASL password", zap.String("user", EmbeddedUser), zap.String("file", file))
	return pass, nil
}
