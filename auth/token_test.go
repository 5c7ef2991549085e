package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

const testIssuer = "urbanbrain"

func TestIssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	for _, c := range []auth.Claims{
		{Subject: "op-1", Role: auth.RoleOperator, District: "330106"},
		{Subject: "w-7", Role: auth.RoleWorker, Grids: []string{"G-01", "G-02"}},
		{Subject: "root", Role: auth.RoleAdmin},
	} {
		tok, err := iss.Issue(c, time.Hour)
		if err != nil {
			t.Fatalf("Issue(%+v): %v", c, err)
		}
		got, err := iss.Verify(tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if len(got.ID) < 20 {
			t.Errorf("token id %q: want a random id", got.ID)
		}
		got.ID = ""
		if !reflect.DeepEqual(got, c) {
			t.Errorf("Verify = %+v, want %+v", got, c)
		}
	}
}

func TestVerifyExpired(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	now := time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)
	iss.SetClock(func() time.Time { return now })
	tok, err := iss.Issue(auth.Claims{Subject: "op-1", Role: auth.RoleOperator}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if _, err := iss.Verify(tok); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	now = now.Add(2 * time.Second)
	_, err = iss.Verify(tok)
	if !errors.Is(err, auth.ErrTokenExpired) || errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("after expiry: err = %v, want ErrTokenExpired only", err)
	}
}

// forge builds a token by hand, so the tests do not depend on the library refusing to make
// the bad tokens they check.
func forge(header, payload map[string]any, sign func(string) []byte) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	s := enc(header) + "." + enc(payload)
	var sig []byte
	if sign != nil {
		sig = sign(s)
	}
	return s + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hmacWith(h func() hash.Hash, key []byte) func(string) []byte {
	return func(s string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	good, err := iss.Issue(auth.Claims{Subject: "op-1", Role: auth.RoleOperator}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := auth.NewIssuer([]byte("another-key-another-key-another-k"), testIssuer)
	wrongKey, _ := other.Issue(auth.Claims{Subject: "op-1", Role: auth.RoleOperator}, time.Hour)
	wrongIss, _ := auth.NewIssuer(testKey, "someone-else").Issue(auth.Claims{Subject: "op-1", Role: auth.RoleOperator}, time.Hour)

	iat := time.Now().Unix()
	exp := time.Now().Add(time.Hour).Unix()
	payload := map[string]any{"sub": "op-1", "role": "admin", "iss": testIssuer, "exp": exp, "iat": iat, "jti": "j-1"}
	without := func(k string) map[string]any {
		p := maps.Clone(payload)
		delete(p, k)
		return p
	}
	with := func(k string, v any) map[string]any {
		p := maps.Clone(payload)
		p[k] = v
		return p
	}
	hs256 := map[string]any{"alg": "HS256", "typ": "JWT"}

	// Tampered: the payload of a valid operator token swapped for an admin one.
	parts := strings.Split(good, ".")
	adminPayload, _ := json.Marshal(payload)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(adminPayload) + "." + parts[2]

	cases := map[string]string{
		"empty":         "",
		"garbage":       "not-a-token",
		"wrong key":     wrongKey,
		"wrong issuer":  wrongIss,
		"tampered":      tampered,
		"alg none":      forge(map[string]any{"alg": "none", "typ": "JWT"}, payload, nil),
		"alg None":      forge(map[string]any{"alg": "None"}, payload, nil),
		"RS256 header":  forge(map[string]any{"alg": "RS256", "typ": "JWT"}, payload, hmacWith(sha256.New, testKey)),
		"HS512":         forge(map[string]any{"alg": "HS512", "typ": "JWT"}, payload, hmacWith(sha512.New, testKey)),
		"no exp":        forge(hs256, without("exp"), hmacWith(sha256.New, testKey)),
		"no subject":    forge(hs256, without("sub"), hmacWith(sha256.New, testKey)),
		"unknown role":  forge(hs256, with("role", "root"), hmacWith(sha256.New, testKey)),
		"role not norm": forge(hs256, with("role", "Admin"), hmacWith(sha256.New, testKey)),
		"no jti":        forge(hs256, without("jti"), hmacWith(sha256.New, testKey)),
		"no iat":        forge(hs256, without("iat"), hmacWith(sha256.New, testKey)),
		// An admin token signed (with the key) for a week: longer than an admin token may live.
		"admin for a week": forge(hs256, with("exp", time.Unix(iat, 0).Add(7*24*time.Hour).Unix()), hmacWith(sha256.New, testKey)),
		"too long":         good + strings.Repeat("A", 9000),
	}
	// The forging helper must itself be right: the same construction with a good payload passes.
	control := forge(hs256, payload, hmacWith(sha256.New, testKey))
	if c, err := iss.Verify(control); err != nil || c.Role != auth.RoleAdmin {
		t.Fatalf("control token: %+v, %v", c, err)
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := iss.Verify(tok)
			if !errors.Is(err, auth.ErrTokenInvalid) {
				t.Fatalf("Verify err = %v, want ErrTokenInvalid", err)
			}
		})
	}
}

