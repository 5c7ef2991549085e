package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Error codes of authentication failures, shared with the API's error catalogue.
const (
	CodeUnauthenticated = "unauthenticated" // 401: no token, or a bad or expired one
	CodeForbidden       = "forbidden"       // 403: a valid token whose role lacks the permission
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
// websocket upgrade request only, from the access_token query parameter (browsers cannot set
// headers on a WebSocket handshake). Tokens in URLs of ordinary requests are refused because
// URLs are written to access logs and proxies.
func TokenFromRequest(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", false
		}
		return tok, true
	}
	if isWebSocketUpgrade(r) {
		if tok := r.URL.Query().Get(AccessTokenParam); tok != "" {
			return tok, true
		}
	}
	return "", false
}

func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// Authorize authenticates r with v and checks that its role holds perm. On failure it has
// written the 401 or 403 answer and returns false; handlers that cannot use Middleware (the
// websocket hubs, which must answer before upgrading) call it directly.
func Authorize(w http.ResponseWriter, r *http.Request, v TokenVerifier, perm Permission) (Claims, bool) {
	tok, ok := TokenFromRequest(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="urbanbrain"`)
		WriteError(w, http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token")
		return Claims{}, false
	}
	c, err := v.Verify(tok)
	if err != nil {
		msg := "invalid token"
		if errors.Is(err, ErrTokenExpired) {
			msg = "token expired"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="urbanbrain", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, CodeUnauthenticated, msg)
		return Claims{}, false
	}
	if !Can(c.Role, perm) {
		WriteError(w, http.StatusForbidden, CodeForbidden, "role "+c.Role+" may not "+string(perm))
		return Claims{}, false
	}
	return c, true
}

// Middleware lets through only requests with a valid token whose role holds perm, and puts
// the token's Claims in the request context (FromContext). The token comes from
// `Authorization: Bearer <token>`, or on websocket upgrades from `?access_token=<token>`.
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
