package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/event/eventtest"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

// running is one urbanbrain process started by a test on loopback.
type running struct {
	t    *testing.T
	app  *App
	base string
	stop func() error
}

// freeAddr reserves a loopback port number for a component that needs a fixed address
// (the broker must come back on the same one after a restart).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// start runs every component on the embedded broker with data in dir and waits for /readyz.
func start(t *testing.T, dir, brokerAddr string, opts ...func(*Config)) *running {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.BrokerListen = brokerAddr
	cfg.Partitions = 3
	for _, o := range opts {
		o(&cfg)
	}
	return startCfg(t, cfg)
}

// startCfg runs an App with cfg (HTTP on a free port) and waits for /readyz.
func startCfg(t *testing.T, cfg Config) *running {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	a, err := New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	r := &running{t: t, app: a}
	var stopped bool
	r.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return fmt.Errorf("Run did not return within 60s of cancel")
		}
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	eventually(t, 60*time.Second, "/readyz", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		addr := a.HTTPAddr()
		if addr == "" {
			return false
		}
		r.base = "http://" + addr
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

func (r *running) token(c auth.Claims) string {
	r.t.Helper()
	tok, err := r.app.Issuer().Issue(c, time.Hour)
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// do sends a request with a bearer token and decodes a JSON answer into out (if not nil).
func (r *running) do(method, path, token string, body any, out any) int {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			r.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// eventually polls cond every 100ms until it holds or the timeout passes. It waits for an
// asynchronous pipeline to deliver, it does not assert any timing.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireTool finds an external test peer, or skips or fails the test (transporttest.RequireTool).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	return transporttest.RequireTool(t, name)
}

// hotlineTicket builds a CloudEvents structured hotline ticket at p.
var hotlineTicket = eventtest.HotlineTicket

// sensorReading is a CloudEvents water-level reading of device (alarm above 80 cm).
func sensorReading(device string, lat, lon, levelCM float64) map[string]any {
	return eventtest.SensorReading(device, event.Point{Lat: lat, Lon: lon}, levelCM)
}
