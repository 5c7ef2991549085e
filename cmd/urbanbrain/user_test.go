package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/app"
)

// The first admin is made from a shell: `urbanbrain user add` against the running server,
// with the password on standard input; the account then signs in, and `user disable` ends it.
func TestUserCommandMakesTheFirstAdmin(t *testing.T) {
	a, dir := startServer(t)
	base := "http://" + a.HTTPAddr()

	user := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		cmd := userCommand(strings.NewReader(stdin), &out)
		err := cmd.ParseAndRun(context.Background(), append([]string{"--url", base, "--data-dir", dir}, args...))
		return out.String(), err
	}
	out, err := user("a-long-admin-password\n", "add", "--role", "admin", "root")
	if err != nil || !strings.Contains(out, `"username":"root"`) || strings.Contains(out, "password") {
		t.Fatalf("user add: %v %s", err, out)
	}
	if _, err := user("short\n", "add", "--role", "admin", "root2"); err == nil || !strings.Contains(err.Error(), "at least 10") {
		t.Errorf("a short password: %v, want the policy's message", err)
	}
	signIn := func() int {
		b, _ := json.Marshal(map[string]string{"username": "root", "password": "a-long-admin-password"})
		resp, err := http.Post(base+"/api/v1/session", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := signIn(); code != http.StatusOK {
		t.Fatalf("the new admin signs in: %d", code)
	}
	if _, err := user("", "disable", "root"); err != nil {
		t.Fatal(err)
	}
	if code := signIn(); code != http.StatusUnauthorized {
		t.Errorf("sign-in after user disable: %d, want 401", code)
	}
}

// startServer runs the whole system on loopback with data in a fresh directory, ready.
func startServer(t *testing.T) (*app.App, string) {
	t.Helper()
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	brokerAddr := l.Addr().String()
	_ = l.Close()
	cfg := app.DefaultConfig()
	cfg.DataDir, cfg.HTTPAddr, cfg.BrokerListen, cfg.Partitions = dir, "127.0.0.1:0", brokerAddr, 1
	a, err := app.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.Now().Add(60 * time.Second)
	for !a.Ready() || a.HTTPAddr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the server did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a, dir
}

// The demo makes an account for each kind of user, each with its own password, that signs in;
// started again on the same data, it keeps them and says so rather than printing a password
// that no longer works.
func TestDemoAccountsSignIn(t *testing.T) {
	a, _ := startServer(t)
	base := "http://" + a.HTTPAddr()
	worker := demoWorker(a)
	accts := demoAccounts(t.Context(), a, base, worker)
	if len(accts) != 5 {
		t.Fatalf("%d demo accounts, want 5", len(accts))
	}
	seen := map[string]bool{}
	for _, d := range accts {
		if seen[d.password] || len(d.password) < 20 {
			t.Errorf("%s: password %q reused or short", d.username, d.password)
		}
		seen[d.password] = true
		b, _ := json.Marshal(map[string]string{"username": d.username, "password": d.password})
		resp, err := http.Post(base+"/api/v1/session", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Account struct {
				Role  string   `json:"role"`
				Grids []string `json:"grids"`
			} `json:"account"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s signs in: %d", d.username, resp.StatusCode)
		}
		if d.username == worker.ID && (s.Account.Role != "worker" || len(s.Account.Grids) == 0 || s.Account.Grids[0] != worker.Grids[0]) {
			t.Errorf("the worker's account %+v, want the roster's grids %v", s.Account, worker.Grids)
		}
	}
	for _, d := range demoAccounts(t.Context(), a, base, worker) {
		if !strings.Contains(d.password, "kept from an earlier start") {
			t.Errorf("second start: %s password %q, want it kept", d.username, d.password)
		}
	}
}
