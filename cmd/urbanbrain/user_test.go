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
