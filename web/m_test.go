package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/event/eventtest"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// rosterGrid is a grid of GET /api/v1/city with the workers posted to it.
type rosterGrid struct {
	Code     string      `json:"code"`
	Name     string      `json:"name"`
	Centroid event.Point `json:"centroid"`
	Workers  []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"workers"`
}

// gridWorker is a worker of the roster with an account to sign in with on the phone.
type gridWorker struct {
	webtest.Account
	Name string
	Grid rosterGrid
}

// newGridWorker makes the account of the first grid worker on the city's roster: its username
// is the roster id (W-990101001001-01-D), the id dispatch assigns tasks to, scoped to the grid.
func newGridWorker(t *testing.T, city *webtest.City) gridWorker {
	t.Helper()
	var c struct {
		Grids []rosterGrid `json:"grids"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/city", city.Admin(), nil, &c); code != http.StatusOK {
		t.Fatalf("GET /api/v1/city: %d", code)
	}
	for _, g := range c.Grids {
		for _, w := range g.Workers {
			if w.Role != "worker" {
				continue
			}
			acct := city.User(w.ID, auth.RoleWorker, map[string]any{"grids": []string{g.Code}})
			return gridWorker{Account: acct, Name: w.Name, Grid: g}
		}
	}
	t.Fatal("the demo city has no grid worker on its roster")
	return gridWorker{}
}

// incidentFor posts a 12345 ticket with content in the worker's grid, waits for its incident
// and makes sure it is the worker's (dispatch may have picked the grid's other worker on duty:
// then an operator reassigns it): the incident id.
func incidentFor(t *testing.T, city *webtest.City, w gridWorker, ticket, content string) string {
	t.Helper()
	city.Post(eventtest.HotlineTicket(ticket, event.RequestComplaint, "0301", content, "13812345678", w.Grid.Centroid))
	admin := city.Admin()
	var inc event.Incident
	webtest.Eventually(t, 60*time.Second, "the incident of ticket "+ticket+" dispatched", func() bool {
		var l struct {
			Incidents []event.Incident `json:"incidents"`
		}
		city.Do(http.MethodGet, "/api/v1/incidents?grid="+w.Grid.Code, admin, nil, &l)
		for _, i := range l.Incidents {
			if slices.ContainsFunc(i.Reports, func(r event.Report) bool { return r.EventID == ticket }) {
				inc = i
				return i.Status != event.StatusNew
			}
		}
		return false
	})
	if inc.Status == event.StatusDispatched && inc.Assignment.WorkerID == w.Username {
		return inc.ID
	}
	action := "reassign"
	if inc.Status != event.StatusDispatched {
		action = "dispatch"
	}
	cmd := map[string]any{"action": action, "id": "to-" + w.Username, "reason": "派给测试网格员",
		"assignment": map[string]any{"worker_id": w.Username, "worker_name": w.Name, "grid": w.Grid.Code}}
	var answer map[string]any
	operator := city.Token(auth.Claims{Subject: "desk-test", Role: auth.RoleOperator})
	if code := city.Do(http.MethodPost, "/api/v1/incidents/"+inc.ID+"/actions", operator, cmd, &answer); code != http.StatusOK {
		t.Fatalf("%s %s to %s: %d %v", action, inc.ID, w.Username, code, answer)
	}
	return inc.ID
}

