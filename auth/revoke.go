package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RevokedFile is the name of the revocation list inside the data directory.
const RevokedFile = "revoked-tokens"

// Revocations is the list of revoked token ids kept in <data-dir>/revoked-tokens: one line
// per token, `<jti> <expiry RFC 3339> <subject>`, written by `urbanbrain token revoke`. A
// running server re-reads the file when it changes (looked at most once per second), so a
// revocation takes effect within a second without a restart. Several instances each read
// their own data directory: copy the file to every one, as the key is copied.
type Revocations struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	checked time.Time
	modTime time.Time
	size    int64
	ids     map[string]bool
	err     error
}

// NewRevocations reads the revocation list of dataDir (a missing file is an empty list).
func NewRevocations(dataDir string) (*Revocations, error) {
	r := &Revocations{path: filepath.Join(dataDir, RevokedFile), now: time.Now, ids: map[string]bool{}}
	if err := r.reload(); err != nil {
		return nil, err
	}
	r.checked = r.now()
	return r, nil
}

// Revoked reports whether jti is on the list. If the file became unreadable since the last
// good read, every token is refused: failing open would undo revocations.
func (r *Revocations) Revoked(jti string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		r.err = r.reload()
	}
	return r.err != nil || r.ids[jti]
}

// reload reads the file if it changed; the caller holds mu (or owns r).
func (r *Revocations) reload() error {
	st, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		r.ids, r.modTime, r.size = map[string]bool{}, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if st.ModTime().Equal(r.modTime) && st.Size() == r.size {
		return nil
	}
	entries, err := readRevocations(r.path)
	if err != nil {
		return err
	}
	ids := make(map[string]bool, len(entries))
	for _, e := range entries {
		ids[e.id] = true
	}
	r.ids, r.modTime, r.size = ids, st.ModTime(), st.Size()
	return nil
}

type revocation struct {
	id      string
	expires time.Time
	line    string
}

func readRevocations(path string) ([]revocation, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	var out []revocation
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		e := revocation{id: f[0], line: line}
		if len(f) > 1 {
			if e.expires, err = time.Parse(time.RFC3339, f[1]); err != nil {
				return nil, fmt.Errorf("revocation list %s line %d: expiry: %w", path, n, err)
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Revoke adds the token (a whole token, or its id) to dataDir's revocation list and drops
// entries whose tokens have expired anyway. A whole token must be signed by iss (expired
// ones are accepted: revoking them is harmless); with a bare id the expiry is unknown and the
// entry is kept for good. It returns the revoked id.
func Revoke(dataDir string, iss *Issuer, tokenOrID string) (string, error) {
	e, err := revocationOf(iss, strings.TrimSpace(tokenOrID))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, RevokedFile)
	entries, err := readRevocations(path)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# urbanbrain revoked tokens: <jti> <expires> <subject>; written by `urbanbrain token revoke`\n")
	now := time.Now()
	for _, old := range entries {
		if old.id == e.id || (!old.expires.IsZero() && old.expires.Before(now)) {
			continue
		}
		b.WriteString(old.line + "\n")
	}
	b.WriteString(e.line + "\n")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("revocation list: %w", err)
	}
	tmp, err := os.CreateTemp(dataDir, RevokedFile+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("revocation list: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("revocation list: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("revocation list: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("revocation list: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("revocation list: %w", err)
	}
	return e.id, nil
}

func revocationOf(iss *Issuer, s string) (revocation, error) {
	if s == "" {
		return revocation{}, errors.New("revoke: empty token id")
	}
	if strings.Count(s, ".") != 2 {
		if strings.ContainsAny(s, " \t\n#") {
			return revocation{}, fmt.Errorf("revoke: %q is not a token id", s)
		}
		return revocation{id: s, line: s}, nil
	}
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(s, &jc, func(*jwt.Token) (any, error) { return iss.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(iss.issuer))
	if err != nil && !errors.Is(err, jwt.ErrTokenExpired) {
		return revocation{}, fmt.Errorf("revoke: not a token of this instance: %w", err)
	}
	if jc.ID == "" {
		return revocation{}, errors.New("revoke: the token has no id (jti); it is refused anyway")
	}
	e := revocation{id: jc.ID, line: jc.ID}
	if jc.ExpiresAt != nil {
		e.expires = jc.ExpiresAt.UTC()
		e.line += " " + e.expires.Format(time.RFC3339)
		if jc.Subject != "" && !strings.ContainsAny(jc.Subject, " \t\n") {
			e.line += " " + jc.Subject
		}
	}
	return e, nil
}
