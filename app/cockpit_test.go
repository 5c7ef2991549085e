package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/cockpit-ws/cockpittest"
	"github.com/urbanbrain/urbanbrain/event"
)

// The wall-screen page, in a real headless Chromium against the whole running system: it
// loads with the token from the fragment, draws the grids and KPIs, shows an incident
// raised from a 12345 ticket posted to the API, and shows the reconnect banner when the
// server goes away. Screenshots are kept in test-artifacts/.
func TestWallScreenShowsInjectedIncident(t *testing.T) {
	chromium := requireTool(t, "chromium")
	r := start(t, t.TempDir(), freeAddr(t))
	viewer := r.token(auth.Claims{Subject: "wall-1", Role: auth.RoleViewer})
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	grids := r.app.City().Grids()

	// Some traffic first, so the screen has something to show besides the test's incident.
	var batch []map[string]any
	for i := range 40 {
		g := grids[(i*37)%len(grids)]
		level := 30.0 + float64(i%5)*10
		if i%8 == 0 {
			level = 120 + float64(i)
		}
		batch = append(batch, sensorReading(fmt.Sprintf("WL-%03d", i), g.Centroid.Lat, g.Centroid.Lon, level))
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
		batch = append(batch, hotlineTicket(fmt.Sprintf("T-wall-bg-%02d", i), k.req, k.cat, k.text, "13900000000", g.Centroid))
	}
	postEvents(t, r, producer, batch)

	b := cockpittest.Start(t, chromium)
	b.Navigate(r.base + "/#token=" + viewer)
	b.WaitFor("the page to go live with the map", "window.urbanbrainCockpit && urbanbrainCockpit().live && urbanbrainCockpit().map && urbanbrainCockpit().kpi", 30*time.Second)
	var href string
	if err := b.Eval("location.href", &href); err != nil || strings.Contains(href, viewer) {
		t.Errorf("the token is still in the address bar: %q (%v)", href, err)
	}
	b.WaitFor("the background incidents", "urbanbrainCockpit().incidents >= 10", 60*time.Second)

	// The incident under test: an emergency 12345 call, which sorts to the top of the list.
	target := grids[len(grids)/2]
	ticket := hotlineTicket("T-wall-0001", event.RequestHelp, "0202", "地下通道积水很深，车辆被困", "13812345678", target.Centroid)
	ticket["data"].(map[string]any)["urgency"] = "emergency"
	postEvents(t, r, producer, []map[string]any{ticket})
	took := b.WaitFor("the posted incident on the wall", `document.getElementById('incidents').innerText.includes('T-wall-0001')`, 30*time.Second)
	t.Logf("incident on the page %v after the POST was accepted", took.Round(time.Millisecond))

	var row string
	if err := b.Eval(`[...document.querySelectorAll('#incidents li')].find(li => li.innerText.includes('T-wall-0001')).innerText`, &row); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "红色") || !strings.Contains(row, "道路积水") || !strings.Contains(row, target.Name) {
		t.Errorf("incident row %q: want 红色, 道路积水 and the grid %s", row, target.Name)
	}
	if strings.Contains(row, "13812345678") {
		t.Errorf("the wall screen shows a caller's phone number: %q", row)
	}
	b.WaitFor("the KPI tiles to count the open incidents", `Number(document.getElementById('k-open').textContent) >= 11`, 30*time.Second)
	b.Screenshot("../test-artifacts/cockpit-wall.png")
	if ex := b.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}

	// The server goes away: the page says it is reconnecting, visibly.
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	b.WaitFor("the reconnect banner", `!document.getElementById('banner').hidden && document.getElementById('banner').innerText.includes('重连')`, 30*time.Second)
	b.Screenshot("../test-artifacts/cockpit-wall-reconnecting.png")
}

func sensorReading(device string, lat, lon, levelCM float64) map[string]any {
	status := "ok"
	if levelCM > 80 {
		status = "alarm"
	}
	return map[string]any{
		"specversion": "1.0", "id": fmt.Sprintf("%s-%d", device, time.Now().UnixNano()), "source": "sensor-gw/test",
		"type": event.TypeSensorReading, "time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json",
		"data": map[string]any{"device_id": device, "kind": "water_level", "metrics": map[string]any{"level_cm": levelCM},
			"lat": lat, "lon": lon, "status": status},
	}
}

func postEvents(t *testing.T, r *running, token string, batch []map[string]any) {
	t.Helper()
	body, _ := json.Marshal(batch)
	req, _ := http.NewRequest("POST", r.base+"/api/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("POST events: %d %s", resp.StatusCode, b.String())
	}
}

// A leader signs in on the sign-in page (no token in any link) and lands on the wall screen,
// which goes live on the session cookie; a wrong password is said in Chinese, in place.
func TestSignInPageLeadsToTheWallScreen(t *testing.T) {
	chromium := requireTool(t, "chromium")
	r := start(t, t.TempDir(), freeAddr(t))
	admin := r.token(auth.Claims{Subject: "root", Role: auth.RoleAdmin})
	if code := r.do("POST", "/api/v1/users", admin, map[string]any{"username": "leader", "role": auth.RoleViewer,
		"password": "城市运行-2026-领导"}, nil); code != http.StatusCreated {
		t.Fatalf("create account: %d", code)
	}
	b := cockpittest.Start(t, chromium)
	b.Navigate(r.base + "/")
	b.WaitFor("the wall screen to offer the sign-in page", `!!document.querySelector('.fatal a[href^="/login"]')`, 30*time.Second)
	b.Navigate(r.base + "/login?next=/")
	b.WaitFor("the sign-in form, ready", `!!document.getElementById('submit') && !document.getElementById('submit').disabled`, 10*time.Second)
	submit := func(user, password string) {
		t.Helper()
		js := fmt.Sprintf(`(() => { document.getElementById('username').value = %q; document.getElementById('password').value = %q;
			document.getElementById('login').requestSubmit(); return true; })()`, user, password)
		var ok bool
		if err := b.Eval(js, &ok); err != nil {
			t.Fatal(err)
		}
	}
	submit("leader", "wrong-password-here")
	b.WaitFor("the refusal in place", `document.getElementById('message').textContent.includes('用户名或密码错误')`, 10*time.Second)
	submit("leader", "城市运行-2026-领导")
	b.WaitFor("the wall screen live on the session", "location.pathname === '/' && window.urbanbrainCockpit && urbanbrainCockpit().live", 30*time.Second)
	var scope string
	if err := b.Eval(`document.getElementById('scope').textContent`, &scope); err != nil || !strings.Contains(scope, "leader") {
		t.Errorf("scope line %q (%v): want the signed-in user", scope, err)
	}
	var cookies string
	if err := b.Eval(`document.cookie`, &cookies); err != nil || strings.Contains(cookies, auth.SessionCookie) {
		t.Errorf("the page's script can read the session cookie: %q (%v)", cookies, err)
	}
	b.Screenshot("../test-artifacts/sign-in-wall.png")
	if ex := b.Exceptions(); len(ex) > 0 {
		t.Errorf("page exceptions: %v", ex)
	}
}
