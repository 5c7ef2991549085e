package web_test

import (
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/event/eventtest"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// deskIncident is what the desk tests read of an incident through the API.
type deskIncident struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Version    int64  `json:"version"`
	Title      string `json:"title"`
	VerifiedBy string `json:"verified_by"`
	Escalation string `json:"escalation"`
	Callback   string `json:"callback"`
	MergedInto string `json:"merged_into"`
	Area       struct {
		Grid string `json:"grid"`
	} `json:"area"`
	Assignment struct {
		WorkerID string `json:"worker_id"`
		Grid     string `json:"grid"`
		Agency   string `json:"agency"`
	} `json:"assignment"`
	Extension *struct {
		State string `json:"state"`
	} `json:"extension"`
	Evidence *struct {
		Photos []string `json:"photos"`
	} `json:"evidence"`
	Reports []struct {
		EventID string `json:"event_id"`
		Caller  *struct {
			Name  string `json:"name"`
			Phone string `json:"phone"`
		} `json:"caller"`
	} `json:"reports"`
}

type deskGrid struct {
	Code     string      `json:"code"`
	Name     string      `json:"name"`
	Centroid event.Point `json:"centroid"`
	Workers  []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"workers"`
}

// deskCity is a running city with what the desk tests need of it.
type deskCity struct {
	*webtest.City
	t      *testing.T
	admin  string
	ingest string
	grids  []deskGrid
}

func startDeskCity(t *testing.T) *deskCity {
	t.Helper()
	c := &deskCity{City: webtest.Start(t), t: t}
	c.admin = c.Admin()
	c.ingest = c.Token(auth.Claims{Subject: "test-hotline", Role: auth.RoleIngest})
	var city struct {
		Grids []deskGrid `json:"grids"`
	}
	if code := c.Do(http.MethodGet, "/api/v1/city", c.admin, nil, &city); code != http.StatusOK || len(city.Grids) == 0 {
		t.Fatalf("GET /api/v1/city: %d with %d grids", code, len(city.Grids))
	}
	c.grids = city.Grids
	return c
}

// ticket posts a 12345 ticket at p through the ingest API and waits for its incident.
func (c *deskCity) ticket(id, content, phone string, p event.Point) deskIncident {
	c.t.Helper()
	ev := eventtest.HotlineTicket(id, event.RequestComplaint, "0301", content, phone, p)
	if code := c.Do(http.MethodPost, "/api/v1/events", c.ingest, ev, nil); code != http.StatusAccepted {
		c.t.Fatalf("post ticket %s: %d", id, code)
	}
	var found deskIncident
	webtest.Eventually(c.t, 60*time.Second, "the incident of ticket "+id, func() bool {
		var list struct {
			Incidents []deskIncident `json:"incidents"`
		}
		c.Do(http.MethodGet, "/api/v1/incidents?limit=50", c.admin, nil, &list)
		for _, inc := range list.Incidents {
			if strings.Contains(inc.Title, id) || c.holds(inc.ID, id) {
				found = inc
				return true
			}
		}
		return false
	})
	return found
}

// holds says whether incident id holds the event eventID.
func (c *deskCity) holds(id, eventID string) bool {
	var d struct {
		Events []struct {
			ID string `json:"id"`
		} `json:"events"`
	}
	c.Do(http.MethodGet, "/api/v1/incidents/"+id, c.admin, nil, &d)
	for _, e := range d.Events {
		if e.ID == eventID {
			return true
		}
	}
	return false
}

func (c *deskCity) get(id string) deskIncident {
	c.t.Helper()
	var d struct {
		Incident deskIncident `json:"incident"`
	}
	if code := c.Do(http.MethodGet, "/api/v1/incidents/"+id, c.admin, nil, &d); code != http.StatusOK {
		c.t.Fatalf("GET incident %s: %d", id, code)
	}
	return d.Incident
}

// waitStatus waits until the incident's status (through the API) is want.
func (c *deskCity) waitStatus(id, want string) deskIncident {
	c.t.Helper()
	var inc deskIncident
	webtest.Eventually(c.t, 30*time.Second, "incident "+id+" "+want, func() bool {
		inc = c.get(id)
		return inc.Status == want
	})
	return inc
}

// act sends a command with a bearer token and wants it to succeed.
func (c *deskCity) act(token, id string, body map[string]any) {
	c.t.Helper()
	var out map[string]any
	if code := c.Do(http.MethodPost, "/api/v1/incidents/"+id+"/actions", token, body, &out); code != http.StatusOK {
		c.t.Fatalf("%v on %s: %d %v", body["action"], id, code, out)
	}
}

// nearest is the grid whose centroid is nearest to p, as the desk suggests it.
func (c *deskCity) nearest(p event.Point) deskGrid {
	best, bestD := c.grids[0], math.Inf(1)
	k := math.Cos(p.Lat * math.Pi / 180)
	for _, g := range c.grids {
		dx, dy := (g.Centroid.Lon-p.Lon)*k, g.Centroid.Lat-p.Lat
		if d := dx*dx + dy*dy; d < bestD {
			best, bestD = g, d
		}
	}
	return best
}

// outside is a point west of every grid: a ticket there is in no grid.
func (c *deskCity) outside() event.Point {
	minLon, lat := math.Inf(1), 0.0
	for _, g := range c.grids {
		if g.Centroid.Lon < minLon {
			minLon, lat = g.Centroid.Lon, g.Centroid.Lat
		}
	}
	return event.Point{Lon: minLon - 0.03, Lat: lat}
}

func (c *deskCity) grid(code string) deskGrid {
	for _, g := range c.grids {
		if g.Code == code {
			return g
		}
	}
	c.t.Fatalf("no grid %s", code)
	return deskGrid{}
}

// openDesk waits for the desk's queue and its live feed.
func openDesk(b *webtest.Browser) {
	b.WaitFor("the desk's queue", `document.getElementById('queue') && document.getElementById('queue').dataset.loaded`, 30*time.Second)
	b.WaitFor("the live feed", `document.body.dataset.live === '1'`, 30*time.Second)
}

func waitDetail(b *webtest.Browser, id, status string) {
	b.WaitFor("the incident page of "+id+" at "+status, fmt.Sprintf(
		`(() => { const d = document.getElementById('detail-body'); return d && d.dataset.id === %q && d.dataset.status === %q; })()`, id, status), 30*time.Second)
}

// refusedError is the error text of the incident's latest refused command action, from the API.
func (c *deskCity) refusedError(id, action string) string {
	c.t.Helper()
	var tl struct {
		Timeline []struct {
			Kind   string `json:"kind"`
			Action string `json:"action"`
			Error  string `json:"error"`
		} `json:"timeline"`
	}
	var last string
	webtest.Eventually(c.t, 20*time.Second, "the refused "+action+" on the timeline", func() bool {
		c.Do(http.MethodGet, "/api/v1/incidents/"+id+"/timeline", c.admin, nil, &tl)
		for _, e := range tl.Timeline {
			if e.Kind == "refused" && e.Action == action {
				last = e.Error
			}
		}
		return last != ""
	})
	return last
}

// expectedProblems drops the browser's own log lines for API refusals the test provokes on
// purpose (Chromium logs every 4xx answer of a fetch as an error).
func unexpectedProblems(b *webtest.Browser) []string {
	var out []string
	for _, p := range b.Problems() {
		if strings.Contains(p, "the server responded with a status of 409") {
			continue
		}
		out = append(out, p)
	}
	return out
}

func pngBytes(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 48, 32))
	for x := 0; x < 48; x++ {
		for y := 0; y < 32; y++ {
			img.Set(x, y, color.RGBA{uint8(x * 5), 120, uint8(y * 7), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploadPhoto posts a photo as the worker: its name.
func (c *deskCity) uploadPhoto(token, id string) string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.Base+"/api/v1/incidents/"+id+"/photos", bytes.NewReader(pngBytes(c.t)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		c.t.Fatalf("photo upload: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(b, &out)
	return out.Name
}

// The operator's whole loop on the desk: an ungridded 12345 ticket arrives live in the
// queue; the operator triages it onto the nearest grid's worker; the worker signs for it,
// starts and asks for an extension; the operator's illegal close is refused in place; the
// supervisor (延期 is theirs to decide) approves it on the desk; the worker resolves; the
// operator verifies and closes. Every step is checked through the API.
func TestDeskOperatorLoop(t *testing.T) {
	city := startDeskCity(t)
	op := city.User("desk.wang", auth.RoleOperator, nil)
	sup := city.User("desk.zhao", auth.RoleSupervisor, nil)
	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, op, "/desk/")
	openDesk(b)
	b.WaitFor("the signed-in user in the header", `document.getElementById('who').textContent.includes('desk.wang')`, 10*time.Second)
	webtest.Eval[bool](b, `(window.__sameLoad = true)`)

	p := city.outside()
	inc := city.ticket("T-desk-0001", "桥洞下有人倾倒大量建筑垃圾，无人清理", "13900001234", p)
	if inc.Status != "new" || inc.Area.Grid != "" {
		t.Fatalf("the ungridded ticket's incident: %+v, want new without a grid", inc)
	}
	b.WaitFor("the new incident in the queue, live", fmt.Sprintf(`!!document.querySelector('#queue li[data-id=%q]')`, inc.ID), 30*time.Second)
	if !webtest.Eval[bool](b, `window.__sameLoad === true`) {
		t.Fatal("the page reloaded to show the new incident")
	}

	// 受理: open it, press d, take the suggested (nearest) grid and one of its workers.
	b.Do("open the incident", 20*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#queue li[data-id=%q] button`, inc.ID))))
	waitDetail(b, inc.ID, "new")
	b.Do("press d", 10*time.Second, chromedp.KeyEvent("d"))
	b.WaitFor("the triage form", `!!document.getElementById('fm-grid')`, 10*time.Second)
	want := city.nearest(p)
	if got := webtest.Eval[string](b, `document.getElementById('fm-grid').value`); got != want.Code {
		t.Errorf("suggested grid %s, want the nearest %s", got, want.Code)
	}
	var worker struct{ ID, Name string }
	for _, w := range want.Workers {
		if w.Role == "worker" {
			worker.ID, worker.Name = w.ID, w.Name
			break
		}
	}
	if worker.ID == "" {
		t.Fatalf("grid %s has no worker on its roster", want.Code)
	}
	webtest.Eval[bool](b, fmt.Sprintf(`(() => { const s = document.getElementById('fm-worker'); s.value = %q; return s.value === %q; })()`, worker.ID, worker.ID))
	agency := webtest.Eval[string](b, `(() => { const s = document.getElementById('fm-agency'); s.selectedIndex = 1; return s.value; })()`)
	b.Do("send the dispatch", 10*time.Second, chromedp.Click(chromedp.ID("fm-submit")))
	got := city.waitStatus(inc.ID, "dispatched")
	if got.Assignment.Grid != want.Code || got.Assignment.WorkerID != worker.ID || got.Assignment.Agency != agency {
		t.Fatalf("dispatched to %+v, want grid %s worker %s agency %s", got.Assignment, want.Code, worker.ID, agency)
	}
	waitDetail(b, inc.ID, "dispatched")

	// The worker, on their phone (the API here): sign for, start, ask for two more hours.
	wtok := city.Token(auth.Claims{Subject: worker.ID, Role: auth.RoleWorker, Grids: []string{want.Code}})
	city.act(wtok, inc.ID, map[string]any{"action": "accept", "id": "w-1"})
	city.act(wtok, inc.ID, map[string]any{"action": "start", "id": "w-2"})
	city.act(wtok, inc.ID, map[string]any{"action": "request_extension", "id": "w-3", "reason": "需调用铲车，明早处理", "extend_by": "2h"})
	waitDetail(b, inc.ID, "in_progress")
	b.WaitFor("the pending extension on the page", `document.getElementById('detail-body').textContent.includes('待审批')`, 30*time.Second)
	if webtest.Eval[bool](b, `!!document.getElementById('act-approve_extension')`) {
		t.Error("an operator is offered 同意延期, which only a supervisor may do")
	}

	// An illegal action: 结案 while in progress. The API's refusal shows beside the actions.
	b.Do("press c", 10*time.Second, chromedp.KeyEvent("c"))
	b.WaitFor("the refusal in place", `document.getElementById('act-msg').dataset.code === 'illegal_transition'`, 20*time.Second)
	refusal := city.refusedError(inc.ID, "close")
	if msg := webtest.Eval[string](b, `document.getElementById('act-msg').textContent`); !strings.Contains(msg, refusal) {
		t.Errorf("the page says %q, want the API's error %q", msg, refusal)
	}
	if st := city.get(inc.ID).Status; st != "in_progress" {
		t.Fatalf("after the refused close the incident is %s", st)
	}

	// 延期 is the supervisor's: sign out, the supervisor approves on the desk.
	b.Do("sign out", 10*time.Second, chromedp.Click(chromedp.ID("signout")))
	b.WaitFor("the sign-in page", `location.pathname === '/login/'`, 20*time.Second)
	b.SignIn(city.Base, sup, "/desk/?incident="+inc.ID)
	waitDetail(b, inc.ID, "in_progress")
	b.Do("approve the extension", 10*time.Second, chromedp.Click(chromedp.ID("act-approve_extension")))
	webtest.Eventually(t, 30*time.Second, "the extension approved", func() bool {
		e := city.get(inc.ID).Extension
		return e != nil && e.State == "approved"
	})
	b.Do("sign out", 10*time.Second, chromedp.Click(chromedp.ID("signout")))
	b.WaitFor("the sign-in page", `location.pathname === '/login/'`, 20*time.Second)

	// The worker resolves, with a photo.
	photo := city.uploadPhoto(wtok, inc.ID)
	resolve := map[string]any{"action": "resolve", "id": "w-4", "note": "已清运完毕",
		"evidence": map[string]any{"note": "已清运完毕", "photos": []string{photo}}}
	city.act(wtok, inc.ID, resolve)
	city.waitStatus(inc.ID, "resolved")

	// 核查 and 结案 by the operator, from the keyboard.
	b.SignIn(city.Base, op, "/desk/?incident="+inc.ID)
	openDesk(b)
	waitDetail(b, inc.ID, "resolved")
	b.WaitFor("the evidence photo shown", fmt.Sprintf(
		`(() => { const i = document.querySelector('#detail-body img[src$=%q]'); return i && i.complete && i.naturalWidth > 0 && i.alt.length > 0; })()`, photo), 20*time.Second)
	b.Do("press v", 10*time.Second, chromedp.KeyEvent("v"))
	if v := city.waitStatus(inc.ID, "verified"); v.VerifiedBy != op.Username {
		t.Errorf("verified by %q, want %q", v.VerifiedBy, op.Username)
	}
	waitDetail(b, inc.ID, "verified")
	b.Do("close it", 10*time.Second, chromedp.Click(chromedp.ID("act-close")))
	city.waitStatus(inc.ID, "closed")
	waitDetail(b, inc.ID, "closed")

	// 回访: the caller was satisfied.
	b.Do("record the callback", 10*time.Second,
		chromedp.Click(chromedp.ID("act-callback")),
		chromedp.WaitVisible(chromedp.ID("fm-result")),
		chromedp.SendKeys(chromedp.ID("fm-note"), "来电人表示满意"),
		chromedp.Click(chromedp.ID("fm-submit")))
	webtest.Eventually(t, 30*time.Second, "the callback recorded", func() bool { return city.get(inc.ID).Callback == "satisfied" })
	if p := unexpectedProblems(b); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// A ticket written to attack the page renders as its own text, and the caller's number is