// incident reads an incident as the admin.
func incident(t *testing.T, city *webtest.City, id string) event.Incident {
	t.Helper()
	var d struct {
		Incident event.Incident `json:"incident"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/incidents/"+id, city.Admin(), nil, &d); code != http.StatusOK {
		t.Fatalf("GET incident %s: %d", id, code)
	}
	return d.Incident
}

// changes counts the incident's timeline changes of action.
func changes(t *testing.T, city *webtest.City, id, action string) int {
	t.Helper()
	var tl struct {
		Timeline []struct {
			Kind   string `json:"kind"`
			Action string `json:"action"`
		} `json:"timeline"`
	}
	if code := city.Do(http.MethodGet, "/api/v1/incidents/"+id+"/timeline", city.Admin(), nil, &tl); code != http.StatusOK {
		t.Fatalf("GET timeline %s: %d", id, code)
	}
	n := 0
	for _, e := range tl.Timeline {
		if e.Kind == "change" && e.Action == action {
			n++
		}
	}
	return n
}

// samplePNG writes a small PNG photo of the scene to dir.
func samplePNG(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 48, 32))
	for y := range 32 {
		for x := range 48 {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 5), uint8(y * 7), 0x80, 0xff})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "现场.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, buf.Bytes()
}

// locate gives the phone a position, with the page's permission to read it.
func locate(t *testing.T, b *webtest.Browser, origin string, p event.Point) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "geolocation"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin,
	}); err != nil {
		t.Fatalf("grant geolocation: %v", err)
	}
	acc := 5.0
	if _, err := chromedp.Call(ctx, emulation.SetGeolocationOverride, emulation.SetGeolocationOverrideParams{
		Latitude: &p.Lat, Longitude: &p.Lon, Accuracy: &acc,
	}); err != nil {
		t.Fatalf("set the position: %v", err)
	}
}

func card(id string) string { return fmt.Sprintf(`#tasks li[data-incident=%q]`, id) }

// tap presses the button of action on the card of incident id.
func tap(b *webtest.Browser, id, action string) {
	// The card is redrawn as the task changes: find the button and press it in one step.
	sel := card(id) + fmt.Sprintf(` button[data-action=%q]`, action)
	b.WaitFor("tapping "+action+" on "+id, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel), 30*time.Second)
}

// queueState is the state of the page's queued command of action on incident id ("" if none).
func queueState(b *webtest.Browser, id, action string) string {
	return webtest.Eval[string](b, fmt.Sprintf(`(() => { const q = UBM.queue().filter(q => q.incident === %q && q.action === %q); return q.length ? q[q.length-1].state : ''; })()`, id, action))
}

// A worker signs for a task and starts it on the phone, loses the network, resolves it with a
// note and a photo, and gets the network back: the resolution arrives once, with the photo.
func TestWorkerAppOfflineResolveWithPhoto(t *testing.T) {
	city := webtest.Start(t)
	w := newGridWorker(t, city)
	b := webtest.NewBrowser(t, webtest.Phone)
	b.SignIn(city.Base, w.Account, "/m/")
	id := incidentFor(t, city, w, "T-m-0001", "小区门口垃圾桶满溢，三天没人清运")

	b.WaitFor("the task on the phone", fmt.Sprintf(`!!document.querySelector(%q)`, card(id)), 30*time.Second)
	if got := webtest.Eval[string](b, `document.getElementById('who').textContent`); !strings.Contains(got, w.Name) {
		t.Errorf("header %q, want the worker's name %s", got, w.Name)
	}
	if href := webtest.Eval[string](b, fmt.Sprintf(`document.querySelector(%q).getAttribute('href')`, card(id)+" a.m-map")); !strings.HasPrefix(href, "geo:") {
		t.Errorf("map link %q, want a geo: URI", href)
	}
	b.WaitFor("an SLA countdown", fmt.Sprintf(`/签收剩余/.test(document.querySelector(%q).textContent)`, card(id)+" .m-sla"), 10*time.Second)
	b.Screenshot("../test-artifacts/m-tasks.png")

	tap(b, id, "accept")
	webtest.Eventually(t, 30*time.Second, "签收 arrives", func() bool { return incident(t, city, id).Status == event.StatusAccepted })
	tap(b, id, "start")
	webtest.Eventually(t, 30*time.Second, "开始处置 arrives", func() bool { return incident(t, city, id).Status == event.StatusInProgress })
	b.WaitFor("the resolve button", fmt.Sprintf(`!!document.querySelector(%q)`, card(id)+` button[data-action="resolve"]`), 30*time.Second)

	b.WaitFor("the service worker controlling the page", `!!navigator.serviceWorker.controller`, 30*time.Second)
	b.Offline(true)
	b.WaitFor("the phone offline", `!navigator.onLine`, 10*time.Second)
	photo, photoBytes := samplePNG(t, t.TempDir())
	here := w.Grid.Centroid
	locate(t, b, city.Base, here)
	tap(b, id, "resolve")
	b.WaitFor("the resolve form", `document.getElementById('act').open`, 10*time.Second)
	// The app never waits for a position; the test does, to know it is attached.
	b.WaitFor("the phone's position", `document.getElementById('act-loc').textContent.includes('将附上当前位置')`, 10*time.Second)
	b.Do("write the note and add the photo", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("act-note"), "垃圾已清运，桶已清洗"),
		chromedp.SetUploadFiles(chromedp.ID("act-photos"), []string{photo}),
	)
	b.WaitFor("the photo's preview", `(() => { const i = document.querySelector('#act-previews img'); return i && i.src.startsWith('blob:') && i.complete && i.naturalWidth === 48; })()`, 10*time.Second)
	b.Screenshot("../test-artifacts/m-resolve.png")
	b.Do("submit the resolution", 10*time.Second, chromedp.Click(chromedp.ID("act-submit")))
	b.WaitFor("the resolution queued", fmt.Sprintf(`UBM.queue().some(q => q.incident === %q && q.action === 'resolve' && q.state === 'pending')`, id), 10*time.Second)
	b.WaitFor("the queue showing it 待发送", `[...document.querySelectorAll('#queue li[data-state="pending"]')].some(li => li.textContent.includes('待发送') && li.textContent.includes('处置反馈'))`, 10*time.Second)
	// The queue outlives the page: reloaded without a network, the app still holds it.
	b.Do("reload offline", 30*time.Second, chromedp.Reload())
	b.WaitFor("the queued resolution kept across the reload", fmt.Sprintf(`!!window.UBM && UBM.queue().some(q => q.incident === %q && q.action === 'resolve' && q.state === 'pending')`, id), 30*time.Second)
	b.WaitFor("the task shown from the phone's copy, as last seen", fmt.Sprintf(`/处置/.test(document.querySelector(%q).textContent)`, card(id)+" .m-sla"), 10*time.Second)
	b.WaitFor("the queued photo kept as a Blob and shown", `(() => { const i = document.querySelector('#queue li[data-state="pending"] img.m-q-thumb'); return i && i.src.startsWith('blob:') && i.complete && i.naturalWidth === 48; })()`, 10*time.Second)
	webtest.Eval[bool](b, `(document.querySelector('#queue li[data-state="pending"]').scrollIntoView({block: 'center'}), true)`)
	b.Screenshot("../test-artifacts/m-queue.png")
	time.Sleep(2 * time.Second) // a resolve that leaked out would have arrived by now
	if inc := incident(t, city, id); inc.Status != event.StatusInProgress || changes(t, city, id, "resolve") != 0 {
		t.Fatalf("offline, the API shows %s with %d resolves; want in_progress and none", inc.Status, changes(t, city, id, "resolve"))
	}

	b.Offline(false)
	b.WaitFor("the resolution sent", fmt.Sprintf(`UBM.queue().some(q => q.incident === %q && q.action === 'resolve' && q.state === 'sent')`, id), 60*time.Second)
	b.WaitFor("the queue showing it 已发送", `[...document.querySelectorAll('#queue li[data-state="sent"]')].some(li => li.textContent.includes('已发送') && li.textContent.includes('处置反馈'))`, 10*time.Second)
	inc := incident(t, city, id)
	if inc.Status != event.StatusResolved || inc.Evidence == nil {
		t.Fatalf("after reconnecting: %s, evidence %+v; want resolved with evidence", inc.Status, inc.Evidence)
	}
	if n := changes(t, city, id, "resolve"); n != 1 {
		t.Errorf("%d resolves on the timeline, want exactly 1", n)
	}
	if len(inc.Evidence.Photos) != 1 || !strings.HasSuffix(inc.Evidence.Photos[0], ".png") || strings.Contains(inc.Evidence.Photos[0], "/") {
		t.Fatalf("evidence photos %q, want one photo name", inc.Evidence.Photos)
	}
	if inc.Evidence.Note != "垃圾已清运，桶已清洗" {
		t.Errorf("evidence note %q", inc.Evidence.Note)
	}
	if l := inc.Evidence.Location; l == nil || math.Abs(l.Lat-here.Lat) > 1e-6 || math.Abs(l.Lon-here.Lon) > 1e-6 {
		t.Errorf("evidence location %+v, want the phone's position %+v", l, here)
	}
	req, _ := http.NewRequest(http.MethodGet, city.Base+"/api/v1/incidents/"+id+"/photos/"+inc.Evidence.Photos[0], nil)
	req.Header.Set("Authorization", "Bearer "+city.Admin())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, photoBytes) {
		t.Errorf("GET the photo: %d, %d bytes; want 200 and the %d bytes uploaded", resp.StatusCode, len(got), len(photoBytes))
	}
	// Sending again (another flush, a reload) sends nothing twice.
	webtest.Eval[bool](b, `UBM.flush().then(() => true)`)
	time.Sleep(time.Second)
	if n := changes(t, city, id, "resolve"); n != 1 {
		t.Errorf("after another flush: %d resolves, want 1", n)
	}
	b.WaitFor("the card showing it resolved", fmt.Sprintf(`document.querySelector(%q).textContent.includes('已处置')`, card(id)), 30*time.Second)
	b.WaitFor("the live feed back", `document.getElementById('conn').textContent === '实时'`, 30*time.Second)
	b.WaitFor("the toasts gone", `!document.querySelector('.ub-toast')`, 15*time.Second)
	b.Screenshot("../test-artifacts/m-sent.png")
	// Offline, the socket's attempts to reconnect fail, and the browser says so; nothing else.
	for _, p := range b.Problems() {
		if !strings.Contains(p, "net::ERR_INTERNET_DISCONNECTED") {
			t.Errorf("page problem: %s", p)
		}
	}

	// On the command centre's desk the resolution is there, with the photo the phone took.
	operator := city.User("desk.zhou", auth.RoleOperator, nil)
	desk := webtest.NewBrowser(t, webtest.Wall)
	desk.SignIn(city.Base, operator, "/desk/?incident="+id)
	desk.WaitFor("the phone's photo on the operator's incident page", fmt.Sprintf(
		`(() => { const i = document.querySelector('#detail-body img[src$=%q]'); return i && i.complete && i.naturalWidth === 48; })()`,
		inc.Evidence.Photos[0]), 30*time.Second)
	desk.Screenshot("../test-artifacts/desk-photo-from-phone.png")
}

