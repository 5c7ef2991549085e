package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token errors. Verify wraps one of them with the reason, so callers test with errors.Is and
// may show the message: it never contains the token.
var (
	ErrTokenExpired = errors.New("token expired")
	ErrTokenInvalid = errors.New("token invalid")
	ErrTokenRevoked = errors.New("token revoked")
)

// maxTokenLen bounds what Verify will parse; real tokens are a few hundred bytes.
const maxTokenLen = 8 << 10

// Claims is who a token's holder is and what part of the city they act in.
type Claims struct {
	Subject string `json:"sub"`
	Role    Role   `json:"role"`
	// District scopes an operator, supervisor or viewer to one district (区); empty means
	// the whole city.
	District string `json:"district,omitempty"`
	// Grids are a worker's grids (网格); a worker sees nothing outside them.
	Grids []string `json:"grids,omitempty"`
	// ID is the token's own id (`jti`), what `urbanbrain token revoke` names. Issue sets it;
	// Verify requires it.
	ID string `json:"jti,omitempty"`
	// Epoch is, on a signed-in session, the account's epoch when it signed in: a password
	// reset or a disabled account moves the epoch on, which ends every session (accounts.go).
	Epoch int64 `json:"epoch,omitempty"`
}

// Key is who the claims belong to for limits and quotas: role and subject together, so a
// subject's admin token and viewer token do not share a budget.
func (c Claims) Key() string { return c.Role + "|" + c.Subject }

// MaxTTL is the longest a token of role may live. Machine and wall-screen tokens live long
// because they are installed once on a device; the roles that change the city or see
// personal data get a shift's worth, so a leaked one is worth little by the next day.
// Revocation (Revocations) covers the time in between.
func MaxTTL(role Role) time.Duration {
	switch role {
	case RoleIngest:
		return 90 * 24 * time.Hour
	case RoleViewer:
		return 30 * 24 * time.Hour
	case RoleWorker:
		return 7 * 24 * time.Hour
	case RoleAdmin:
		return 8 * time.Hour
	default: // operator, supervisor, rule_author
		return 12 * time.Hour
	}
}

// RevocationChecker reports whether the token with id jti has been revoked; *Revocations is one.
type RevocationChecker interface {
	Revoked(jti string) bool
}

// jwtClaims is the token payload: Claims plus the registered exp, iat and iss.
type jwtClaims struct {
	Role     string   `json:"role"`
	District string   `json:"district,omitempty"`
	Grids    []string `json:"grids,omitempty"`
	Epoch    int64    `json:"epoch,omitempty"`
	jwt.RegisteredClaims
}

// Issuer signs and verifies tokens with one HS256 key.
type Issuer struct {
	key     []byte
	issuer  string
	now     func() time.Time
	revoked RevocationChecker // nil: nothing revoked
}

// NewIssuer returns an Issuer for tokens with the given `iss` claim. The key must be at least
// KeySize bytes (LoadOrCreateKey makes one); a shorter key makes Issue and Verify fail.
func NewIssuer(key []byte, issuer string) *Issuer {
	return &Issuer{key: slices.Clone(key), issuer: issuer, now: time.Now}
}

// WithRevocations returns a copy of i whose Verify also refuses the token ids r has revoked.
func (i *Issuer) WithRevocations(r RevocationChecker) *Issuer {
	c := *i
	c.revoked = r
	return &c
}

func (i *Issuer) checkKey() error {
	if len(i.key) < KeySize {
		return fmt.Errorf("auth: signing key has %d bytes, want at least %d", len(i.key), KeySize)
	}
	return nil
}

// Issue returns a signed token for c valid for ttl, with a fresh random id (c.ID is ignored).
// ttl may not exceed MaxTTL(c.Role).
func (i *Issuer) Issue(c Claims, ttl time.Duration) (string, error) {
	if err := i.checkKey(); err != nil {
		return "", err
	}
	var problems []error
	if c.Subject == "" {
		problems = append(problems, errors.New("subject is empty"))
	}
	if !slices.Contains(roles, c.Role) {
		problems = append(problems, fmt.Errorf("unknown role %q", c.Role))
	}
	if ttl <= 0 {
		problems = append(problems, fmt.Errorf("ttl %v must be positive", ttl))
	}
	if slices.Contains(roles, c.Role) && ttl > MaxTTL(c.Role) {
		problems = append(problems, fmt.Errorf("ttl %v exceeds %v, the longest a token of role %s may live", ttl, MaxTTL(c.Role), c.Role))
	}
	if err := errors.Join(problems...); err != nil {
		return "", fmt.Errorf("auth: issue token: %w", err)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", fmt.Errorf("auth: token id: %w", err)
	}
	now := i.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{
		Role:     c.Role,
		District: c.District,
		Grids:    c.Grids,
		Epoch:    c.Epoch,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        base64.RawURLEncoding.EncodeToString(id[:]),
			Subject:   c.Subject,
			Issuer:    i.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	})
	s, err := tok.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// Verify checks token and returns its claims. It accepts only HS256 signatures made with this
// Issuer's key, requires an expiry in the future, this Issuer's `iss`, a subject, a known
// role, an id (`jti`) that is not revoked and a lifetime (exp - iat) within the role's
// MaxTTL. Errors wrap ErrTokenExpired, ErrTokenRevoked or ErrTokenInvalid.
func (i *Issuer) Verify(token string) (Claims, error) {
	if err := i.checkKey(); err != nil {
		return Claims{}, err
	}
	if token == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrTokenInvalid)
	}
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, maxTokenLen)
	}
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(token, &jc, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refuses other algorithms; checking the method type too
		// keeps a future option change from turning the secret into a public key.
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
		}
		return i.key, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(i.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(i.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrTokenExpired
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	if jc.Subject == "" {
		return Claims{}, fmt.Errorf("%w: no subject", ErrTokenInvalid)
	}
	if !slices.Contains(roles, jc.Role) {
		return Claims{}, fmt.Errorf("%w: unknown role %q", ErrTokenInvalid, jc.Role)
	}
	if jc.ID == "" {
		return Claims{}, fmt.Errorf("%w: no token id (jti); tokens from before revocation existed must be issued again", ErrTokenInvalid)
	}
	if jc.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: no issue time", ErrTokenInvalid)
	}
	// A token signed with a longer life (by an older version, or by hand with the key) is
	// refused rather than trusted for its whole life.
	if life := jc.ExpiresAt.Sub(jc.IssuedAt.Time); life > MaxTTL(jc.Role) {
		return Claims{}, fmt.Errorf("%w: lifetime %v exceeds %v, the longest a token of role %s may live", ErrTokenInvalid, life, MaxTTL(jc.Role), jc.Role)
	}
	if i.revoked != nil && i.revoked.Revoked(jc.ID) {
		return Claims{}, ErrTokenRevoked
	}
	return Claims{Subject: jc.Subject, Role: jc.Role, District: jc.District, Grids: jc.Grids, ID: jc.ID, Epoch: jc.Epoch}, nil
}
