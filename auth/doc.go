// Package auth is who may do what in urbanbrain, and what personal data they may see.
//
// It holds four things every API and websocket handler needs:
//
//   - Signed tokens: JWT HS256 with a key kept in <data-dir>/auth.key (LoadOrCreateKey), so
//     `urbanbrain token` and `urbanbrain serve` on the same data directory agree. Verify
//     accepts HS256 only (never "none", never an RS256 header over the same secret), and
//     requires an expiry, the right issuer and a known role.
//   - Roles and permissions: a fixed table (Can) of the seven roles (admin, operator,
//     supervisor, worker, rule_author, viewer, ingest) against permissions.
//   - Scope: Claims.CanSee decides object by object whether an incident's area is visible to
//     the caller (a worker: their grids; a district operator: their district). Handlers call
//     it on every object they return, so guessing an id reveals nothing.
//   - Masking: caller names, phone numbers (138****5678) and ID numbers are masked in every
//     response unless the role may see personal data (PermSeePersonalData: admin and
//     supervisor). MaskText finds numbers inside free text, because citizens say their number
//     in the 12345 content.
//
// HTTP: Middleware reads `Authorization: Bearer <token>`. Browsers cannot set headers on a
// WebSocket handshake, so on the websocket routes (AcceptQueryToken; a property of the
// route, never of the request's headers, because URLs end up in access logs) the token may
// instead come as the `access_token` query parameter. Tokens carry an id (`jti`) that
// `urbanbrain token revoke` puts on the revocation list (Revocations), and live at most
// MaxTTL of their role. Failures answer 401 {"code":"unauthenticated",...},
// 403 {"code":"forbidden",...} or, past a Limiter, 429 {"code":"rate_limited",...}.
//
// This package must never log or return a token or key, and must never let a masking
// function modify its input: callers keep the unmasked original for privileged readers.
package auth