// The phone app installs: its manifest has what an install needs and icons that load, its
// service worker controls /m/, and with the network cut /m/ still opens.
func TestWorkerAppIsInstallable(t *testing.T) {
	city := webtest.Start(t)
	w := newGridWorker(t, city)
	b := webtest.NewBrowser(t, webtest.Phone)
	b.SignIn(city.Base, w.Account, "/m/")

	manifest := webtest.Eval[string](b, `(async () => {
	  const link = document.querySelector('link[rel="manifest"]');
	  const r = await fetch(link.href);
	  return JSON.stringify(await r.json());
	})()`)
	var m struct {
		Name      string `json:"name"`
		ShortName string `json:"short_name"`
		StartURL  string `json:"start_url"`
		Scope     string `json:"scope"`
		Display   string `json:"display"`
		Icons     []struct {
			Src, Sizes, Type string
		} `json:"icons"`
	}
	if err := json.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatalf("manifest %s: %v", manifest, err)
	}
	if m.Name == "" || m.ShortName == "" || m.StartURL != "/m/" || m.Scope != "/m/" || m.Display != "standalone" {
		t.Errorf("manifest %+v: want name, short_name, start_url and scope /m/, display standalone", m)
	}
	sizes := map[string]bool{}
	for _, ic := range m.Icons {
		sizes[ic.Sizes+" "+ic.Type] = true
		want := 0
		fmt.Sscanf(ic.Sizes, "%d", &want)
		got := webtest.Eval[int](b, fmt.Sprintf(`new Promise(ok => { const i = new Image(); i.onload = () => ok(i.naturalWidth || 1); i.onerror = () => ok(0); i.src = %q; })`, ic.Src))
		if got == 0 || (want > 0 && got != want) {
			t.Errorf("icon %s: width %d, want it to load at %d", ic.Src, got, want)
		}
	}
	for _, want := range []string{"192x192 image/png", "512x512 image/png", "any image/svg+xml"} {
		if !sizes[want] {
			t.Errorf("manifest icons %v lack %s", m.Icons, want)
		}
	}

	b.WaitFor("the service worker active", `navigator.serviceWorker.ready.then(r => !!r.active && r.scope.endsWith('/m/'))`, 30*time.Second)
	b.Do("reload", 30*time.Second, chromedp.Reload())
	b.WaitFor("the page controlled by the service worker", `!!navigator.serviceWorker.controller && navigator.serviceWorker.controller.scriptURL.endsWith('/m/sw.js')`, 30*time.Second)
	b.WaitFor("the app started", `!!window.UBM && document.getElementById('who').textContent.includes(`+fmt.Sprintf("%q", w.Username)+`)`, 30*time.Second)
	// Chromium's own reading of the manifest and its verdict on installing the app.
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	am, err := chromedp.Call(ctx, page.GetAppManifest, page.GetAppManifestParams{})
	if err != nil {
		t.Fatalf("Page.getAppManifest: %v", err)
	}
	for _, e := range am.Errors {
		t.Errorf("manifest %s: %d:%d: %s", am.URL, e.Line, e.Column, e.Message)
	}
	inst, err := chromedp.Call(ctx, page.GetInstallabilityErrors, cdp.Empty{})
	if err != nil {
		t.Fatalf("Page.getInstallabilityErrors: %v", err)
	}
	for _, e := range inst.InstallabilityErrors {
		t.Errorf("not installable: %s %v", e.ErrorID, e.ErrorArguments)
	}

	b.Offline(true)
	b.Do("reload offline", 30*time.Second, chromedp.Reload())
	b.WaitFor("the app shell offline", `!navigator.onLine && !!window.UB && !!window.UBM && document.getElementById('tasks-h').textContent.includes('我的任务') && getComputedStyle(document.querySelector('.m-head')).position === 'sticky'`, 30*time.Second)
	b.WaitFor("the offline notice", `!document.getElementById('banner').hidden && document.getElementById('banner').textContent.includes('离线')`, 10*time.Second)
	if who := webtest.Eval[string](b, `document.getElementById('who').textContent`); !strings.Contains(who, w.Username) {
		t.Errorf("offline, the header shows %q; want the worker %s", who, w.Username)
	}
	b.Offline(false)
}