func TestIssueRejects(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	cases := map[string]struct {
		iss *auth.Issuer
		c   auth.Claims
		ttl time.Duration
	}{
		"no subject":              {iss, auth.Claims{Role: auth.RoleAdmin}, time.Hour},
		"unknown role":            {iss, auth.Claims{Subject: "x", Role: "root"}, time.Hour},
		"zero ttl":                {iss, auth.Claims{Subject: "x", Role: auth.RoleAdmin}, 0},
		"admin ttl over its cap":  {iss, auth.Claims{Subject: "x", Role: auth.RoleAdmin}, auth.MaxTTL(auth.RoleAdmin) + time.Second},
		"viewer ttl over its cap": {iss, auth.Claims{Subject: "x", Role: auth.RoleViewer}, auth.MaxTTL(auth.RoleViewer) + time.Second},
		"short key":               {auth.NewIssuer([]byte("short"), testIssuer), auth.Claims{Subject: "x", Role: auth.RoleAdmin}, time.Hour},
	}
	for name, tc := range cases {
		if tok, err := tc.iss.Issue(tc.c, tc.ttl); err == nil {
			t.Errorf("%s: Issue = %q, want error", name, tok)
		}
	}
	if _, err := auth.NewIssuer([]byte("short"), testIssuer).Verify("a.b.c"); err == nil {
		t.Error("Verify with a short key: want error")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "nested")
	k1, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != auth.KeySize {
		t.Fatalf("key has %d bytes, want %d", len(k1), auth.KeySize)
	}
	fi, err := os.Stat(filepath.Join(dir, auth.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(k1) != string(k2) {
		t.Fatal("second load returned a different key")
	}
	// What `urbanbrain token` issues, `serve` on the same data directory accepts.
	tok, err := auth.NewIssuer(k1, testIssuer).Issue(auth.Claims{Subject: "demo", Role: auth.RoleViewer}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewIssuer(k2, testIssuer).Verify(tok); err != nil {
		t.Fatalf("token from the first load rejected by the second: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only %s", len(entries), auth.KeyFile)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := make([][]byte, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = auth.LoadOrCreateKey(dir) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("load %d: %v", i, errs[i])
		}
		if string(keys[i]) != string(keys[0]) {
			t.Fatalf("load %d got a different key", i)
		}
	}
}

func TestLoadOrCreateKeyBadFile(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"not hex": "zz-not-hex\n",
		"short":   "00112233\n",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, auth.KeyFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := auth.LoadOrCreateKey(dir); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
	if _, err := auth.LoadOrCreateKey(""); err == nil {
		t.Error("empty data dir: want error")
	}
}

// Token lifetimes are capped by role: the roles that change the city or see personal data
// get a shift, devices (ingest, wall screens) long-lived tokens.
func TestMaxTTLByRole(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	for _, role := range auth.ValidRoles() {
		if _, err := iss.Issue(auth.Claims{Subject: "s", Role: role}, auth.MaxTTL(role)); err != nil {
			t.Errorf("%s at its cap %v: %v", role, auth.MaxTTL(role), err)
		}
	}
	if auth.MaxTTL(auth.RoleAdmin) > 12*time.Hour || auth.MaxTTL(auth.RoleIngest) < 30*24*time.Hour {
		t.Errorf("caps: admin %v, ingest %v", auth.MaxTTL(auth.RoleAdmin), auth.MaxTTL(auth.RoleIngest))
	}
}

// A revoked token is refused by a running Issuer within a second of `token revoke`, by id or
// by the whole token, and other tokens of the same subject still work.
func TestRevocation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	revs, err := auth.NewRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	revs.SetClock(func() time.Time { return now })
	base := auth.NewIssuer(testKey, testIssuer)
	iss := base.WithRevocations(revs)
	issue := func() (string, auth.Claims) {
		tok, err := iss.Issue(auth.Claims{Subject: "wall-3", Role: auth.RoleViewer}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := iss.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		return tok, c
	}
	tokA, a := issue()
	tokB, _ := issue()
	tokC, _ := issue()
	if id, err := auth.Revoke(dir, base, a.ID); err != nil || id != a.ID {
		t.Fatalf("Revoke by id: %q, %v", id, err)
	}
	if _, err := auth.Revoke(dir, base, tokC); err != nil {
		t.Fatalf("Revoke by token: %v", err)
	}
	now = now.Add(1100 * time.Millisecond) // the list is looked at once a second
	for name, tok := range map[string]string{"by id": tokA, "by token": tokC} {
		if _, err := iss.Verify(tok); !errors.Is(err, auth.ErrTokenRevoked) {
			t.Errorf("revoked %s: Verify err = %v, want ErrTokenRevoked", name, err)
		}
	}
	if _, err := iss.Verify(tokB); err != nil {
		t.Errorf("an unrevoked token of the same subject: %v", err)
	}
	if _, err := base.Verify(tokA); err != nil {
		t.Errorf("an Issuer without the list: %v", err)
	}
	if _, err := auth.Revoke(dir, auth.NewIssuer([]byte("another-key-another-key-another-k"), testIssuer), tokB); err == nil {
		t.Error("Revoke accepted a token signed with another key")
	}
	// An unreadable list fails closed.
	if err := os.WriteFile(filepath.Join(dir, auth.RevokedFile), []byte("x not-a-time\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if _, err := iss.Verify(tokB); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Errorf("with a corrupt list: Verify err = %v, want refusal", err)
	}
}
