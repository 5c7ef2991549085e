package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/event/eventtest"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// The wall-screen page against the whole running system: it loads with the token from the
// fragment, draws the grids and KPIs, shows an incident raised from a 12345 ticket posted to
// the API, and shows the reconnect banner when the server goes away.
func TestWallScreenShowsInjectedIncident(t *testing.T) {
	city := webtest.Start(t)
	viewer := city.Token(auth.Claims{Subject: "wall-1", Role: auth.RoleViewer})
	grids := city.App.City().Grids()

	// Some traffic first, so the screen has something to show besides the test's incident.
	var batch []map[string]any
	for i := range 40 {
		g := grids[(i*37)%len(grids)]
		level := 30.0 + float64(i%5)*10
		if i%8 == 0 {
			level = 120 + float64(i)
		}
		batch = append(batch, eventtest.SensorReading(fmt.Sprintf("WL-%03d", i), g.Centroid, level))
	}
	kinds := []struct{ req, cat, text string }{
		{event.RequestComplaint, "0401", "夜间施工噪音扰民"},
		{event.RequestReport, "0302", "小区门口占道经营"},
		{event.RequestHelp, "0601", "老人独居需要帮助"},
		{event.RequestComplaint, "0301", "垃圾桶满溢无人清运"},
	}
	for i := range 12 {
		k := kinds[i%len(kinds)]
		g := grids[(i*11+5)%len(grids)]
		batch = append(batch, eventtest.HotlineTicket(fmt.Sprintf("T-wall-bg-%02d", i), k.req, k.cat, k.text, "13900000000", g.Centroid))
	}
	city.Post(batch...)

	b := webtest.NewBrowser(t, webtest.Wall)
	b.Do("open the wall screen", 30*time.Second, chromedp.Navigate(city.Base+"/#token="+viewer))
	b.WaitFor("the page to go live with the map", "window.urbanbrainCockpit && urbanbrainCockpit().live && urbanbrainCockpit().map && urbanbrainCockpit().kpi", 30*time.Second)
	if href := webtest.Eval[string](b, "location.href"); strings.Contains(href, viewer) {
		t.Errorf("the token is still in the address bar: %q", href)
	}
	b.WaitFor("the background incidents", "urbanbrainCockpit().incidents >= 10", 60*time.Second)

	// The incident under test: an emergency 12345 call, which sorts to the top of the list.
	target := grids[len(grids)/2]
	ticket := eventtest.HotlineTicket("T-wall-0001", event.RequestHelp, "0202", "地下通道积水很深，车辆被困", "13812345678", target.Centroid)
	ticket["data"].(map[string]any)["urgency"] = "emergency"
	city.Post(ticket)
	b.WaitFor("the posted incident on the wall", `document.getElementById('incidents').innerText.includes('T-wall-0001')`, 30*time.Second)

	row := webtest.Eval[string](b, `[...document.querySelectorAll('#incidents li')].find(li => li.innerText.includes('T-wall-0001')).innerText`)
	if !strings.Contains(row, "红色") || !strings.Contains(row, "道路积水") || !strings.Contains(row, target.Name) {
		t.Errorf("incident row %q: want 红色, 道路积水 and the grid %s", row, target.Name)
	}
	if strings.Contains(row, "13812345678") {
		t.Errorf("the wall screen shows a caller's phone number: %q", row)
	}
	b.WaitFor("the KPI tiles to count the open incidents", `Number(document.getElementById('k-open').textContent) >= 11`, 30*time.Second)
	b.Screenshot("../test-artifacts/cockpit-wall.png")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}

	// The server goes away: the page says it is reconnecting, visibly.
	city.Stop()
	b.WaitFor("the reconnect banner", `!document.getElementById('banner').hidden && document.getElementById('banner').innerText.includes('重连')`, 30*time.Second)
	b.Screenshot("../test-artifacts/cockpit-wall-reconnecting.png")
}

// A leader signs in on the sign-in page (no token in any link) and lands on the wall screen,
// which goes live on the session cookie; a wrong password is said in Chinese, in place.
func TestSignInPageLeadsToTheWallScreen(t *testing.T) {
	city := webtest.Start(t)
	leader := city.User("leader", auth.RoleViewer, nil)
	b := webtest.NewBrowser(t, webtest.Wall)
	b.Do("open the wall screen", 30*time.Second, chromedp.Navigate(city.Base+"/"))
	b.WaitFor("the wall screen to offer the sign-in page", `!!document.querySelector('.fatal a[href^="/login"]')`, 30*time.Second)

	wrong := leader
	wrong.Password = "wrong-password-here"
	b.Do("sign in with a wrong password", 30*time.Second,
		chromedp.Navigate(city.Base+"/login?next=/"),
		chromedp.WaitEnabled(chromedp.ID("submit")),
		chromedp.SendKeys(chromedp.ID("username"), wrong.Username),
		chromedp.SendKeys(chromedp.ID("password"), wrong.Password),
		chromedp.Click(chromedp.ID("submit")))
	b.WaitFor("the refusal in place", `document.getElementById('message').textContent.includes('用户名或密码错误')`, 10*time.Second)

	b.SignIn(city.Base, leader, "/")
	b.WaitFor("the wall screen live on the session", "window.urbanbrainCockpit && urbanbrainCockpit().live", 30*time.Second)
	if scope := webtest.Eval[string](b, `document.getElementById('scope').textContent`); !strings.Contains(scope, "leader") {
		t.Errorf("scope line %q: want the signed-in user", scope)
	}
	if cookies := webtest.Eval[string](b, `document.cookie`); strings.Contains(cookies, auth.SessionCookie) {
		t.Errorf("the page's script can read the session cookie: %q", cookies)
	}
	b.Screenshot("../test-artifacts/sign-in-wall.png")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}