// Hostile ticket text shows as text on the task card and runs nothing; the page passes the
// accessibility basics on the phone and at 200 % zoom, with no errors.
func TestWorkerAppHostileTextIsInertAndAccessible(t *testing.T) {
	city := webtest.Start(t)
	w := newGridWorker(t, city)
	const hostile = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
	id := incidentFor(t, city, w, "T-m-hostile", hostile)
	b := webtest.NewBrowser(t, webtest.Phone)
	b.SignIn(city.Base, w.Account, "/m/")
	b.WaitFor("the task on the phone", fmt.Sprintf(`!!document.querySelector(%q)`, card(id)), 30*time.Second)
	text := webtest.Eval[string](b, fmt.Sprintf(`document.querySelector(%q).innerText`, card(id)))
	if !strings.Contains(text, `<img src=x onerror="window.__pwned=1">`) {
		t.Errorf("the card does not show the ticket's text literally: %q", text)
	}
	if webtest.Eval[bool](b, `window.__pwned !== undefined || !!document.querySelector('#tasks img, #tasks script')`) {
		t.Error("the ticket's text became markup")
	}
	// The form fields are labelled too: open the resolve form after signing for and starting.
	tap(b, id, "accept")
	tap(b, id, "start")
	tap(b, id, "resolve")
	b.WaitFor("the resolve form", `document.getElementById('act').open`, 10*time.Second)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("the resolve form's accessibility at 390×844: %v", p)
	}
	b.Do("close the form", 10*time.Second, chromedp.Click(chromedp.ID("act-cancel")))
	b.WaitFor("the form closed", `!document.getElementById('act').open`, 10*time.Second)
	b.WaitFor("the queue shown", `!document.getElementById('queue-box').hidden`, 10*time.Second)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("accessibility at 390×844: %v", p)
	}
	b.Zoom200(webtest.Phone)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("accessibility at 200 %% zoom: %v", p)
	}
	tap(b, id, "resolve")
	b.WaitFor("the resolve form", `document.getElementById('act').open`, 10*time.Second)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("the resolve form at 200 %% zoom: %v", p)
	}
	b.Screenshot("../test-artifacts/m-zoom200.png")
	if webtest.Eval[bool](b, `window.__pwned !== undefined`) {
		t.Error("the ticket's text ran")
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// An action queued offline that the API refuses when it finally arrives (the desk marked the
// incident 误报 meanwhile) is final: shown as failed with the API's reason, never sent again.
func TestWorkerAppShowsARefusedQueuedAction(t *testing.T) {
	city := webtest.Start(t)
	w := newGridWorker(t, city)
	id := incidentFor(t, city, w, "T-m-refused", "路灯不亮，晚上很黑")
	b := webtest.NewBrowser(t, webtest.Phone)
	b.SignIn(city.Base, w.Account, "/m/")
	tap(b, id, "accept")
	webtest.Eventually(t, 30*time.Second, "签收 arrives", func() bool { return incident(t, city, id).Status == event.StatusAccepted })
	locate(t, b, city.Base, w.Grid.Centroid)
	tap(b, id, "progress")
	b.WaitFor("the progress form", `document.getElementById('act').open`, 10*time.Second)
	b.Do("report progress", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("act-note"), "已到现场，正在排查线路"),
		chromedp.Click(chromedp.ID("act-submit")),
	)
	webtest.Eventually(t, 30*time.Second, "处置进展 arrives", func() bool { return changes(t, city, id, "progress") == 1 })

	b.Offline(true)
	b.WaitFor("the phone offline", `!navigator.onLine`, 10*time.Second)
	tap(b, id, "request_extension")
	b.WaitFor("the extension form", `document.getElementById('act').open`, 10*time.Second)
	b.Do("ask for 48 hours more", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("act-reason"), "需要等待配件到货"),
		chromedp.SetValue(chromedp.ID("act-extend"), "48h"),
		chromedp.Click(chromedp.ID("act-submit")),
	)
	b.WaitFor("the request queued", fmt.Sprintf(`UBM.queue().some(q => q.incident === %q && q.action === 'request_extension' && q.state === 'pending')`, id), 10*time.Second)

	cancel := map[string]any{"action": "cancel", "id": "cancel-" + id, "reason": "误报：路灯正常"}
	if code := city.Do(http.MethodPost, "/api/v1/incidents/"+id+"/actions", city.Admin(), cancel, nil); code != http.StatusOK {
		t.Fatalf("cancel %s: %d", id, code)
	}
	b.Offline(false)
	b.WaitFor("the request refused", fmt.Sprintf(`UBM.queue().some(q => q.incident === %q && q.action === 'request_extension' && q.state === 'failed')`, id), 60*time.Second)
	// The queue's state changes when the answer comes, and its list is drawn once the item is
	// saved: wait for the list too.
	b.WaitFor("the refusal on the queue's list", `!!document.querySelector('#queue li[data-state="failed"]')`, 10*time.Second)
	shown := webtest.Eval[string](b, `[...document.querySelectorAll('#queue li[data-state="failed"]')].map(li => li.innerText).join('\n')`)
	if !strings.Contains(shown, "失败") || !strings.Contains(shown, "延期申请") || !strings.Contains(shown, "illegal_transition") {
		t.Errorf("the queue shows %q; want the request 失败 with the API's reason", shown)
	}
	if n := changes(t, city, id, "request_extension"); n != 0 {
		t.Errorf("%d extension requests on the timeline, want none", n)
	}
	webtest.Eval[bool](b, `UBM.flush().then(() => true)`)
	if got := queueState(b, id, "request_extension"); got != "failed" {
		t.Errorf("after another flush the request is %q, want it left failed", got)
	}
	b.WaitFor("the cancelled task gone from the list", fmt.Sprintf(`!document.querySelector(%q)`, card(id)), 30*time.Second)
}
