package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
)

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := auth.HashPassword("青山区-坐席-2026")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$") || strings.Contains(h, "青山区") {
		t.Errorf("hash %q: want an argon2id PHC string without the password", h)
	}
	if !auth.CheckPassword(h, "青山区-坐席-2026") {
		t.Error("the right password does not match")
	}
	for _, wrong := range []string{"青山区-坐席-2025", "", "青山区-坐席-2026 "} {
		if auth.CheckPassword(h, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	h2, _ := auth.HashPassword("青山区-坐席-2026")
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA", "$bcrypt$…", strings.Replace(h, "t=3", "t=99", 1)} {
		if auth.CheckPassword(bad, "青山区-坐席-2026") {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
	if err := auth.CheckPasswordPolicy("op-1", "short"); err == nil {
		t.Error("a 5-character password passes the policy")
	}
	if err := auth.CheckPasswordPolicy("operator-01", "OPERATOR-01"); err == nil {
		t.Error("the username as password passes the policy")
	}
}

func account(t *testing.T, name, password string, role auth.Role, version int64) auth.Account {
	t.Helper()
	h, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	return auth.Account{Username: name, Role: role, District: "990101", PasswordHash: h, Epoch: 1, Version: version}
}

func TestDirectorySignInAndLockout(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	d := auth.NewDirectory(func() time.Time { return now })
	d.Apply(account(t, "wang", "correct-horse-1", auth.RoleOperator, 1))
	if d.Apply(account(t, "wang", "older-password-0", auth.RoleViewer, 1)) {
		t.Error("an equal version replaced the account")
	}
	c, err := d.Authenticate("wang", "correct-horse-1")
	if err != nil || c.Subject != "wang" || c.Role != auth.RoleOperator || c.District != "990101" || c.Epoch != 1 {
		t.Fatalf("sign-in: %+v, %v", c, err)
	}
	for i := range auth.LockoutFailures {
		if _, err := d.Authenticate("wang", "wrong-password"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if _, err := d.Authenticate("wang", "correct-horse-1"); !errors.Is(err, auth.ErrLocked) {
		t.Errorf("the right password after %d failures: %v, want locked", auth.LockoutFailures, err)
	}
	// An unknown name locks the same way, so a lock does not tell that an account exists.
	for range auth.LockoutFailures {
		_, _ = d.Authenticate("nobody", "x")
	}
	if _, err := d.Authenticate("nobody", "x"); !errors.Is(err, auth.ErrLocked) {
		t.Errorf("unknown name after failures: %v, want locked", err)
	}
	now = now.Add(auth.LockoutWindow + time.Second)
	if _, err := d.Authenticate("wang", "correct-horse-1"); err != nil {
		t.Errorf("after the lockout window: %v", err)
	}

	// Disabling and resetting move the epoch on: a session from before ends; a role change
	// applies to a running session at once.
	disabled := account(t, "wang", "correct-horse-1", auth.RoleOperator, 2)
	disabled.Disabled, disabled.Epoch = true, 2
	d.Apply(disabled)
	if _, err := d.Check(c); !errors.Is(err, auth.ErrSessionEnded) {
		t.Errorf("session of a disabled account: %v", err)
	}
	if _, err := d.Authenticate("wang", "correct-horse-1"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("sign-in to a disabled account: %v, want bad credentials", err)
	}
	back := account(t, "wang", "correct-horse-1", auth.RoleSupervisor, 3)
	back.Epoch = 2
	d.Apply(back)
	c2, _ := d.Authenticate("wang", "correct-horse-1")
	promoted := back
	promoted.Version, promoted.District = 4, ""
	d.Apply(promoted)
	if got, err := d.Check(c2); err != nil || got.District != "" || got.Role != auth.RoleSupervisor {
		t.Errorf("session after a scope change: %+v, %v; want the account's scope now", got, err)
	}
}

func TestSessionCookieAndCSRF(t *testing.T) {
	t.Parallel()
	d := auth.NewDirectory(nil)
	d.Apply(account(t, "li", "a-long-password", auth.RoleOperator, 1))
	s := auth.NewSessions(testKey, 12*time.Hour)
	s.Check = d.Check
	bearer := auth.NewIssuer(testKey, testIssuer)
	handler := auth.WithSessions(s, auth.Middleware(bearer, auth.PermCommand)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := auth.FromContext(r.Context())
		_, _ = w.Write([]byte(c.Subject))
	})))

	claims, err := d.Authenticate("li", "a-long-password")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	csrf, err := s.Start(rec, claims)
	if err != nil {
		t.Fatal(err)
	}
	var session *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == auth.SessionCookie {
			session = c
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v: want HttpOnly and SameSite=Strict", c)
			}
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	send := func(method string, cookie *http.Cookie, csrfHeader, bearerTok string) int {
		req := httptest.NewRequest(method, "/x", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if csrfHeader != "" {
			req.Header.Set(auth.CSRFHeader, csrfHeader)
		}
		if bearerTok != "" {
			req.Header.Set("Authorization", "Bearer "+bearerTok)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		return w.Code
	}
	if code := send(http.MethodGet, session, "", ""); code != http.StatusOK {
		t.Errorf("GET with the session: %d", code)
	}
	if code := send(http.MethodPost, session, "", ""); code != http.StatusForbidden {
		t.Errorf("POST with the session and no CSRF token: %d, want 403", code)
	}
	if code := send(http.MethodPost, session, csrf+"x", ""); code != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", code)
	}
	if code := send(http.MethodPost, session, csrf, ""); code != http.StatusOK {
		t.Errorf("POST with the CSRF token: %d", code)
	}
	// A session token is not a bearer token, and a bearer token is not a session.
	if code := send(http.MethodGet, nil, "", session.Value); code != http.StatusUnauthorized {
		t.Errorf("the session token as a bearer token: %d, want 401", code)
	}
	tok, _ := bearer.Issue(auth.Claims{Subject: "li", Role: auth.RoleOperator}, time.Hour)
	if code := send(http.MethodGet, &http.Cookie{Name: auth.SessionCookie, Value: tok}, "", ""); code != http.StatusUnauthorized {
		t.Errorf("a bearer token in the session cookie: %d, want 401", code)
	}
	// Disabled: the session ends on the next request.
	off := account(t, "li", "a-long-password", auth.RoleOperator, 2)
	off.Disabled, off.Epoch = true, 2
	d.Apply(off)
	if code := send(http.MethodGet, session, "", ""); code != http.StatusUnauthorized {
		t.Errorf("GET after the account was disabled: %d, want 401", code)
	}
}
