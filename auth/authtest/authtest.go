// Package authtest gives tests an Issuer and ready-made tokens, so tests of the API and the
// websockets authenticate the way production does instead of bypassing auth.
package authtest

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

// IssuerName is the `iss` of tokens made by NewIssuer.
const IssuerName = "urbanbrain-test"

// NewIssuer returns an Issuer with a fresh random key.
func NewIssuer(tb testing.TB) *auth.Issuer {
	tb.Helper()
	key := make([]byte, auth.KeySize)
	if _, err := rand.Read(key); err != nil {
		tb.Fatalf("authtest: key: %v", err)
	}
	return auth.NewIssuer(key, IssuerName)
}

// Token returns a token for c signed by iss, valid for an hour.
func Token(tb testing.TB, iss *auth.Issuer, c auth.Claims) string {
	tb.Helper()
	tok, err := iss.Issue(c, time.Hour)
	if err != nil {
		tb.Fatalf("authtest: issue %+v: %v", c, err)
	}
	return tok
}
