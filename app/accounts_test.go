package app

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/segmentio/kafka-go"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/transport"
)

// A person signs in as a browser would: the admin creates the account, the operator signs in
// and works with the session cookie (the API, a command with its CSRF token, the cockpit
// websocket); a request without the CSRF token is refused; a second instance of the city knows
// the account; disabling it ends the session at once; repeated wrong passwords lock the name.
func TestSignInSessionsAndAccounts(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) { c.RateLimit = 0 })
	admin := r.token(auth.Claims{Subject: "root", Role: auth.RoleAdmin})
	district := r.app.City().Grids()[0].District

	var acc auth.Account
	if code := r.do("POST", "/api/v1/users", admin, map[string]any{"username": "wang.li", "role": auth.RoleOperator,
		"district": district, "password": "青山区坐席-2026"}, &acc); code != http.StatusCreated || acc.PasswordHash != "" || acc.Role != auth.RoleOperator {
		t.Fatalf("create account: %d %+v (the answer must not carry the hash)", code, acc)
	}
	var refusal struct{ Code string }
	for body, want := range map[string]int{
		`{"username": "wang.li", "role": "operator", "password": "another-password"}`: http.StatusConflict,
		`{"username": "x", "role": "operator", "password": "another-password"}`:       http.StatusBadRequest,
		`{"username": "zhao", "role": "worker", "password": "another-password"}`:      http.StatusBadRequest, // no grids
		`{"username": "zhao", "role": "operator", "password": "short"}`:               http.StatusBadRequest,
	} {
		var v map[string]any
		_ = json.Unmarshal([]byte(body), &v)
		if code := r.do("POST", "/api/v1/users", admin, v, &refusal); code != want {
			t.Errorf("create %s: %d %+v, want %d", body, code, refusal, want)
		}
	}

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	send := func(method, path, csrf string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, r.base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set(auth.CSRFHeader, csrf)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := send("POST", "/api/v1/session", "", map[string]string{"username": "wang.li", "password": "wrong-password-1"}); code != http.StatusUnauthorized ||
		!strings.Contains(string(b), "wrong username or password") {
		t.Errorf("wrong password: %d %s", code, b)
	}
	code, b := send("POST", "/api/v1/session", "", map[string]string{"username": "wang.li", "password": "青山区坐席-2026"})
	var signedIn struct {
		Account auth.Account `json:"account"`
		CSRF    string       `json:"csrf"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &signedIn) != nil || signedIn.CSRF == "" || signedIn.Account.Username != "wang.li" {
		t.Fatalf("sign in: %d %s", code, b)
	}
	if code, b := send("GET", "/api/v1/incidents?limit=1", "", nil); code != http.StatusOK {
		t.Errorf("the API with the session: %d %s", code, b)
	}
	var who map[string]any
	_, b = send("GET", "/api/v1/session", "", nil)
	if json.Unmarshal(b, &who) != nil || who["subject"] != "wang.li" || who["district"] != district || who["csrf"] != signedIn.CSRF {
		t.Errorf("GET session: %s", b)
	}
	// A command with the cookie alone is refused (CSRF); with the header it reaches the owner.
	if code, _ := send("POST", "/api/v1/incidents/INC-990101001-x/actions", "", map[string]string{"action": "progress", "note": "x"}); code != http.StatusForbidden {
		t.Errorf("a command without the CSRF header: %d, want 403", code)
	}
	if code, _ := send("POST", "/api/v1/incidents/INC-990101001-x/actions", signedIn.CSRF, map[string]string{"action": "progress", "note": "x"}); code != http.StatusNotFound {
		t.Errorf("a command with the CSRF header on an unknown incident: %d, want 404 (past authentication)", code)
	}
	// The cockpit websocket takes the session cookie.
	u := "ws" + strings.TrimPrefix(r.base, "http") + "/ws/cockpit"
	hdr := http.Header{}
	req, _ := http.NewRequest("GET", r.base+"/", nil)
	for _, c := range jar.Cookies(req.URL) {
		hdr.Add("Cookie", c.Name+"="+c.Value)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		t.Fatalf("cockpit with the session cookie: %v (%v)", err, resp)
	}
	ws.Close()

	// Every instance knows the account: it is on city.accounts, signed.
	found := false
	_ = transport.ReadRecords(t.Context(), r.app.BrokerAddrs(), event.TopicAccounts, func(m kafka.Message) error {
		if bytes.Contains(m.Value, []byte(`"wang.li"`)) && !bytes.Contains(m.Value, []byte("青山区坐席")) && len(m.Headers) > 0 {
			found = true
		}
		return nil
	})
	if !found {
		t.Errorf("the account is not on %s, signed and without its password", event.TopicAccounts)
	}

	// Disabled: the running session ends at once.
	if code := r.do("POST", "/api/v1/users/wang.li/disable", admin, nil, nil); code != http.StatusOK {
		t.Fatalf("disable: %d", code)
	}
	if code, _ := send("GET", "/api/v1/incidents?limit=1", "", nil); code != http.StatusUnauthorized {
		t.Errorf("the session of a disabled account: %d, want 401", code)
	}
	if code, _ := send("POST", "/api/v1/session", "", map[string]string{"username": "wang.li", "password": "青山区坐席-2026"}); code != http.StatusUnauthorized {
		t.Errorf("sign-in to a disabled account: %d, want 401", code)
	}

	// Lockout: five failures lock the name, even with the right password after.
	r.do("POST", "/api/v1/users/wang.li/enable", admin, nil, nil)
	for range auth.LockoutFailures {
		send("POST", "/api/v1/session", "", map[string]string{"username": "wang.li", "password": "guess-guess-guess"})
		time.Sleep(2 * time.Second) // the per-address limit, not what is tested here
	}
	code, b = send("POST", "/api/v1/session", "", map[string]string{"username": "wang.li", "password": "青山区坐席-2026"})
	if code != http.StatusTooManyRequests || !strings.Contains(string(b), api.CodeLocked) {
		t.Errorf("sign-in after %d failures: %d %s, want 429 locked", auth.LockoutFailures, code, b)
	}
}
