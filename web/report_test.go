package web_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/web/webtest"
)

// The leadership report page (/report/) shows the totals the API answers, draws its charts as
// SVG, offers the CSV, prints without its controls, and passes the basic accessibility
// checks with no console error or CSP violation.
func TestReportPageShowsTheAPITotals(t *testing.T) {
	city := webtest.Start(t)
	ingest := city.Token(auth.Claims{Subject: "gw", Role: auth.RoleIngest})
	grids := city.App.City().Grids()
	now := time.Now().UTC()
	for i, cat := range []string{"0301", "0301", "0302", "0601"} {
		g := grids[i*11%len(grids)]
		tk := map[string]any{
			"specversion": "1.0", "id": fmt.Sprintf("T-report-page-%d", i), "source": "hotline-12345/test",
			"type": event.TypeHotlineTicket, "time": now.Format(time.RFC3339), "datacontenttype": "application/json",
			"data": map[string]any{"ticket_id": fmt.Sprintf("T-report-page-%d", i), "channel": "phone", "caller_name": "李四",
				"caller_phone": "13900005555", "request_type": event.RequestComplaint, "category_code": cat,
				"content": "垃圾桶满了没人清运", "lat": g.Centroid.Lat, "lon": g.Centroid.Lon, "urgency": "normal"},
		}
		if code := city.Do("POST", "/api/v1/events", ingest, tk, nil); code != 200 && code != 202 {
			t.Fatalf("POST event: %d", code)
		}
	}
	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	var rep struct {
		Total int `json:"total"`
	}
	webtest.Eventually(t, 60*time.Second, "four incidents in today's report", func() bool {
		city.Do("GET", "/api/v1/reports?date="+today, city.Admin(), nil, &rep)
		return rep.Total == 4
	})

	acct := city.User("leader.chen", auth.RoleViewer, nil)
	b := webtest.NewBrowser(t, webtest.Laptop)
	b.SignIn(city.Base, acct, "/report/")
	b.Do("open today's report", 20*time.Second, chromedp.Navigate(city.Base+"/report/?period=day&date="+today))
	b.WaitFor("the report", `document.getElementById('kpi-total') && document.querySelectorAll('main svg.chart').length > 0`, 30*time.Second)
	if got := webtest.Eval[string](b, `document.getElementById('kpi-total').textContent`); got != strconv.Itoa(rep.Total) {
		t.Errorf("page total %q, API total %d", got, rep.Total)
	}
	if n := webtest.Eval[int](b, `document.querySelectorAll('main svg.chart rect.bar').length`); n < 3 {
		t.Errorf("%d bars in the charts, want the sources', categories' and districts' at least", n)
	}
	if href := webtest.Eval[string](b, `document.getElementById('csv').getAttribute('href')`); href != "/api/v1/reports?period=day&date="+today+"&format=csv" {
		t.Errorf("CSV link %q", href)
	}
	// The week report of the same date holds today too.
	b.Do("choose 周报", 10*time.Second, chromedp.Click(chromedp.CSS(`input[name=period][value=week]`)))
	b.WaitFor("the week report", `document.title.startsWith('城市运行周报')`, 30*time.Second)
	if got := webtest.Eval[string](b, `document.getElementById('kpi-total').textContent`); got != strconv.Itoa(rep.Total) {
		t.Errorf("week report total %q, want %d", got, rep.Total)
	}
	b.Screenshot("../test-artifacts/report.png")
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("accessibility: %v", p)
	}
	b.Zoom200(webtest.Laptop)
	if p := b.Accessibility(); len(p) > 0 {
		t.Errorf("accessibility at 200 %% zoom: %v", p)
	}

	// On paper: no controls, and each section after the first starts a page.
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		t.Fatalf("emulate print: %v", err)
	}
	print := webtest.Eval[[]string](b, `[getComputedStyle(document.getElementById('picker')).display,
		getComputedStyle(document.querySelectorAll('main .sheet')[1]).breakBefore]`)
	if print[0] != "none" || print[1] != "page" {
		t.Errorf("printed: picker display %q, second section break-before %q; want none and page", print[0], print[1])
	}
	b.Screenshot("../test-artifacts/report-print.png")
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}
