// Package cockpittest drives a headless Chromium for tests of the wall-screen page. It
// speaks just enough of the DevTools protocol (CDP) over a websocket to load a page, run
// JavaScript in it and take a screenshot: the module has no browser driver, and the page's
// test needs nothing more.
package cockpittest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Flags every launch uses: headless, no sandbox (tests run as root in containers), and no
// traffic of Chromium's own (updates, sync, field trials, QUIC probes) on a machine that
// reaches nothing but loopback.
var Flags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--hide-scrollbars", "--mute-audio", "--window-size=1920,1080",
	"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
}

// Browser is one headless Chromium with one page.
type Browser struct {
	t   testing.TB
	cmd *exec.Cmd
	ws  *websocket.Conn

	mu         sync.Mutex
	id         int
	exceptions []string // uncaught JavaScript exceptions and console errors seen so far
}

var listening = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// Start launches chromium (its path) with a fresh profile in a temporary directory and
// attaches to its first page, sized 1920×1080. The browser is killed when the test ends.
func Start(t testing.TB, chromium string) *Browser {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	args := append(append([]string{}, Flags...), "--user-data-dir="+t.TempDir(), "about:blank")
	cmd := exec.CommandContext(ctx, chromium, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", chromium, err)
	}
	b := &Browser{t: t, cmd: cmd}
	exited := make(chan struct{})
	var browserURL string
	t.Cleanup(func() {
		if b.ws != nil {
			_ = b.ws.Close()
		}
		// Ask the browser to quit, so it takes its renderer processes with it; kill it
		// (the process this test started) only if it does not.
		if browserURL != "" {
			if ws, _, err := websocket.DefaultDialer.Dial(browserURL, nil); err == nil {
				_ = ws.WriteJSON(map[string]any{"id": 1, "method": "Browser.close"})
				_ = ws.Close()
			}
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cancel()
			<-exited
		}
		cancel()
	})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	// Chromium prints where its DevTools endpoint listens; the rest of stderr is drained so
	// the browser never blocks on a full pipe.
	found := make(chan string, 1)
	var tail []string
	var tailMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
			tailMu.Lock()
			tail = append(tail[max(0, len(tail)-20):], line)
			tailMu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case browserURL = <-found:
	case <-time.After(30 * time.Second):
		tailMu.Lock()
		defer tailMu.Unlock()
		t.Fatalf("chromium did not open its DevTools endpoint within 30s; stderr:\n%s", strings.Join(tail, "\n"))
	}
	host := strings.TrimPrefix(browserURL, "ws://")
	host = host[:strings.Index(host, "/")]

	pageURL, err := firstPage(host)
	if err != nil {
		t.Fatalf("chromium page target: %v", err)
	}
	if b.ws, _, err = websocket.DefaultDialer.Dial(pageURL, nil); err != nil {
		t.Fatalf("attach to the page: %v", err)
	}
	b.Call("Runtime.enable", nil, nil)
	b.Call("Page.enable", nil, nil)
	b.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

func firstPage(host string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			var targets []struct{ Type, WebSocketDebuggerURL string }
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && tg.WebSocketDebuggerURL != "" {
					return tg.WebSocketDebuggerURL, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no page target at %s: %v", host, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Call sends one CDP command and decodes its result into out (if not nil); it fails the
// test on a protocol error. Events that arrive meanwhile are scanned for exceptions.
func (b *Browser) Call(method string, params any, out any) {
	b.t.Helper()
	if err := b.call(method, params, out); err != nil {
		b.t.Fatalf("CDP %s: %v", method, err)
	}
}

func (b *Browser) call(method string, params any, out any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.id++
	id := b.id
	if params == nil {
		params = map[string]any{}
	}
	if err := b.ws.WriteJSON(map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	_ = b.ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := b.ws.ReadJSON(&msg); err != nil {
			return err
		}
		if msg.ID == 0 {
			b.noteEvent(msg.Method, msg.Params)
			continue
		}
		if msg.ID != id {
			continue
		}
		if msg.Error != nil {
			return fmt.Errorf("%d %s", msg.Error.Code, msg.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(msg.Result, out)
		}
		return nil
	}
}

func (b *Browser) noteEvent(method string, params json.RawMessage) {
	switch method {
	case "Runtime.exceptionThrown":
		var p struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &p)
		b.exceptions = append(b.exceptions, p.ExceptionDetails.Text+" "+p.ExceptionDetails.Exception.Description)
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value any `json:"value"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &p)
		if p.Type == "error" {
			b.exceptions = append(b.exceptions, fmt.Sprint("console.error ", p.Args))
		}
	}
}

// Exceptions returns the uncaught exceptions and console errors the page has produced so far.
func (b *Browser) Exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.exceptions...)
}

// Navigate loads url in the page.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	b.Call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("navigate to %s: %s", url, res.ErrorText)
	}
}

// Eval runs a JavaScript expression in the page and decodes its value into out.
func (b *Browser) Eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return errors.New(res.ExceptionDetails.Text)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// WaitFor evaluates a boolean JavaScript expression every 100ms until it is true; it fails
// the test after timeout. It waits for the page to catch up, it asserts no timing.
func (b *Browser) WaitFor(what, expr string, timeout time.Duration) time.Duration {
	b.t.Helper()
	start := time.Now()
	for {
		var ok bool
		err := b.Eval("Boolean("+expr+")", &ok)
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			b.t.Fatalf("timed out after %v waiting for %s (%s; last error %v; page exceptions %v)", timeout, what, expr, err, b.Exceptions())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot saves a PNG of the page at path, creating its directory.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	b.Call("Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if i := strings.LastIndex(path, "/"); i > 0 {
		if err := os.MkdirAll(path[:i], 0o755); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