// shown exactly as the API masks it for an operator.
func TestDeskRendersHostileTextInert(t *testing.T) {
	city := startDeskCity(t)
	op := city.User("desk.sun", auth.RoleOperator, nil)
	hostile := `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`
	inc := city.ticket("T-desk-evil", hostile, "13812345678", city.grids[0].Centroid)
	var view struct {
		Incident deskIncident `json:"incident"`
	}
	otok := city.Token(auth.Claims{Subject: op.Username, Role: auth.RoleOperator})
	code := city.Do(http.MethodGet, "/api/v1/incidents/"+inc.ID, otok, nil, &view)
	masked := view.Incident
	if code != http.StatusOK || len(masked.Reports) == 0 || masked.Reports[0].Caller == nil {
		t.Fatalf("the operator's view of %s: %d %+v", inc.ID, code, masked)
	}
	phone := masked.Reports[0].Caller.Phone
	if phone == "13812345678" || !strings.Contains(phone, "*") {
		t.Fatalf("the API shows the operator phone %q, want it masked", phone)
	}

	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, op, "/desk/?incident="+inc.ID)
	b.WaitFor("the incident page", fmt.Sprintf(`document.getElementById('detail-body').dataset.id === %q`, inc.ID), 30*time.Second)
	b.Do("open the ticket's source", 10*time.Second, chromedp.Click(chromedp.CSS(`#detail-body details.source summary`)))
	text := webtest.Eval[string](b, `document.body.innerText`)
	if !strings.Contains(text, hostile) {
		t.Errorf("the ticket's text is not shown literally; page text:\n%s", text)
	}
	if pwned := webtest.Eval[string](b, `typeof window.__pwned`); pwned != "undefined" {
		t.Errorf("window.__pwned is %s: the ticket's markup ran", pwned)
	}
	if n := webtest.Eval[int](b, `document.querySelectorAll('#detail-body script, #detail-body img[onerror], #queue script, #queue img').length`); n != 0 {
		t.Errorf("%d elements made from the ticket's markup", n)
	}
	if !strings.Contains(text, phone) || strings.Contains(text, "13812345678") {
		t.Errorf("the page shows the phone other than the API's %q; page text:\n%s", phone, text)
	}
	if shown := webtest.Eval[string](b, `document.querySelector('#detail-body .caller-phone').textContent`); shown != phone {
		t.Errorf("caller phone shown %q, the API says %q", shown, phone)
	}
	if name := masked.Reports[0].Caller.Name; name != "" && !strings.Contains(text, name) {
		t.Errorf("caller name %q of the API is not shown", name)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// The desk keeps the accessibility basics on the queue, the incident page, an action form and
// the help overlay, at desk and laptop sizes and at 200 % zoom, with no script errors or CSP
// violations; its screenshots are kept for the docs.
func TestDeskAccessibility(t *testing.T) {
	city := startDeskCity(t)
	op := city.User("desk.qian", auth.RoleOperator, nil)
	city.ticket("T-desk-a11y-1", "小区门口垃圾桶满溢，气味很大", "13900005678", city.grids[0].Centroid)
	inc := city.ticket("T-desk-a11y-2", "河边步道有人倾倒装修垃圾", "13900008765", city.outside())

	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(city.Base, op, "/desk/")
	openDesk(b)
	b.WaitFor("the queue filled", `document.querySelectorAll('#queue li').length >= 2`, 30*time.Second)
	check := func(where string) {
		t.Helper()
		if p := b.Accessibility(); len(p) > 0 {
			t.Errorf("%s: %v", where, p)
		}
	}
	check("queue at 1920×1080")
	b.Screenshot("../test-artifacts/desk-queue.png")

	b.Do("open the ungridded incident", 20*time.Second, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#queue li[data-id=%q] button`, inc.ID))))
	waitDetail(b, inc.ID, "new")
	b.WaitFor("the map", `!!document.querySelector('#map-box svg')`, 10*time.Second)
	check("incident at 1920×1080")
	b.Do("press d", 10*time.Second, chromedp.KeyEvent("d"))
	b.WaitFor("the triage form", `!!document.getElementById('fm-grid')`, 10*time.Second)
	check("triage form at 1920×1080")
	b.Screenshot("../test-artifacts/desk-incident.png")
	b.Do("press Escape", 10*time.Second, chromedp.KeyEvent("\x1b"))

	// j / k move in the queue and Enter opens; / goes to the search box; ? shows the help.
	focusedRow := func() string {
		return webtest.Eval[string](b, `(document.activeElement && document.activeElement.closest('#queue li') || {dataset: {}}).dataset.id || ''`)
	}
	b.Do("press j", 10*time.Second, chromedp.KeyEvent("j"))
	down := focusedRow()
	b.Do("press k", 10*time.Second, chromedp.KeyEvent("k"))
	up := focusedRow()
	if down == "" || up == "" || down == up {
		t.Errorf("j focused %q and k %q: want two different rows of the queue", down, up)
	}
	b.Do("press Enter", 10*time.Second, chromedp.KeyEvent("\r"))
	b.WaitFor("the row opened with Enter", fmt.Sprintf(`document.getElementById('detail-body').dataset.id === %q`, up), 10*time.Second)
	b.Do("press /", 10*time.Second, chromedp.KeyEvent("/"))
	b.WaitFor("the search box focused", `document.activeElement && document.activeElement.id === 'f-q'`, 10*time.Second)
	b.Do("leave the search box", 10*time.Second, chromedp.KeyEvent("\x1b"))
	b.Do("press ?", 10*time.Second, chromedp.KeyEvent("?"))
	b.WaitFor("the help overlay", `document.getElementById('help').open && document.getElementById('help-keys').children.length > 10`, 10*time.Second)
	check("help overlay")
	b.Do("close the help", 10*time.Second, chromedp.Click(chromedp.ID("help-close")))

	b.Do("laptop viewport", 10*time.Second, chromedp.EmulateViewport(1366, 768))
	check("incident at 1366×768")
	b.Do("go to the queue", 10*time.Second, chromedp.Navigate(city.Base+"/desk/"))
	openDesk(b)
	check("queue at 1366×768")
	b.Zoom200(webtest.Laptop)
	check("queue at 200 % zoom")
	b.Do("open the incident at 200 %", 20*time.Second, chromedp.Navigate(city.Base+"/desk/#"+inc.ID))
	waitDetail(b, inc.ID, "new")
	check("incident at 200 % zoom")
	b.Do("press d at 200 %", 10*time.Second, chromedp.KeyEvent("d"))
	b.WaitFor("the triage form", `!!document.getElementById('fm-grid')`, 10*time.Second)
	check("triage form at 200 % zoom")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

// The desk's other commands, each checked through the API: 拆单 a second caller's report out,
// 并单 it back, 督办 with a reason, and 误报 with a reason; a form's refusal shows in the form.
func TestDeskSplitMergeEscalateCancel(t *testing.T) {
	city := startDeskCity(t)
	op := city.User("desk.zhou", auth.RoleOperator, nil)
	g := city.grids[0]
	inc := city.ticket("T-desk-s1", "小区东门垃圾桶满溢", "13900000011", g.Centroid)
	city.ticket("T-desk-s2", "东门垃圾桶又满了，没人清运", "13900000022", g.Centroid)
	webtest.Eventually(t, 30*time.Second, "two reports on one incident", func() bool { return len(city.get(inc.ID).Reports) == 2 })
	second := city.get(inc.ID).Reports[1].EventID

	b := webtest.NewBrowser(t, webtest.Laptop)
	b.SignIn(city.Base, op, "/desk/?incident="+inc.ID)
	openDesk(b)
	waitDetail(b, inc.ID, city.get(inc.ID).Status)

	// 拆单.
	b.Do("split the second report out", 20*time.Second,
		chromedp.Click(chromedp.ID("act-split")),
		chromedp.WaitVisible(chromedp.ID("fm-event")))
	webtest.Eval[bool](b, fmt.Sprintf(`(() => { const s = document.getElementById('fm-event'); s.value = %q; return s.value === %q; })()`, second, second))
	b.Do("send the split", 10*time.Second, chromedp.SendKeys(chromedp.ID("fm-reason"), "另一处问题"), chromedp.Click(chromedp.ID("fm-submit")))
	webtest.Eventually(t, 30*time.Second, "the split", func() bool { return len(city.get(inc.ID).Reports) == 1 })
	var other string
	webtest.Eventually(t, 30*time.Second, "the split-out incident", func() bool {
		var list struct {
			Incidents []deskIncident `json:"incidents"`
		}
		city.Do(http.MethodGet, "/api/v1/incidents?open=true", city.admin, nil, &list)
		for _, i := range list.Incidents {
			if i.ID != inc.ID && city.holds(i.ID, second) {
				other = i.ID
				return true
			}
		}
		return false
	})

	// 并单 without a source is refused in the form with the API's words; then with one.
	b.WaitFor("the page after the split", `!document.getElementById('fm-submit')`, 10*time.Second)
	b.Do("open the merge form", 10*time.Second, chromedp.KeyEvent("m"), chromedp.WaitVisible(chromedp.ID("fm-source")))
	b.Do("merge nothing", 10*time.Second, chromedp.SendKeys(chromedp.ID("fm-source"), "INC-none"), chromedp.Click(chromedp.ID("fm-submit")))
	b.WaitFor("the refusal in the form", `document.querySelector('#act-form .form-error').textContent.length > 0`, 20*time.Second)
	if msg := webtest.Eval[string](b, `document.querySelector('#act-form .form-error').textContent`); !strings.Contains(msg, "并单失败") {
		t.Errorf("the form says %q, want the refusal", msg)
	}
	webtest.Eval[bool](b, `(() => { const i = document.getElementById('fm-source'); i.value = ''; return true; })()`)
	b.Do("merge the split-out incident back", 10*time.Second, chromedp.SendKeys(chromedp.ID("fm-source"), other), chromedp.Click(chromedp.ID("fm-submit")))
	webtest.Eventually(t, 30*time.Second, "the merge", func() bool { return city.get(other).MergedInto == inc.ID })
	if n := len(city.get(inc.ID).Reports); n != 2 {
		t.Errorf("after the merge %d reports, want 2", n)
	}

	// 督办.
	b.WaitFor("the page after the merge", `!document.getElementById('fm-submit')`, 10*time.Second)
	b.Do("escalate", 10*time.Second, chromedp.KeyEvent("e"), chromedp.WaitVisible(chromedp.ID("fm-reason")),
		chromedp.SendKeys(chromedp.ID("fm-reason"), "群众反复投诉，请社区督办"), chromedp.Click(chromedp.ID("fm-submit")))
	webtest.Eventually(t, 30*time.Second, "the escalation", func() bool { return city.get(inc.ID).Escalation != "" })

	// 发布预警: a CAP alert, which the 误报 below then cancels by itself.
	alertsOf := func() []event.AlertMessage {
		var d struct {
			Incident event.Incident `json:"incident"`
		}
		city.Do(http.MethodGet, "/api/v1/incidents/"+inc.ID, city.Admin(), nil, &d)
		return d.Incident.Alerts
	}
	b.WaitFor("the page after the escalation", `!document.getElementById('fm-submit')`, 10*time.Second)
	b.Do("publish an alert", 10*time.Second, chromedp.Click(chromedp.ID("act-alert")), chromedp.WaitVisible(chromedp.ID("fm-note")),
		chromedp.SendKeys(chromedp.ID("fm-note"), "该路段积水，请绕行"), chromedp.Click(chromedp.ID("fm-submit")))
	webtest.Eventually(t, 30*time.Second, "the alert", func() bool { return len(alertsOf()) == 1 })
	b.WaitFor("the alert on the page, the action gone", `!!document.querySelector('#detail-body a[href$="/alerts/1"]') && !document.getElementById('act-alert')`, 20*time.Second)

	// 误报.
	b.WaitFor("the page after the alert", `!document.getElementById('fm-submit')`, 10*time.Second)
	b.Do("cancel", 10*time.Second, chromedp.KeyEvent("x"), chromedp.WaitVisible(chromedp.ID("fm-reason")),
		chromedp.SendKeys(chromedp.ID("fm-reason"), "核实为重复测试工单"), chromedp.Click(chromedp.ID("fm-submit")))
	city.waitStatus(inc.ID, "cancelled")
	waitDetail(b, inc.ID, "cancelled")
	if m := alertsOf(); len(m) != 2 || m[1].MsgType != event.AlertCancel {
		t.Errorf("alerts after 误报: %+v, want the Alert and its Cancel", m)
	}
	b.WaitFor("the Cancel on the page", `!!document.querySelector('#detail-body a[href$="/alerts/2"]')`, 20*time.Second)
	for _, p := range b.Problems() {
		if !strings.Contains(p, "the server responded with a status of 4") {
			t.Errorf("page problem: %s", p)
		}
	}
}

// An SLA warning reaches the desk live: with a 10 s sign-for limit (a policy for the test, on
// the wall clock), the dispatched incident's warning arrives as a message and its row in the
// queue turns to the warning (or, moments later, the breach).
func TestDeskSLAWarningArrivesLive(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(`correlation:
  cell_meters: 500
  slot: 1h
  default: {radius_meters: 0, window: 0s}
sla:
  warn_at: 0.5
  limits:
    dispatch: {default: 1h}
    sign_for: {default: 20s}
    handle:   {default: 1h}
    verify:   {default: 1h}
  categories:
    "0301": {emergency: true}
  working_hours: {days: [weekdays], start: "08:30", end: "17:30"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &deskCity{City: webtest.Start(t, func(cfg *app.Config) { cfg.WorkflowPolicy = policy }), t: t}
	c.admin = c.Admin()
	c.ingest = c.Token(auth.Claims{Subject: "test-hotline", Role: auth.RoleIngest})
	var city struct {
		Grids []deskGrid `json:"grids"`
	}
	c.Do(http.MethodGet, "/api/v1/city", c.admin, nil, &city)
	c.grids = city.Grids
	op := c.User("desk.wu", auth.RoleOperator, nil)

	b := webtest.NewBrowser(t, webtest.Wall)
	b.SignIn(c.Base, op, "/desk/")
	openDesk(b)
	webtest.Eval[bool](b, `(window.__toasts = [], new MutationObserver(() => {
		for (const t of document.querySelectorAll('.ub-toast')) if (!window.__toasts.includes(t.textContent)) window.__toasts.push(t.textContent);
	}).observe(document.body, {childList: true, subtree: true}), true)`)
	inc := c.ticket("T-desk-sla", "路边垃圾桶满溢", "13900004321", c.grids[0].Centroid)
	c.waitStatus(inc.ID, "dispatched")
	b.WaitFor("the warning message", `window.__toasts.some((t) => t.includes('时限预警'))`, 40*time.Second)
	b.WaitFor("the row marked", fmt.Sprintf(`!!document.querySelector('#queue li[data-id=%q] .sla-warning, #queue li[data-id=%q] .sla-breached')`, inc.ID, inc.ID), 20*time.Second)
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}
