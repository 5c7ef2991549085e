package app

import (
	"fmt"

	"github.com/urbanbrain/urbanbrain/auth"
)

// newIssuer is the instance's token issuer: the key of the data directory, and the
// revocation list beside it (<data-dir>/revoked-tokens, written by `urbanbrain token revoke`
// and re-read by the running server when it changes).
func newIssuer(dataDir string, key []byte) (*auth.Issuer, error) {
	revoked, err := auth.NewRevocations(dataDir)
	if err != nil {
		return nil, fmt.Errorf("token revocation list: %w", err)
	}
	return auth.NewIssuer(key, TokenIssuer).WithRevocations(revoked), nil
}
