// Package webtest runs the whole system in-process and drives its pages in a real headless
// Chromium through chromedp, for the browser tests of the people's screens (web) and the wall
// screen. A test starts a City (every component on the embedded broker, SQLite, the demo city,
// no simulated traffic), makes accounts through the API, opens a Browser, signs in on the
// sign-in page as a user would, and works the page.
package webtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/transport/transporttest"
)

// City is one running urbanbrain on loopback.
type City struct {
	t    testing.TB
	App  *app.App
	Base string // http://127.0.0.1:port
	stop func()
}

// Start runs every component with data in a fresh directory and waits for /readyz. opts adjust
// the configuration (the defaults are app.DefaultConfig's, with one partition and no API rate
// limit: a browser test clicks faster than any person).
func Start(t testing.TB, opts ...func(*app.Config)) *City {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	broker := ln.Addr().String()
	_ = ln.Close()
	cfg := app.DefaultConfig()
	cfg.DataDir, cfg.HTTPAddr, cfg.BrokerListen, cfg.Partitions = t.TempDir(), "127.0.0.1:0", broker, 1
	cfg.RateLimit = 0
	for _, o := range opts {
		o(&cfg)
	}
	a, err := app.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	c := &City{t: t, App: a}
	c.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("the server did not stop within 60 s")
			}
		})
	}
	t.Cleanup(c.stop)
	Eventually(t, 90*time.Second, "/readyz", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the server stopped early: %v", err)
		default:
		}
		if a.HTTPAddr() == "" {
			return false
		}
		c.Base = "http://" + a.HTTPAddr()
		resp, err := http.Get(c.Base + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

// Stop stops the server (as a crash or a restart would look to a page), waiting for it.
func (c *City) Stop() { c.stop() }

// Token mints a bearer token for claims (an hour), as `urbanbrain token` does.
func (c *City) Token(claims auth.Claims) string {
	c.t.Helper()
	tok, err := c.App.Issuer().Issue(claims, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// Admin is a bearer token of the admin role.
func (c *City) Admin() string {
	return c.Token(auth.Claims{Subject: "test-admin", Role: auth.RoleAdmin})
}

// Do sends a JSON request with a bearer token and decodes a JSON answer into out (if not nil).
func (c *City) Do(method, path, token string, body, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// Account is a local account made by User.
type Account struct {
	Username, Password, Role string
}

// User creates a local account through the API (as an admin would on the desk or with
// `urbanbrain user add`). scope is optional: "district" and "grids" of the account.
func (c *City) User(username, role string, scope map[string]any) Account {
	c.t.Helper()
	acct := Account{Username: username, Password: "测试口令-" + username + "-2026", Role: role}
	body := map[string]any{"username": username, "role": role, "password": acct.Password}
	for k, v := range scope {
		body[k] = v
	}
	if code := c.Do(http.MethodPost, "/api/v1/users", c.Admin(), body, nil); code != http.StatusCreated {
		c.t.Fatalf("create account %s: %d", username, code)
	}
	return acct
}

// Eventually polls cond every 100 ms until it holds or timeout passes: it waits for an
// asynchronous pipeline, it asserts no timing.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Browser is one headless Chromium tab driven by chromedp.
type Browser struct {
	t   testing.TB
	Ctx context.Context // for chromedp.Do and chromedp.Run

	mu       sync.Mutex
	problems []string // uncaught exceptions, console errors and CSP violations seen so far
}

// Viewports of the pages' users.
const (
	Wall   = "1920x1080" // the wall screen and the operator desk
	Laptop = "1366x768"  // an operator's laptop
	Phone  = "390x844"   // a grid worker's phone
)

// NewBrowser launches Debian's chromium (skipping, or failing under make test, when it is
// missing) with a fresh profile and a viewport of size ("1920x1080"), emulating a phone's touch
// screen when size is Phone. The browser ends with the test.
func NewBrowser(t testing.TB, size string) *Browser {
	t.Helper()
	chromium := transporttest.RequireTool(t, "chromium")
	var w, h int64
	if _, err := fmt.Sscanf(size, "%dx%d", &w, &h); err != nil {
		t.Fatalf("viewport %q: %v", size, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(int(w), int(h)),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, Ctx: ctx}
	emulate := chromedp.EmulateViewport(w, h)
	if size == Phone {
		emulate = chromedp.EmulateViewport(w, h, chromedp.EmulateScale(3), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(ctx, emulate); err != nil { // starts the browser, with no deadline
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// An answer of 4xx is the browser's log entry "Failed to load resource": the
			// pages meet 401 and 422 on purpose, and show them; a script error, a refusal
			// by the CSP ("Refused to …") or an uncaught exception is a problem.
			if m.IsException() || m.Type == chromedp.ConsoleError && !strings.HasPrefix(m.Text, "Failed to load resource") {
				b.note(fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text))
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return b
}

func (b *Browser) note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// Problems are the uncaught exceptions and console errors seen so far (a CSP violation is a
// console error): a page under test should have none.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Do runs chromedp actions with a deadline, failing the test on an error (what names the step).
func (b *Browser) Do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page problems: %v)", what, err, b.Problems())
	}
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes its value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v (page problems: %v)", expr, err, b.Problems())
	}
	return v
}

// WaitFor evaluates a JavaScript expression every 100 ms until it is truthy (a promise is
// awaited), across navigations (what says what is awaited).
func (b *Browser) WaitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	check := chromedp.Evaluate[bool]("(async () => !!(await ("+expr+")))()", chromedp.EvalAwaitPromise)
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, check)
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			page, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 1500) : ''`))
			b.t.Fatalf("timed out after %v waiting for %s (%s); last error: %v\npage problems: %v\npage text: %s",
				timeout, what, expr, last, b.Problems(), page)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// SignIn opens the sign-in page with ?next=next, signs in as acct and waits to arrive at next.
func (b *Browser) SignIn(base string, acct Account, next string) {
	b.t.Helper()
	b.Do("sign in as "+acct.Username, 30*time.Second,
		chromedp.Navigate(base+"/login/?next="+next),
		chromedp.WaitEnabled(chromedp.ID("submit")),
		chromedp.SendKeys(chromedp.ID("username"), acct.Username),
		chromedp.SendKeys(chromedp.ID("password"), acct.Password),
		chromedp.Click(chromedp.ID("submit")),
	)
	path := strings.SplitN(next, "?", 2)[0]
	b.WaitFor("arriving at "+next+" signed in", fmt.Sprintf(`location.pathname === %q`, path), 30*time.Second)
}

// Screenshot saves a PNG of the viewport to path (directories made as needed).
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// Offline cuts the tab's network (true) or restores it (false), as a phone losing its signal:
// requests fail and navigator.onLine follows.
func (b *Browser) Offline(off bool) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		EmulateOfflineServiceWorker: new(off),
		MatchedNetworkConditions:    []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}},
	})
	if err == nil {
		_, err = chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: off, DownloadThroughput: -1, UploadThroughput: -1})
	}
	if err != nil {
		b.t.Fatalf("set offline %v: %v", off, err)
	}
}
