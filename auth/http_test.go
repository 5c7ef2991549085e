package auth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	now := time.Now()
	iss.SetClock(func() time.Time { return now })
	token := func(role auth.Role) string {
		tok, err := iss.Issue(auth.Claims{Subject: "u-" + role, Role: role}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oldClock := now.Add(-2 * time.Hour)
	iss.SetClock(func() time.Time { return oldClock })
	expired := token(auth.RoleOperator)
	iss.SetClock(func() time.Time { return now })

	h := auth.Middleware(iss, auth.PermReadIncidents)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.FromContext(r.Context())
		if !ok {
			t.Error("no claims in the context")
		}
		_, _ = w.Write([]byte(c.Subject))
	}))
	wsHeaders := map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}

	wsRoute := auth.AcceptQueryToken(h)

	cases := []struct {
		name     string
		wsRoute  bool // the handler is wrapped in AcceptQueryToken, as the websocket routes are
		query    string
		headers  map[string]string
		status   int
		code     string // error code, or the subject on success
		errorMsg string
	}{
		{"no token", false, "", nil, 401, "unauthenticated", "missing bearer token"},
		{"basic auth", false, "", map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, 401, "unauthenticated", ""},
		{"bearer without token", false, "", map[string]string{"Authorization": "Bearer "}, 401, "unauthenticated", ""},
		{"bad token", false, "", map[string]string{"Authorization": "Bearer abc.def.ghi"}, 401, "unauthenticated", "invalid token"},
		{"expired", false, "", map[string]string{"Authorization": "Bearer " + expired}, 401, "unauthenticated", "token expired"},
		{"ingest may not read", false, "", map[string]string{"Authorization": "Bearer " + token(auth.RoleIngest)}, 403, "forbidden", ""},
		{"operator", false, "", map[string]string{"Authorization": "Bearer " + token(auth.RoleOperator)}, 200, "u-operator", ""},
		{"lower-case scheme", false, "", map[string]string{"Authorization": "bearer " + token(auth.RoleViewer)}, 200, "u-viewer", ""},
		{"query on a websocket route", true, "?access_token=" + token(auth.RoleViewer), wsHeaders, 200, "u-viewer", ""},
		{"query on a websocket route, wrong role", true, "?access_token=" + token(auth.RoleIngest), wsHeaders, 403, "forbidden", ""},
		{"query on a plain route", false, "?access_token=" + token(auth.RoleViewer), nil, 401, "unauthenticated", ""},
		// Regression: the query token was accepted on any route whose request carried
		// upgrade headers, which any client can add.
		{"query on a plain route with upgrade headers", false, "?access_token=" + token(auth.RoleViewer), wsHeaders, 401, "unauthenticated", ""},
		{"bad header wins over query", true, "?access_token=" + token(auth.RoleViewer),
			map[string]string{"Authorization": "Bearer nope", "Connection": "Upgrade", "Upgrade": "websocket"}, 401, "unauthenticated", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/incidents"+tc.query, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			if tc.wsRoute {
				wsRoute.ServeHTTP(rec, req)
			} else {
				h.ServeHTTP(rec, req)
			}
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 {
				if rec.Body.String() != tc.code {
					t.Fatalf("handler saw subject %q, want %q", rec.Body, tc.code)
				}
				return
			}
			var body struct{ Code, Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
			if body.Code != tc.code || body.Error == "" || tc.errorMsg != "" && body.Error != tc.errorMsg {
				t.Fatalf("body %+v, want code %q error %q", body, tc.code, tc.errorMsg)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestWithClaims(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, ok := auth.FromContext(req.Context()); ok {
		t.Fatal("claims in an empty context")
	}
	c := auth.Claims{Subject: "w", Role: auth.RoleWorker, Grids: []string{"G1"}}
	got, ok := auth.FromContext(auth.WithClaims(req.Context(), c))
	if !ok || got.Subject != "w" || got.Grids[0] != "G1" {
		t.Fatalf("FromContext = %+v, %v", got, ok)
	}
}

type stubLimiter struct{ deny string }

func (l stubLimiter) Allow(c auth.Claims) (bool, time.Duration) {
	if c.Subject == l.deny {
		return false, 1500 * time.Millisecond
	}
	return true, 0
}

// A limiter in the request context is charged only by the verified caller: the denied
// subject gets 429 rate_limited with Retry-After rounded up, another subject passes.
func TestAuthorizeChargesLimiter(t *testing.T) {
	t.Parallel()
	iss := auth.NewIssuer(testKey, testIssuer)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := auth.WithLimiter(stubLimiter{deny: "greedy"}, auth.Middleware(iss, auth.PermReadIncidents)(ok))
	for _, tc := range []struct {
		subject string
		status  int
	}{{"greedy", 429}, {"modest", 200}} {
		tok, err := iss.Issue(auth.Claims{Subject: tc.subject, Role: auth.RoleViewer}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/incidents", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.subject, rec.Code, tc.status)
		}
		if tc.status == 429 {
			var body struct{ Code string }
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if body.Code != auth.CodeRateLimited || rec.Header().Get("Retry-After") != "2" {
				t.Fatalf("429 body %s, Retry-After %q; want rate_limited and 2", rec.Body, rec.Header().Get("Retry-After"))
			}
		}
	}
}
