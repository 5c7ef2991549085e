package app

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
)

// The leadership report (GET /api/v1/reports) counts what the store holds: 12345 tickets in
// two districts become incidents, two are driven to closed, and the day's report — as JSON
// and as CSV — has the totals, sources, categories and districts of the incidents the API
// lists, the closed ones as resolved, and a district-scoped caller sees only their district.
func TestReportTotalsEqualStoreCounts(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	admin := r.token(auth.Claims{Subject: "root", Role: auth.RoleAdmin})
	operator := r.token(auth.Claims{Subject: "op-report", Role: auth.RoleOperator})
	closer := r.token(auth.Claims{Subject: "op-report-2", Role: auth.RoleOperator})

	// Grids of two districts, and two tickets of different categories in the first grid.
	grids := r.app.City().Grids()
	first := grids[0]
	var other = grids[len(grids)-1]
	for _, g := range grids {
		if g.District != first.District {
			other = g
			break
		}
	}
	if other.District == first.District {
		t.Fatal("the demo city has one district")
	}
	tickets := []map[string]any{
		hotlineTicket("T-rep-1", event.RequestComplaint, "0301", "垃圾桶满了没人清运", "13900001111", first.Centroid),
		hotlineTicket("T-rep-2", event.RequestReport, "0302", "小区门口有人占道摆摊卖菜", "13900002222", grids[7].Centroid),
		hotlineTicket("T-rep-3", event.RequestComplaint, "0301", "垃圾桶满了没人清运", "13900003333", other.Centroid),
		hotlineTicket("T-rep-4", event.RequestHelp, "0601", "家里停水三天了", "13900004444", grids[15].Centroid),
	}
	for _, tk := range tickets {
		if code := r.do("POST", "/api/v1/events", producer, tk, nil); code != http.StatusOK && code != http.StatusAccepted {
			t.Fatalf("POST event: %d", code)
		}
	}
	var all incidentList
	eventually(t, 60*time.Second, "four dispatched incidents", func() bool {
		all = incidentList{}
		r.do("GET", "/api/v1/incidents?status=dispatched", operator, nil, &all)
		return all.Count == len(tickets)
	})

	// Two incidents through the whole loop.
	for _, inc := range all.Incidents[:2] {
		worker := r.token(auth.Claims{Subject: inc.Assignment.WorkerID, Role: auth.RoleWorker, Grids: []string{inc.Area.Grid}})
		for _, st := range []struct {
			token string
			body  map[string]any
		}{
			{worker, map[string]any{"action": event.ActionAccept}},
			{worker, map[string]any{"action": event.ActionStart}},
			{worker, map[string]any{"action": event.ActionResolve, "evidence": map[string]any{"note": "已处理"}}},
			{operator, map[string]any{"action": event.ActionVerify}},
			{closer, map[string]any{"action": event.ActionClose}},
		} {
			if code := r.do("POST", "/api/v1/incidents/"+inc.ID+"/actions", st.token, st.body, nil); code != http.StatusOK {
				t.Fatalf("%s %s: %d", inc.ID, st.body["action"], code)
			}
		}
	}
	eventually(t, 30*time.Second, "two closed incidents in the store", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?status=closed", operator, nil, &l)
		return l.Count == 2
	})

	today := time.Now().In(time.FixedZone("CST", 8*3600)).Format(time.DateOnly)
	var rep api.ReportResponse
	if code := r.do("GET", "/api/v1/reports?period=day&date="+today, admin, nil, &rep); code != http.StatusOK {
		t.Fatalf("GET report: %d", code)
	}

	// What the incidents API lists, counted the report's way.
	r.do("GET", "/api/v1/incidents?limit=1000", admin, nil, &all)
	want := struct{ source, category, district map[string]int }{map[string]int{}, map[string]int{}, map[string]int{}}
	n := 0
	for _, inc := range all.Incidents {
		if inc.CreatedAt.Before(rep.Since) || !inc.CreatedAt.Before(rep.Until) {
			continue
		}
		n++
		want.source[inc.Reports[0].EventType]++
		want.category[inc.Category]++
		want.district[inc.Area.District]++
	}
	if rep.Total != n || n != len(tickets) {
		t.Fatalf("report total %d, the API lists %d created today; want both %d", rep.Total, n, len(tickets))
	}
	for name, c := range map[string]struct {
		got  []api.NamedCount
		want map[string]int
	}{"source": {rep.BySource, want.source}, "category": {rep.ByCategory, want.category}, "district": {rep.ByDistrict, want.district}} {
		got := map[string]int{}
		for _, x := range c.got {
			got[x.Key] = x.Count
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("by %s: report %v, incidents %v", name, got, c.want)
		}
	}
	if rep.BySource[0].Name != "12345热线" {
		t.Errorf("source name %q, want 12345热线", rep.BySource[0].Name)
	}
	for _, st := range rep.Stages {
		if st.Stage == event.StageResolve && st.Completed != 2 {
			t.Errorf("resolve stage completed %d, want the 2 closed incidents", st.Completed)
		}
	}
	rules := 0
	for _, h := range rep.Rules {
		rules += h.Incidents
	}
	grid := 0
	for _, g := range rep.WorstGrids {
		grid += g.Incidents
	}
	if rules != n || grid != n {
		t.Errorf("rule hits sum to %d and grids to %d, want %d", rules, grid, n)
	}

	// The CSV: a BOM, then sections that parse with encoding/csv and say what the JSON says.
	body := getCSV(t, r, "/api/v1/reports?period=day&format=csv&date="+today, admin)
	if !bytes.HasPrefix(body, []byte("\ufeff")) {
		t.Fatalf("CSV without a UTF-8 byte order mark: %q", body[:min(len(body), 20)])
	}
	sections := parseReportCSV(t, body[3:])
	if got := sections["summary"]["新增事件"]; got != strconv.Itoa(rep.Total) {
		t.Errorf("CSV 新增事件 %q, want %d", got, rep.Total)
	}
	for _, c := range rep.ByDistrict {
		if got := sections["by_district"][c.Key]; got != strconv.Itoa(c.Count) {
			t.Errorf("CSV district %s: %q, want %d", c.Key, got, c.Count)
		}
	}
	if got := sections["by_source"][event.TypeHotlineTicket]; got != strconv.Itoa(rep.Total) {
		t.Errorf("CSV source 12345: %q, want %d", got, rep.Total)
	}
	if len(sections) != 10 {
		t.Errorf("CSV has %d sections, want 10", len(sections))
	}

	// A district-scoped caller gets their district only, and may not ask for another.
	scoped := r.token(auth.Claims{Subject: "op-d", Role: auth.RoleOperator, District: other.District})
	var mine api.ReportResponse
	if code := r.do("GET", "/api/v1/reports?date="+today, scoped, nil, &mine); code != http.StatusOK {
		t.Fatalf("GET scoped report: %d", code)
	}
	if mine.District != other.District || mine.Total != want.district[other.District] ||
		len(mine.ByDistrict) != 1 || mine.ByDistrict[0].Key != other.District {
		t.Errorf("district-scoped report: district %q total %d by district %+v; want %s with %d",
			mine.District, mine.Total, mine.ByDistrict, other.District, want.district[other.District])
	}
	if code := r.do("GET", "/api/v1/reports?district="+first.District, scoped, nil, nil); code != http.StatusForbidden {
		t.Errorf("another district's report: %d, want 403", code)
	}

	for _, q := range []string{"period=month", "period=day&date=2026-13-01", "period=week&date=yesterday", "format=xlsx"} {
		if code := r.do("GET", "/api/v1/reports?"+q, admin, nil, nil); code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/reports?%s: %d, want 400", q, code)
		}
	}
	// The default week is last ISO week: Monday to Monday, in Asia/Shanghai.
	var week api.ReportResponse
	r.do("GET", "/api/v1/reports?period=week", admin, nil, &week)
	if d := week.Until.Sub(week.Since); d != 7*24*time.Hour || week.Since.In(time.FixedZone("CST", 8*3600)).Weekday() != time.Monday {
		t.Errorf("default week %s .. %s, want a Monday-to-Monday week", week.Since, week.Until)
	}
}

func getCSV(t *testing.T, r *running, path, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", r.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return body
}

// parseReportCSV reads the report's sections: section id → first column → last column.
func parseReportCSV(t *testing.T, body []byte) map[string]map[string]string {
	t.Helper()
	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	out := map[string]map[string]string{}
	var cur map[string]string
	header := false
	for _, rec := range recs {
		switch {
		case len(rec) == 3 && rec[0] == "section":
			cur = map[string]string{}
			out[rec[1]] = cur
			header = true
		case cur == nil:
			t.Fatalf("CSV row %q before any section", rec)
		case header:
			header = false
		default:
			cur[rec[0]] = rec[len(rec)-1]
		}
	}
	return out
}
