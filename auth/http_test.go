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

	cases := []struct {
		name     string
		query    string
		headers  map[string]string
		status   int
		code     string // error code, or the subject on success
		errorMsg string
	}{
		{"no token", "", nil, 401, "unauthenticated", "missing bearer token"},
		{"basic auth", "", map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, 401, "unauthenticated", ""},
		{"bearer without token", "", map[string]string{"Authorization": "Bearer "}, 401, "unauthenticated", ""},
		{"bad token", "", map[string]string{"Authorization": "Bearer abc.def.ghi"}, 401, "unauthenticated", "invalid token"},
		{"expired", "", map[string]string{"Authorization": "Bearer " + expired}, 401, "unauthenticated", "token expired"},
		{"ingest may not read", "", map[string]string{"Authorization": "Bearer " + token(auth.RoleIngest)}, 403, "forbidden", ""},
		{"operator", "", map[string]string{"Authorization": "Bearer " + token(auth.RoleOperator)}, 200, "u-operator", ""},
		{"lower-case scheme", "", map[string]string{"Authorization": "bearer " + token(auth.RoleViewer)}, 200, "u-viewer", ""},
		{"query on websocket upgrade", "?access_token=" + token(auth.RoleViewer), wsHeaders, 200, "u-viewer", ""},
		{"query on websocket, wrong role", "?access_token=" + token(auth.RoleIngest), wsHeaders, 403, "forbidden", ""},
		{"query on plain request", "?access_token=" + token(auth.RoleViewer), nil, 401, "unauthenticated", ""},
		{"bad header wins over query", "?access_token=" + token(auth.RoleViewer),
			map[string]string{"Authorization": "Bearer nope", "Connection": "Upgrade", "Upgrade": "websocket"}, 401, "unauthenticated", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/incidents"+tc.query, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
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
