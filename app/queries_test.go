package app

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
)

// The query endpoints answer from the store, narrowed to the caller's scope and masked for
// the caller's role.
func TestQueryEndpointsScopeAndMask(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	g1 := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	g2 := event.Area{District: "d1", Street: "s1", Grid: "g2"}
	g9 := event.Area{District: "d2", Street: "s9", Grid: "g9"}
	ticket := func(id string, a event.Area, content string) event.Event {
		return event.Event{ID: id, Type: event.TypeHotlineTicket, Source: "12345", Time: now.Add(-time.Minute), Area: a,
			Location: &event.Point{Lon: 120.15, Lat: 30.27},
			Hotline: &event.HotlineTicket{TicketID: id, CallerName: "王小明", CallerPhone: "13812345678", RequestType: event.RequestReport,
				Content: content + " 电话13812345678"}}
	}
	if err := r.app.store.HandleEvents(ctx, []event.Event{
		ticket("q-1", g1, "地下通道积水"), ticket("q-2", g2, "路灯不亮"), ticket("q-3", g9, "积水严重"),
	}); err != nil {
		t.Fatal(err)
	}
	incident := func(id string, a event.Area, title string, st event.Status) event.IncidentChange {
		inc := event.Incident{ID: id, Version: 1, Status: st, Category: "0401", Severity: event.SeverityRed, Title: title, Area: a,
			Reports: []event.Report{{EventID: id + "-e", EventType: event.TypeHotlineTicket, Summary: title,
				Caller: &event.Caller{Name: "王小明", Phone: "13812345678"}}}, ReportCount: 1, CreatedAt: now.Add(-10 * time.Minute), UpdatedAt: now.Add(-time.Minute)}
		return event.IncidentChange{Incident: inc, Change: event.Change{Action: "open", To: st, At: inc.CreatedAt}}
	}
	if err := r.app.store.HandleIncidentChanges(ctx, []event.IncidentChange{
		incident("INC-s1-a", g1, "地下通道积水", event.StatusNew), incident("INC-s1-b", g2, "路灯不亮", event.StatusDispatched),
		incident("INC-s9-c", g9, "积水严重", event.StatusNew),
	}); err != nil {
		t.Fatal(err)
	}

	admin := r.token(auth.Claims{Subject: "root", Role: auth.RoleAdmin})
	op1 := r.token(auth.Claims{Subject: "op-1", Role: auth.RoleOperator, District: "d1"})
	worker := r.token(auth.Claims{Subject: "w-1", Role: auth.RoleWorker, Grids: []string{"g1"}})
	viewer := r.token(auth.Claims{Subject: "v", Role: auth.RoleViewer})
	supervisor := r.token(auth.Claims{Subject: "sup", Role: auth.RoleSupervisor})
	ingest := r.token(auth.Claims{Subject: "ing", Role: auth.RoleIngest})

	type searchResp struct {
		Incidents []event.Incident `json:"incidents"`
		Count     int              `json:"count"`
		Total     int              `json:"total"`
	}
	type eventsResp struct {
		Events []event.Event `json:"events"`
	}
	ids := func(incs []event.Incident) []string {
		out := []string{}
		for _, i := range incs {
			out = append(out, i.ID)
		}
		return out
	}
	eids := func(evs []event.Event) []string {
		out := []string{}
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	q := url.QueryEscape
	tests := []struct {
		name, token, path string
		status            int
		incidents         []string // for search
		events            []string // for events
	}{
		{"admin searches text", admin, "/api/v1/search/incidents?q=" + q("积水"), 200, []string{"INC-s9-c", "INC-s1-a"}, nil},
		{"district operator is narrowed", op1, "/api/v1/search/incidents?q=" + q("积水"), 200, []string{"INC-s1-a"}, nil},
		{"district operator asks another district", op1, "/api/v1/search/incidents?district=d2", 403, nil, nil},
		{"worker sees their grids only", worker, "/api/v1/search/incidents", 200, []string{"INC-s1-a"}, nil},
		{"worker asks another grid", worker, "/api/v1/search/incidents?grid=g2", 403, nil, nil},
		{"status filter", admin, "/api/v1/search/incidents?status=dispatched", 200, []string{"INC-s1-b"}, nil},
		{"viewer may not search digits", viewer, "/api/v1/search/incidents?q=1381", 403, nil, nil},
		{"supervisor may search digits", supervisor, "/api/v1/events?q=13812345678", 200, nil, []string{"q-3", "q-2", "q-1"}},
		{"bad time", admin, "/api/v1/search/incidents?since=yesterday", 400, nil, nil},
		{"ingest may not read", ingest, "/api/v1/events", 403, nil, nil},
		{"no token", "", "/api/v1/kpis", 401, nil, nil},
		{"events by text, operator narrowed", op1, "/api/v1/events?q=" + q("积水"), 200, nil, []string{"q-1"}},
		{"events near a point", admin, "/api/v1/events?near=120.15,30.27&radius=100", 200, nil, []string{"q-3", "q-2", "q-1"}},
		{"events far from everything", admin, "/api/v1/events?near=121,31&radius=100", 200, nil, []string{}},
		{"worker's events", worker, "/api/v1/events", 200, nil, []string{"q-1"}},
		{"radius without near", admin, "/api/v1/events?radius=100", 400, nil, nil},
		{"radius too large", admin, "/api/v1/events?near=120.15,30.27&radius=1000000", 400, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sr searchResp
			var er eventsResp
			var out any = &sr
			if tc.events != nil || tc.incidents == nil {
				out = &er
			}
			status := r.do("GET", tc.path, tc.token, nil, out)
			if status != tc.status {
				t.Fatalf("GET %s = %d, want %d", tc.path, status, tc.status)
			}
			if tc.incidents != nil {
				if got := ids(sr.Incidents); !equalStrings(got, tc.incidents) {
					t.Errorf("incidents %v, want %v", got, tc.incidents)
				}
				if sr.Total != len(tc.incidents) {
					t.Errorf("total %d, want %d", sr.Total, len(tc.incidents))
				}
			}
			if tc.events != nil {
				if got := eids(er.Events); !equalStrings(got, tc.events) {
					t.Errorf("events %v, want %v", got, tc.events)
				}
			}
		})
	}

	// Masking: an operator sees the caller's phone masked, in the ticket and in the text.
	var er eventsResp
	if r.do("GET", "/api/v1/events?device=&q="+q("地下通道"), op1, nil, &er) != 200 || len(er.Events) != 1 {
		t.Fatalf("operator events = %+v", er)
	}
	if h := er.Events[0].Hotline; h.CallerPhone != "138****5678" || h.CallerName == "王小明" {
		t.Errorf("operator sees caller %q %q; want masked", h.CallerName, h.CallerPhone)
	}
	var sr searchResp
	r.do("GET", "/api/v1/search/incidents?q="+q("地下通道"), op1, nil, &sr)
	if len(sr.Incidents) != 1 || sr.Incidents[0].Reports[0].Caller.Phone != "138****5678" {
		t.Errorf("operator search = %+v; want the caller masked", sr.Incidents)
	}

	// KPIs: scoped, and shaped as documented.
	var k api.KPIResponse
	if status := r.do("GET", "/api/v1/kpis", op1, nil, &k); status != 200 {
		t.Fatalf("GET /api/v1/kpis = %d", status)
	}
	if k.District != "d1" || k.OpenIncidents.Total != 2 || len(k.Stages) != 5 {
		t.Errorf("operator KPIs: district %q, open %d, %d stages; want d1, 2, 5", k.District, k.OpenIncidents.Total, len(k.Stages))
	}
	// One table of stage limits: the KPIs' are the work-order policy's, stage names and all.
	for stage, bySev := range incidents.DefaultPolicy().StageLimits() {
		for sev, d := range bySev {
			if got := k.Limits[stage][sev]; got != d.String() {
				t.Errorf("KPI limit %s/%s = %q, want the policy's %s", stage, sev, got, d)
			}
		}
	}
	if len(k.Limits) != 4 || k.Limits[event.StageDispatch] == nil || k.Limits[event.StageSignFor] == nil {
		t.Errorf("KPI limits %v: want dispatch, sign_for, handle and verify", k.Limits)
	}
	rates := 0
	for _, er := range k.EventRates {
		if er.Type == event.TypeHotlineTicket {
			rates += er.Count
		}
	}
	if rates != 2 {
		t.Errorf("operator sees %d hotline tickets in the last hour; want 2 (their district)", rates)
	}
	if status := r.do("GET", "/api/v1/kpis?since=2026-01-01T00:00:00Z&until=2026-03-01T00:00:00Z", admin, nil, nil); status != http.StatusBadRequest {
		t.Errorf("KPIs over two months = %d, want 400", status)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The desk's triage queue and pick lists: a 12345 ticket outside every grid is in
// GET /api/v1/incidents?grid=none (and a gridded one is not); GET /api/v1/city gives each
// category the agency dispatch would pick, and grids only within the caller's scope.
func TestTriageQueueAndCityPickLists(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	grids := r.app.City().Grids()
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})
	west := grids[0].Centroid
	for _, g := range grids {
		if g.Centroid.Lon < west.Lon {
			west = g.Centroid
		}
	}
	west.Lon -= 0.03
	for _, ev := range []map[string]any{
		hotlineTicket("T-triage-out", event.RequestComplaint, "0301", "河边垃圾无人清理", "13900002222", west),
		hotlineTicket("T-triage-in", event.RequestComplaint, "0301", "小区垃圾满溢", "13900003333", grids[3].Centroid),
	} {
		if code := r.do("POST", "/api/v1/events", producer, ev, nil); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("POST event: %d", code)
		}
	}
	var all incidentList
	eventually(t, 60*time.Second, "both incidents", func() bool {
		r.do("GET", "/api/v1/incidents", operator, nil, &all)
		return all.Count == 2
	})
	var triage incidentList
	if code := r.do("GET", "/api/v1/incidents?grid=none", operator, nil, &triage); code != http.StatusOK || triage.Count != 1 ||
		triage.Incidents[0].Area.Grid != "" || triage.Incidents[0].Reports[0].EventID != "T-triage-out" {
		t.Errorf("grid=none: %d %+v, want only the ticket outside every grid", code, triage)
	}

	var pick struct {
		Grids []struct {
			Code     string `json:"code"`
			District string `json:"district"`
			Workers  []struct {
				ID string `json:"id"`
			} `json:"workers"`
		} `json:"grids"`
		Categories []struct {
			Code   string `json:"code"`
			Agency string `json:"agency"`
		} `json:"categories"`
	}
	if code := r.do("GET", "/api/v1/city", operator, nil, &pick); code != http.StatusOK || len(pick.Grids) != len(grids) {
		t.Fatalf("city for a city-wide operator: %d, %d grids of %d", code, len(pick.Grids), len(grids))
	}
	for _, c := range pick.Categories {
		if ag, ok := r.app.City().AgencyFor(c.Code); ok && c.Agency != ag.Code {
			t.Errorf("category %s: agency %q, want dispatch's %q", c.Code, c.Agency, ag.Code)
		}
	}
	district := grids[0].District
	scoped := r.token(auth.Claims{Subject: "op2", Role: auth.RoleOperator, District: district})
	r.do("GET", "/api/v1/city", scoped, nil, &pick)
	for _, g := range pick.Grids {
		if g.District != district {
			t.Errorf("a district operator of %s is offered grid %s of %s", district, g.Code, g.District)
		}
	}
	if len(pick.Grids) == 0 || len(pick.Grids[0].Workers) == 0 {
		t.Errorf("the scoped pick list has no grids or no roster: %+v", pick.Grids)
	}
}
