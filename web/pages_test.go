package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/web"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// Every page is served at /<name>/ with the pages' headers, its assets beside it; "/<name>"
// goes to "/<name>/" with its query; nothing else under a page answers (no listings).
func TestPagesAreServedWithTheirHeaders(t *testing.T) {
	mux := http.NewServeMux()
	for _, r := range web.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, name := range web.Pages {
		resp, body := get("/" + name + "/")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<html lang="zh-CN">`) {
			t.Errorf("/%s/: %d, want the page in Chinese", name, resp.StatusCode)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("/%s/: CSP %q", name, csp)
		}
		if strings.Contains(body, " on") && strings.Contains(body, "=\"") {
			for _, attr := range []string{" onclick=", " onload=", " onerror=", " onsubmit=", " oninput=", " onchange="} {
				if strings.Contains(body, attr) {
					t.Errorf("/%s/ has an inline event handler %q", name, attr)
				}
			}
		}
		if resp, _ := get("/" + name + "?next=%2Fdesk%2F"); resp.StatusCode != http.StatusMovedPermanently ||
			resp.Header.Get("Location") != "/"+name+"/?next=%2Fdesk%2F" {
			t.Errorf("/%s: %d to %q, want a redirect to /%s/ keeping the query", name, resp.StatusCode, resp.Header.Get("Location"), name)
		}
		if resp, _ := get("/" + name + "/index.html"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("/%s/index.html: %d, want 404 (the page is at /%s/)", name, resp.StatusCode, name)
		}
	}
	for path, want := range map[string]int{"/common/ub.js": 200, "/common/ub.css": 200, "/common/": 404, "/desk/nothing.js": 404} {
		if resp, _ := get(path); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// A desk operator signs in on the sign-in page and arrives at the desk, with the session's
// account known to the page's script and the session cookie out of its reach.
func TestSignInArrivesAtThePage(t *testing.T) {
	city := webtest.Start(t)
	acct := city.User("desk.li", auth.RoleOperator, nil)
	b := webtest.NewBrowser(t, webtest.Laptop)
	b.Do("open the sign-in page", 30*time.Second, chromedp.Navigate(city.Base+"/login/"), chromedp.WaitEnabled(chromedp.ID("submit")))
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("sign-in page accessibility: %v", p)
	}
	b.Zoom200(webtest.Laptop)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("sign-in page at 200 %% zoom: %v", p)
	}
	b.SignIn(city.Base, acct, "/desk/")
	b.WaitFor("the session known to the page", `window.UB && UB.me().then(s => s.subject === 'desk.li')`, 10*time.Second)
	if cookies := webtest.Eval[string](b, `document.cookie`); strings.Contains(cookies, auth.SessionCookie) {
		t.Errorf("the page's script can read the session cookie: %q", cookies)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// The accessibility check finds what it is for: an unlabelled input, a nameless button, an
// image without alt text, a positive tabindex and a low-contrast severity badge.
func TestAccessibilityCheckFindsProblems(t *testing.T) {
	b := webtest.NewBrowser(t, webtest.Laptop)
	page := `<html><body><input id="q"><button></button><img src="data:,"><a href="#" tabindex="3">x</a>` +
		`<span class="sev" style="color:#777;background:#888">红色</span></body></html>`
	b.Do("open a page with problems", 10*time.Second, chromedp.Navigate("data:text/html,"+url.PathEscape(page)))
	got := strings.Join(b.Accessibility(), "\n")
	for _, want := range []string{"no label: input#q", "no name: button", "no alt: img", "positive tabindex: a", "contrast"} {
		if !strings.Contains(got, want) {
			t.Errorf("the check missed %q; it found:\n%s", want, got)
		}
	}
}

// Signed in without a ?next=, each role lands on its own page: the rule author on the studio,
// the leader on the wall screen.
func TestSignInLandsOnTheRolesPage(t *testing.T) {
	city := webtest.Start(t)
	for _, tc := range []struct{ user, role, path string }{{"author.wu", auth.RoleRuleAuthor, "/rules/"}, {"leader.he", auth.RoleViewer, "/"}} {
		acct := city.User(tc.user, tc.role, nil)
		b := webtest.NewBrowser(t, webtest.Laptop)
		b.Do("sign in as "+tc.user, 30*time.Second,
			chromedp.Navigate(city.Base+"/login/"),
			chromedp.WaitEnabled(chromedp.ID("submit")),
			chromedp.SendKeys(chromedp.ID("username"), acct.Username),
			chromedp.SendKeys(chromedp.ID("password"), acct.Password),
			chromedp.Click(chromedp.ID("submit")))
		b.WaitFor(tc.role+" on "+tc.path, "location.pathname === '"+tc.path+"'", 30*time.Second)
	}
}
