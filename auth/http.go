package auth

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error codes of authentication failures, shared with the API's error catalogue.
const (
	CodeUnauthenticated = "unauthenticated" // 401: no token, or a bad or expired one
	CodeForbidden       = "forbidden"       // 403: a valid token whose role lacks the permission
	CodeRateLimited     = "rate_limited"    // 429: the token's subject made too many requests; see Retry-After
)

// AccessTokenParam is the query parameter that carries the token on websocket handshakes.
const AccessTokenParam = "access_token"

// TokenVerifier checks a token; *Issuer is one.
type TokenVerifier interface {
	Verify(token string) (Claims, error)
}

type claimsKey struct{}

// WithClaims returns a context carrying c.
func WithClaims(ctx context.Context, c Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims put in ctx by Middleware (or WithClaims).
func FromContext(ctx context.Context) (Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(Claims)
	return c, ok
}

// TokenFromRequest returns the token of r: from `Authorization: Bearer <token>`, or, on a
// route that accepts it (AcceptQueryToken: the websocket routes, because browsers cannot set
// headers on a WebSocket handshake), from the access_token query parameter. Which route it
// is decides, never the request's own headers: an ordinary API call that adds
// `Upgrade: websocket` still cannot put its token in the URL, where access logs and proxies
// would keep it.
func TokenFromRequest(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", false
		}
		return tok, true
	}
	if queryTokenAccepted(r.Context()) {
		if tok := r.URL.Query().Get(AccessTokenParam); tok != "" {
			return tok, true
		}
	}
	return "", false
}

type queryTokenKey struct{}

// AcceptQueryToken marks next as a route on which the token may come as ?access_token=.
// Only the websocket routes are wrapped with it.
func AcceptQueryToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), queryTokenKey{}, true)))
	})
}

func queryTokenAccepted(ctx context.Context) bool {
	ok, _ := ctx.Value(queryTokenKey{}).(bool)
	return ok
}

// Limiter decides whether the holder of c may make one more request now, and if not, how
// long to wait. The server's per-token rate limit is one (app/limits.go).
type Limiter interface {
	Allow(c Claims) (ok bool, retryAfter time.Duration)
}

type limiterKey struct{}

// WithLimiter makes every Authorize under next (Middleware and the websocket handshakes)
// charge the authenticated caller to l, answering 429 rate_limited with Retry-After when l
// says no. Limits are applied after the token is verified, so they are keyed by who the
// caller really is and a forged token cannot spend someone else's budget.
func WithLimiter(l Limiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), limiterKey{}, l)))
	})
}

// Authorize authenticates r with v and checks that its role holds perm. On failure it has
// written the 401 or 403 answer and returns false; handlers that cannot use Middleware (the
// websocket hubs, which must answer before upgrading) call it directly.
func Authorize(w http.ResponseWriter, r *http.Request, v TokenVerifier, perm Permission) (Claims, bool) {
	c, ok := authenticate(w, r, v)
	if !ok {
		return Claims{}, false
	}
	if l, ok := r.Context().Value(limiterKey{}).(Limiter); ok {
		if allowed, wait := l.Allow(c); !allowed {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait, time.Second).Seconds()))))
			WriteError(w, http.StatusTooManyRequests, CodeRateLimited, "too many requests for this token; retry after the Retry-After seconds")
			return Claims{}, false
		}
	}
	if !Can(c.Role, perm) {
		WriteError(w, http.StatusForbidden, CodeForbidden, "role "+c.Role+" may not "+string(perm))
		return Claims{}, false
	}
	return c, true
}

// authenticate is who r comes from: its bearer token, or else (on a server with sessions) its
// session cookie. On failure it has written the 401 (or, for a session's request without its
// CSRF token, 403) answer.
func authenticate(w http.ResponseWriter, r *http.Request, v TokenVerifier) (Claims, bool) {
	tok, ok := TokenFromRequest(r)
	if !ok {
		if c, err, tried := sessionClaims(r); tried {
			switch {
			case errors.Is(err, ErrCSRFMissing):
				WriteError(w, http.StatusForbidden, CodeForbidden, err.Error())
				return Claims{}, false
			case err != nil:
				WriteError(w, http.StatusUnauthorized, CodeUnauthenticated, err.Error())
				return Claims{}, false
			}
			return c, true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="urbanbrain"`)
		WriteError(w, http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token")
		return Claims{}, false
	}
	c, err := v.Verify(tok)
	if err != nil {
		msg := "invalid token"
		switch {
		case errors.Is(err, ErrTokenExpired):
			msg = "token expired"
		case errors.Is(err, ErrTokenRevoked):
			msg = "token revoked"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="urbanbrain", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, CodeUnauthenticated, msg)
		return Claims{}, false
	}
	return c, true
}

// Middleware lets through only requests with a valid token whose role holds perm, and puts
// the token's Claims in the request context (FromContext). The token comes from
// `Authorization: Bearer <token>`, or on routes wrapped in AcceptQueryToken from
// `?access_token=<token>`.
// Failures answer 401 {"code":"unauthenticated","error":"..."} or
// 403 {"code":"forbidden","error":"..."}.
func Middleware(iss *Issuer, perm Permission) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := Authorize(w, r, iss, perm)
			if !ok {
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}

// WriteError writes the API's error body {"code": code, "error": msg} with status.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}{code, msg})
}
