package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
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

// newGridWorker makes the account of a roster worker of the n-th grid that has one. Account
// names are lower case (a-z 0-9 . _ -) and roster ids are not (W-990101001001-01-D), so the
// account is the roster id in lower case, scoped to the worker's grid.
func newGridWorker(t *testing.T, city *webtest.City, n int) gridWorker {
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
			if n--; n >= 0 {
				break
			}
			acct := city.User(strings.ToLower(w.ID), auth.RoleWorker, map[string]any{"grids": []string{g.Code}})
			return gridWorker{Account: acct, Name: w.Name, Grid: g}
		}
	}
	t.Fatal("the demo city has no grid worker on its roster")
	return gridWorker{}
}

// incidentFor posts a 12345 ticket with content in the worker's grid, waits for its incident
// and has it dispatched to the worker's account (an operator's reassign, or dispatch if the
// system has not dispatched it yet): the incident id.
func incidentFor(t *testing.T, city *webtest.City, w gridWorker, ticket, content string) string {
	t.Helper()
	ingest := city.Token(auth.Claims{Subject: "hotline-test", Role: auth.RoleIngest})
	tk := map[string]any{
		"specversion": "1.0", "id": ticket, "source": "hotline-12345/test", "type": event.TypeHotlineTicket,
		"time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json",
		"data": map[string]any{
			"ticket_id": ticket, "channel": "phone", "caller_name": "王小明", "caller_phone": "13812345678",
			"request_type": event.RequestComplaint, "category_code": "0301", "content": content,
			"lat": w.Grid.Centroid.Lat, "lon": w.Grid.Centroid.Lon, "urgency": "normal",
		},
	}
	if code := city.Do(http.MethodPost, "/api/v1/events", ingest, tk, nil); code != http.StatusAccepted {
		t.Fatalf("post ticket %s: %d", ticket, code)
	}
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
	action := "reassign"
	if inc.Status != event.StatusDispatched {
		action = "dispatch"
	}
	cmd := map[string]any{"action": action, "id": "to-" + w.Username, "reason": "派给测试网格员",
		"assignment": map[string]any{"worker_id": w.Username, "worker_name": w.Name, "grid": w.Grid.Code}}
	var answer map[string]any
	if code := city.Do(http.MethodPost, "/api/v1/incidents/"+inc.ID+"/actions", admin, cmd, &answer); code != http.StatusOK {
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

func card(id string) string { return fmt.Sprintf(`#tasks li[data-incident=%q]`, id) }

// tap presses the button of action on the card of incident id.
func tap(b *webtest.Browser, id, action string) {
	sel := card(id) + fmt.Sprintf(` button[data-action=%q]`, action)
	b.WaitFor("the "+action+" button of "+id, fmt.Sprintf(`!!document.querySelector(%q)`, sel), 30*time.Second)
	b.Do("tap "+action, 10*time.Second, chromedp.Click(chromedp.CSS(sel)))
}

// queueState is the state of the page's queued command of action on incident id ("" if none).
func queueState(b *webtest.Browser, id, action string) string {
	return webtest.Eval[string](b, fmt.Sprintf(`(() => { const q = UBM.queue().filter(q => q.incident === %q && q.action === %q); return q.length ? q[q.length-1].state : ''; })()`, id, action))
}

// A worker signs for a task and starts it on the phone, loses the network, resolves it with a
// note and a photo, and gets the network back: the resolution arrives once, with the photo.
func TestWorkerAppOfflineResolveWithPhoto(t *testing.T) {
	city := webtest.Start(t)
	w := newGridWorker(t, city, 0)
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

	b.Offline(true)
	b.WaitFor("the phone offline", `!navigator.onLine`, 10*time.Second)
	photo, photoBytes := samplePNG(t, t.TempDir())
	tap(b, id, "resolve")
	b.WaitFor("the resolve form", `document.getElementById('act').open`, 10*time.Second)
	b.Do("write the note and add the photo", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("act-note"), "垃圾已清运，桶已清洗"),
		chromedp.SetUploadFiles(chromedp.ID("act-photos"), []string{photo}),
	)
	b.WaitFor("the photo's preview", `(() => { const i = document.querySelector('#act-previews img'); return i && i.src.startsWith('blob:') && i.complete && i.naturalWidth === 48; })()`, 10*time.Second)
	b.Screenshot("../test-artifacts/m-resolve.png")
	b.Do("submit the resolution", 10*time.Second, chromedp.Click(chromedp.ID("act-submit")))
	b.WaitFor("the resolution queued", fmt.Sprintf(`UBM.queue().some(q => q.incident === %q && q.action === 'resolve' && q.state === 'pending')`, id), 10*time.Second)
	b.WaitFor("the queue showing it 待发送", `[...document.querySelectorAll('#queue li[data-state="pending"]')].some(li => li.textContent.includes('待发送') && li.textContent.includes('处置反馈'))`, 10*time.Second)
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
	b.Screenshot("../test-artifacts/m-tasks.png")
}

// The phone app installs: its manifest has what an install needs and icons that load, its
// service worker controls /m/, and with the network cut /m/ still opens.
func TestWorkerAppIsInstallable(t *testing.T) {
	city := webtest.Start(t)
	w := newGridWorker(t, city, 0)
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
	w := newGridWorker(t, city, 0)
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
	if webtest.Eval[bool](b, `window.__pwned !== undefined`) {
		t.Error("the ticket's text ran")
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}
