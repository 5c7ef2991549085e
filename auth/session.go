package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"
)

// Sessions are the pages' sign-in: after a sign-in (Directory.Authenticate, or an identity
// provider), the session is a token in an HttpOnly, SameSite=Strict cookie, signed with the
// instances' key under its own issuer, so a session cookie is never a bearer token and a
// bearer token is never a session. Requests that change something (anything but GET, HEAD and
// OPTIONS) made with the cookie must also carry the session's CSRF token in the X-CSRF-Token
// header: it is derived from the session's id with the key, so another site can neither read
// nor forge it. Every request asks the Check function whether the session still stands.
type Sessions struct {
	issuer *Issuer
	csrf   []byte
	// TTL is a session's life, at most the role's MaxTTL.
	TTL time.Duration
	// Secure marks the cookies Secure (HTTPS only); on for any deployment behind TLS.
	Secure bool
	// Check, when set, is asked on every request made with a session (Directory.Check).
	Check func(Claims) (Claims, error)
}

// The session's cookies and header.
const (
	SessionCookie = "ub_session"
	CSRFCookie    = "ub_csrf" // readable by the page's script, which echoes it in CSRFHeader
	CSRFHeader    = "X-CSRF-Token"
)

// SessionIssuer is the `iss` of session tokens.
const SessionIssuer = "urbanbrain/session"

// NewSessions returns sessions signed with key (the token key; a session token has its own
// issuer, and the CSRF key is derived from key under its own label).
func NewSessions(key []byte, ttl time.Duration) *Sessions {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("urbanbrain csrf v1"))
	return &Sessions{issuer: NewIssuer(key, SessionIssuer), csrf: m.Sum(nil), TTL: ttl}
}

// Start signs c in: it sets the session and CSRF cookies on w and returns the CSRF token.
func (s *Sessions) Start(w http.ResponseWriter, c Claims) (string, error) {
	ttl := min(s.TTL, MaxTTL(c.Role))
	tok, err := s.issuer.Issue(c, ttl)
	if err != nil {
		return "", err
	}
	v, err := s.issuer.Verify(tok) // its id, for the CSRF token
	if err != nil {
		return "", err
	}
	csrf := s.csrfToken(v.ID)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", MaxAge: int(ttl.Seconds()),
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: csrf, Path: "/", MaxAge: int(ttl.Seconds()),
		Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	return csrf, nil
}

// End clears the session's cookies.
func (s *Sessions) End(w http.ResponseWriter) {
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: name == SessionCookie,
			Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	}
}

// CSRF is the CSRF token of the session c (what Start returned).
func (s *Sessions) CSRF(c Claims) string { return s.csrfToken(c.ID) }

func (s *Sessions) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, s.csrf)
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Session errors (Authorize answers 401 for the first two, 403 for the last).
var (
	ErrNoSession   = errors.New("no session")
	ErrBadSession  = errors.New("invalid or expired session; sign in again")
	ErrCSRFMissing = errors.New("missing or wrong " + CSRFHeader + " header for a request made with the session cookie")
)

// fromRequest returns the claims of r's session cookie.
func (s *Sessions) fromRequest(r *http.Request) (Claims, error) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return Claims{}, ErrNoSession
	}
	c, err := s.issuer.Verify(ck.Value)
	if err != nil {
		return Claims{}, ErrBadSession
	}
	if s.Check != nil {
		if c, err = s.Check(c); err != nil {
			return Claims{}, err
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if got := r.Header.Get(CSRFHeader); !hmac.Equal([]byte(got), []byte(s.csrfToken(c.ID))) {
			return Claims{}, ErrCSRFMissing
		}
	}
	return c, nil
}

type sessionsKey struct{}

// WithSessions makes every Authorize under next accept, when a request has no bearer token,
// the session cookie of s.
func WithSessions(s *Sessions, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionsKey{}, s)))
	})
}

// sessionClaims is the session of r when the server accepts sessions and r has a session
// cookie: ok is false when there is none to try.
func sessionClaims(r *http.Request) (c Claims, err error, ok bool) {
	s, _ := r.Context().Value(sessionsKey{}).(*Sessions)
	if s == nil {
		return Claims{}, nil, false
	}
	c, err = s.fromRequest(r)
	if errors.Is(err, ErrNoSession) {
		return Claims{}, nil, false
	}
	return c, err, true
}
