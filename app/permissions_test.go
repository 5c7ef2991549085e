package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/web"
)

// The permission table: every HTTP and websocket route, every role, on an object of the
// caller's own scope and on one of another district, from one place. A route that is not in
// the table, or that declares another permission than its row, fails the test; so does any
// answer that differs from the row, and any answer to a scoped caller that names the other
// district's incident or event.

// permFixture is the city the table runs against: incident own (district A, assigned to the
// worker) and other (district B), each raised by a 12345 ticket.
type permFixture struct {
	r          *running
	own, other event.Incident
	ownEvent   string
	otherEvent string
	gridA      city.Grid
	districtB  string
	ownPhoto   string            // a photo of the own incident, by name
	otherPhoto string            // a photo of the other incident
	ownRule    string            // a rule of district A
	otherRule  string            // a rule of district B
	tokens     map[string]string // role (or "none", "forged") → bearer token
	// strangerAuthor is another rule author's token: their jobs are the other object.
	strangerAuthor string
	seq            int
}

// permRoles are the callers of every row: each role scoped to district A (the worker to the
// own incident's grid, admin and ingest to the city), no token, and a token with a forged
// signature.
var permRoles = []string{auth.RoleAdmin, auth.RoleOperator, auth.RoleSupervisor, auth.RoleWorker, auth.RoleRuleAuthor,
	auth.RoleViewer, auth.RoleIngest, "none", "forged"}

// permRow is one route (or one variant of a route's request).
type permRow struct {
	pattern string
	perm    auth.Permission // what the route must declare; "" for public
	variant string
	// req builds the request on the own or the other object.
	req func(f *permFixture, own bool) (method, path string, body any)
	// want is the answer for each role on the own object; a role not listed lacks the
	// permission (403), "none" and "forged" are 401 unless the route is public.
	want map[string]int
	// scoped: on the other object, a caller who cannot see it gets 404 (admin sees all).
	scoped bool
	// otherStatus replaces 404 on the other object for a caller who may not act there but
	// may know it exists (creating another district's rule is 403).
	otherStatus int
	ws          bool // a websocket: 101 is success, and the first frame is checked for leaks
}

func readers(status int) map[string]int {
	return map[string]int{auth.RoleAdmin: status, auth.RoleOperator: status, auth.RoleSupervisor: status,
		auth.RoleWorker: status, auth.RoleRuleAuthor: status, auth.RoleViewer: status}
}

func commanders(status int) map[string]int {
	return map[string]int{auth.RoleAdmin: status, auth.RoleOperator: status, auth.RoleSupervisor: status, auth.RoleWorker: status}
}

func everyone(status int) map[string]int {
	m := map[string]int{}
	for _, r := range permRoles {
		m[r] = status
	}
	return m
}

func get(path string) func(*permFixture, bool) (string, string, any) {
	return func(*permFixture, bool) (string, string, any) { return http.MethodGet, path, nil }
}

// onObject is a request on the own or the other object, as pick names it; a %s in path is
// replaced with its id.
func onObject(method, path string, pick func(f *permFixture, own bool) string, body func(f *permFixture, id string) any) func(*permFixture, bool) (string, string, any) {
	return func(f *permFixture, own bool) (string, string, any) {
		id := pick(f, own)
		var b any
		if body != nil {
			b = body(f, id)
		}
		p := path
		if strings.Contains(p, "%s") {
			p = fmt.Sprintf(p, id)
		}
		return method, p, b
	}
}

// onIncident is a request on the own or the other incident.
func onIncident(method, path string, body func(f *permFixture, id string) any) func(*permFixture, bool) (string, string, any) {
	return onObject(method, path, func(f *permFixture, own bool) string {
		if own {
			return f.own.ID
		}
		return f.other.ID
	}, body)
}

func progress(key string) func(*permFixture, string) any {
	return func(_ *permFixture, incident string) any {
		return map[string]string{"action": "progress", "note": "核实中", "id": strings.ReplaceAll(key, "{incident}", incident)}
	}
}

// pageRows are the people's screens (web): public pages, and "/<name>" sends on to "/<name>/"
// (the default client follows, so both answer 200).
func pageRows() []permRow {
	var rows []permRow
	for _, name := range web.Pages {
		rows = append(rows,
			permRow{pattern: "GET /" + name + "/", want: everyone(http.StatusOK), req: get("/" + name + "/")},
			permRow{pattern: "GET /" + name, want: everyone(http.StatusOK), req: get("/" + name)})
	}
	return rows
}

// open311PermRows are the Open311 GeoReport v2 routes (api/open311.go), .json and .xml. Their
// reads are public, as a city's Open311 portal is (masked, no caller fields): they are not
// scoped, so each row asks for the own object only. Posting takes an ingest token, as the
// api_key form field or, as here, the Authorization header.
func open311PermRows() []permRow {
	var rows []permRow
	for _, f := range []string{"json", "xml"} {
		rows = append(rows,
			permRow{pattern: "GET /open311/v2/services." + f, want: everyone(http.StatusOK), req: get("/open311/v2/services." + f)},
			permRow{pattern: "GET /open311/v2/requests." + f, want: everyone(http.StatusOK),
				req: onIncident(http.MethodGet, "/open311/v2/requests."+f+"?service_request_id=%s", nil)},
			permRow{pattern: "POST /open311/v2/requests." + f, perm: auth.PermIngest,
				want: map[string]int{auth.RoleAdmin: http.StatusOK, auth.RoleIngest: http.StatusOK},
				req: func(pf *permFixture, _ bool) (string, string, any) {
					q := url.Values{"service_code": {"0102"}, "description": {"路灯不亮"},
						"lat": {fmt.Sprint(pf.gridA.Centroid.Lat)}, "long": {fmt.Sprint(pf.gridA.Centroid.Lon)}}
					return http.MethodPost, "/open311/v2/requests." + f + "?" + q.Encode(), nil
				}})
	}
	return append(rows,
		// No service has metadata, so none has a definition: 404, as the specification says.
		permRow{pattern: "GET /open311/v2/services/{file}", want: everyone(http.StatusNotFound), req: get("/open311/v2/services/0102.json")},
		permRow{pattern: "GET /open311/v2/requests/{file}", want: everyone(http.StatusOK),
			req: onIncident(http.MethodGet, "/open311/v2/requests/%s.xml", nil)},
		permRow{pattern: "GET /open311/v2/tokens/{file}", want: everyone(http.StatusOK),
			req: func(f *permFixture, _ bool) (string, string, any) {
				return http.MethodGet, "/open311/v2/tokens/" + f.ownEvent + ".json", nil
			}},
	)
}

func permRows() []permRow {
	workerOnly := map[string]int{auth.RoleWorker: http.StatusSwitchingProtocols,
		// The worker feed is refused to every other role that may read incidents.
		auth.RoleAdmin: http.StatusForbidden, auth.RoleOperator: http.StatusForbidden, auth.RoleSupervisor: http.StatusForbidden,
		auth.RoleRuleAuthor: http.StatusForbidden, auth.RoleViewer: http.StatusForbidden}
	cockpitRoles := readers(http.StatusSwitchingProtocols)
	mergeWant := commanders(http.StatusUnprocessableEntity) // the source is in another street
	mergeWant[auth.RoleWorker] = http.StatusForbidden       // the owner refuses a worker's merge
	splitWant := commanders(http.StatusUnprocessableEntity) // no such report
	splitWant[auth.RoleWorker] = http.StatusForbidden
	return []permRow{
		{pattern: "GET /livez", want: everyone(http.StatusOK), req: get("/livez")},
		{pattern: "GET /readyz", want: everyone(http.StatusOK), req: get("/readyz")},
		{pattern: "GET /metrics", want: everyone(http.StatusOK), req: get("/metrics")},
		{pattern: "GET /api/openapi.json", want: everyone(http.StatusOK), req: get("/api/openapi.json")},
		{pattern: "GET /{$}", want: everyone(http.StatusOK), req: get("/")},
		{pattern: "GET /cockpit/", want: everyone(http.StatusOK), req: get("/cockpit/app.js")},
		{pattern: "GET /common/", want: everyone(http.StatusOK), req: get("/common/ub.js")},
		{pattern: "POST /api/v1/events", perm: auth.PermIngest,
			want: map[string]int{auth.RoleAdmin: http.StatusAccepted, auth.RoleIngest: http.StatusAccepted},
			req: func(f *permFixture, _ bool) (string, string, any) {
				f.seq++
				id := fmt.Sprintf("T-perm-%04d", f.seq)
				return http.MethodPost, "/api/v1/events", hotlineTicket(id, event.RequestComplaint, "0401", "门口垃圾未清运", "13912345678", f.gridA.Centroid)
			}},
		{pattern: "GET /api/v1/incidents", perm: auth.PermReadIncidents, want: readers(http.StatusOK), req: get("/api/v1/incidents?limit=500")},
		{pattern: "GET /api/v1/incidents/{id}", perm: auth.PermReadIncidents, want: readers(http.StatusOK), scoped: true,
			req: onIncident(http.MethodGet, "/api/v1/incidents/%s", nil)},
		{pattern: "POST /api/v1/incidents/{id}/actions", perm: auth.PermCommand, want: commanders(http.StatusOK), scoped: true,
			req: onIncident(http.MethodPost, "/api/v1/incidents/%s/actions", progress(""))},
		// The command ids of the side doors: a system command's id naming the other incident,
		// and the id of the incident's own SLA command. Each is the caller's own id, nothing more.
		{pattern: "POST /api/v1/incidents/{id}/actions", variant: "system dispatch id of the other incident", perm: auth.PermCommand,
			want: commanders(http.StatusOK), scoped: true,
			req: func(f *permFixture, own bool) (string, string, any) {
				m, p, _ := onIncident(http.MethodPost, "/api/v1/incidents/%s/actions", nil)(f, own)
				return m, p, map[string]string{"action": "progress", "note": "x", "id": "dispatch:" + f.other.ID}
			}},
		{pattern: "POST /api/v1/incidents/{id}/actions", variant: "an SLA command's id", perm: auth.PermCommand,
			want: commanders(http.StatusOK), scoped: true,
			req: onIncident(http.MethodPost, "/api/v1/incidents/%s/actions", progress("sla:{incident}@1"))},
		// Every upload is a new photo (201); a photo of an incident out of scope is not found.
		{pattern: "POST /api/v1/incidents/{id}/photos", perm: auth.PermCommand, want: commanders(http.StatusCreated), scoped: true,
			req: onIncident(http.MethodPost, "/api/v1/incidents/%s/photos", func(f *permFixture, _ string) any {
				f.seq++
				return photoBody(testPNG(f.r.t, f.seq))
			})},
		{pattern: "GET /api/v1/incidents/{id}/photos/{name}", perm: auth.PermReadIncidents, want: readers(http.StatusOK), scoped: true,
			req: func(f *permFixture, own bool) (string, string, any) {
				if own {
					return http.MethodGet, "/api/v1/incidents/" + f.own.ID + "/photos/" + f.ownPhoto, nil
				}
				return http.MethodGet, "/api/v1/incidents/" + f.other.ID + "/photos/" + f.otherPhoto, nil
			}},
		// Public: warnings to the public, with no one's personal data.
		{pattern: "GET /api/v1/alerts", want: everyone(http.StatusOK), req: get("/api/v1/alerts")},
		{pattern: "GET /api/v1/incidents/{id}/alerts/{n}", want: everyone(http.StatusOK),
			req: onIncident(http.MethodGet, "/api/v1/incidents/%s/alerts/1", nil)},
		{pattern: "GET /api/v1/incidents/{id}/timeline", perm: auth.PermReadIncidents, want: readers(http.StatusOK), scoped: true,
			req: onIncident(http.MethodGet, "/api/v1/incidents/%s/timeline", nil)},
		{pattern: "POST /api/v1/incidents/{id}/merge", perm: auth.PermCommand, want: mergeWant, scoped: true,
			req: onIncident(http.MethodPost, "/api/v1/incidents/%s/merge", func(f *permFixture, incident string) any {
				src := f.other.ID
				if incident == f.other.ID {
					src = f.own.ID
				}
				return map[string]string{"source": src, "reason": "同一问题"}
			})},
		{pattern: "POST /api/v1/incidents/{id}/split", perm: auth.PermCommand, want: splitWant, scoped: true,
			req: onIncident(http.MethodPost, "/api/v1/incidents/%s/split", func(*permFixture, string) any {
				return map[string]string{"event_id": "no-such-event", "reason": "另一处问题"}
			})},
		{pattern: "GET /api/v1/me/tasks", perm: auth.PermCommand, want: commanders(http.StatusOK), req: get("/api/v1/me/tasks")},
		{pattern: "GET /api/v1/search/incidents", perm: auth.PermReadIncidents, want: readers(http.StatusOK), req: get("/api/v1/search/incidents?q=%E5%99%AA%E9%9F%B3")},
		{pattern: "GET /api/v1/events", perm: auth.PermReadIncidents, want: readers(http.StatusOK), req: get("/api/v1/events?limit=500")},
		{pattern: "GET /api/v1/kpis", perm: auth.PermReadIncidents, want: readers(http.StatusOK), req: get("/api/v1/kpis")},
		{pattern: "GET /api/v1/reports", perm: auth.PermReadIncidents, want: readers(http.StatusOK), req: get("/api/v1/reports?period=week")},
		{pattern: "GET /api/v1/city", perm: auth.PermReadIncidents, want: readers(http.StatusOK), req: get("/api/v1/city")},
		{pattern: "GET /ws/cockpit", perm: auth.PermCockpit, want: cockpitRoles, ws: true, req: get("/ws/cockpit")},
		{pattern: "GET /ws/worker", perm: auth.PermReadIncidents, want: workerOnly, ws: true, req: get("/ws/worker")},
	}
}

func TestPermissionTable(t *testing.T) {
	f := newPermFixture(t)
	rows := append(append(permRows(), rulePermRows()...), accountPermRows()...)
	rows = append(rows, pageRows()...)
	rows = append(rows, open311PermRows()...)

	// Every route is declared, and declared as its row says.
	declared := map[string]api.Route{}
	for _, rt := range f.r.app.newAPI().Routes() {
		declared[rt.Pattern] = rt
	}
	covered := map[string]bool{}
	for _, row := range rows {
		covered[row.pattern] = true
		g, ok := declared[row.pattern]
		if !ok {
			t.Errorf("the table has a row for %s, which is not a route", row.pattern)
			continue
		}
		if g.Perm != row.perm {
			t.Errorf("%s declares %q, the table says %q", row.pattern, g.Perm, row.perm)
		}
	}
	for p := range declared {
		if !covered[p] {
			t.Errorf("route %s has no row in the permission table", p)
		}
	}

	cases, denied := 0, 0
	for _, row := range rows {
		name := row.pattern
		if row.variant != "" {
			name += " (" + row.variant + ")"
		}
		for _, own := range []bool{true, false} {
			if !own && !row.scoped {
				continue
			}
			for _, role := range permRoles {
				want := expected(row, role, own)
				method, path, body := row.req(f, own)
				var got int
				var answer []byte
				if row.ws {
					got, answer = f.dial(path, f.tokens[role])
				} else {
					got, answer = f.call(method, path, f.tokens[role], body)
				}
				cases++
				if want >= 400 {
					denied++
				}
				scope := "own"
				if !own {
					scope = "other"
				}
				if got != want {
					t.Errorf("%s as %s on the %s object: %d, want %d: %.300s", name, role, scope, got, want, answer)
				}
				if role != auth.RoleAdmin && role != auth.RoleIngest && got < 300 {
					// The command id echoes what the caller chose, which may name anything.
					answer := commandIDField.ReplaceAll(answer, nil)
					secrets := []string{f.other.ID, f.otherEvent}
					if row.perm != "" { // the public metrics name every rule, by design
						secrets = append(secrets, f.otherRule)
					}
					for _, secret := range secrets {
						if bytes.Contains(answer, []byte(secret)) {
							t.Errorf("%s as %s on the %s object: the answer names %s of the other district: %.300s", name, role, scope, secret, answer)
						}
					}
				}
			}
		}
	}
	t.Logf("permission table: %d routes, %d rows, %d cases, %d denied as expected", len(declared), len(rows), cases, denied)
}

var commandIDField = regexp.MustCompile(`"command_id":"[^"]*"`)

// expected is a row's answer for role on the own or other object.
func expected(row permRow, role string, own bool) int {
	if row.perm == "" {
		return row.want[role]
	}
	switch role {
	case "none", "forged":
		return http.StatusUnauthorized
	}
	want, ok := row.want[role]
	if !ok {
		return http.StatusForbidden
	}
	if !own && row.scoped && role != auth.RoleAdmin {
		if row.otherStatus != 0 {
			return row.otherStatus
		}
		return http.StatusNotFound // scope is checked before anything else is answered
	}
	return want
}

func newPermFixture(t *testing.T) *permFixture {
	t.Helper()
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) { c.RateLimit, c.RateLimitIngest = 0, 0 })
	f := &permFixture{r: r, tokens: map[string]string{}}
	// Two grids of two districts, in different streets.
	grids := r.app.City().Grids()
	f.gridA = grids[0]
	gridB := grids[slices.IndexFunc(grids, func(g city.Grid) bool { return g.District != f.gridA.District })]
	f.districtB = gridB.District

	ingest := r.token(auth.Claims{Subject: "gw-12345", Role: auth.RoleIngest})
	admin := r.token(auth.Claims{Subject: "admin-1", Role: auth.RoleAdmin})
	raise := func(g city.Grid, id string) event.Incident {
		if code, _ := f.call(http.MethodPost, "/api/v1/events", ingest,
			hotlineTicket(id, event.RequestComplaint, "0401", "楼下广场舞噪音太大，联系人电话13812345678", "13812345678", g.Centroid)); code != http.StatusOK && code != http.StatusAccepted {
			t.Fatalf("post ticket %s: %d", id, code)
		}
		var inc event.Incident
		eventually(t, 60*time.Second, "the incident of "+id, func() bool {
			var l incidentList
			r.do(http.MethodGet, "/api/v1/incidents?grid="+g.Code, admin, nil, &l)
			for _, i := range l.Incidents {
				if i.Status == event.StatusDispatched && len(i.Reports) > 0 && i.Reports[0].EventID == id {
					inc = i
					return true
				}
			}
			return false
		})
		return inc
	}
	f.ownEvent, f.otherEvent = "T-perm-own", "T-perm-other"
	f.own = raise(f.gridA, f.ownEvent)
	f.other = raise(gridB, f.otherEvent)

	district := f.gridA.District
	for role, c := range map[string]auth.Claims{
		auth.RoleAdmin:      {Subject: "admin-1", Role: auth.RoleAdmin},
		auth.RoleOperator:   {Subject: "op-a", Role: auth.RoleOperator, District: district},
		auth.RoleSupervisor: {Subject: "sup-a", Role: auth.RoleSupervisor, District: district},
		auth.RoleWorker:     {Subject: f.own.Assignment.WorkerID, Role: auth.RoleWorker, Grids: []string{f.own.Area.Grid}},
		auth.RoleRuleAuthor: {Subject: "author-a", Role: auth.RoleRuleAuthor, District: district},
		auth.RoleViewer:     {Subject: "leader-a", Role: auth.RoleViewer, District: district},
		auth.RoleIngest:     {Subject: "gw-12345", Role: auth.RoleIngest},
	} {
		f.tokens[role] = r.token(c)
	}
	// A forged token: the operator's, with its signature replaced by another key's.
	other, err := auth.NewIssuer(bytes.Repeat([]byte{9}, auth.KeySize), TokenIssuer).Issue(
		auth.Claims{Subject: "op-a", Role: auth.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.tokens["forged"] = other
	f.tokens["none"] = ""
	f.strangerAuthor = r.token(auth.Claims{Subject: "author-b", Role: auth.RoleRuleAuthor, District: f.districtB})

	// An account the account rows change.
	if code, b := f.call(http.MethodPost, "/api/v1/users", admin, map[string]any{"username": "perm-account", "role": auth.RoleOperator,
		"district": district, "password": "a-long-enough-password"}); code != http.StatusCreated {
		t.Fatalf("create account: %d %s", code, b)
	}
	// A rule of each district, made by the admin.
	for _, p := range []struct {
		incident string
		name     *string
	}{{f.own.ID, &f.ownPhoto}, {f.other.ID, &f.otherPhoto}} {
		f.seq++
		var up struct{ Name string }
		code, b := f.call(http.MethodPost, "/api/v1/incidents/"+p.incident+"/photos", admin, photoBody(testPNG(t, f.seq)))
		if code != http.StatusCreated || json.Unmarshal(b, &up) != nil || up.Name == "" {
			t.Fatalf("upload a photo of %s: %d %s", p.incident, code, b)
		}
		*p.name = up.Name
	}
	// A CAP alert published on the own incident, for the public alert routes.
	if code, b := f.call(http.MethodPost, "/api/v1/incidents/"+f.own.ID+"/actions", admin, map[string]string{"action": "alert", "note": "预警"}); code != http.StatusOK {
		t.Fatalf("publish an alert: %d %s", code, b)
	}
	f.ownRule, f.otherRule = "perm-rule-a", "perm-rule-b"
	for id, d := range map[string]string{f.ownRule: district, f.otherRule: f.districtB} {
		if code, b := f.call(http.MethodPost, "/api/v1/rules", admin, yamlBody(ruleText(id, d))); code != http.StatusCreated {
			t.Fatalf("create rule %s: %d %s", id, code, b)
		}
	}
	return f
}

// call sends a request and returns the status and the body.
func (f *permFixture) call(method, path, token string, body any) (int, []byte) {
	f.r.t.Helper()
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case yamlBody:
		rd, contentType = strings.NewReader(string(b)), "application/yaml"
	case photoBody:
		rd, contentType = bytes.NewReader(b), "image/png"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.r.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.r.base+path, rd)
	if err != nil {
		f.r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// dial opens a websocket with the token in the Authorization header and returns the handshake's
// status and, when it succeeded, the first frame.
func (f *permFixture) dial(path, token string) (int, []byte) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.r.base, "http")+path, h)
	if err != nil {
		if resp == nil {
			f.r.t.Fatalf("dial %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, frame, err := c.ReadMessage()
	if err != nil {
		return resp.StatusCode, []byte(err.Error())
	}
	return resp.StatusCode, frame
}

// ruleText is a rule of district in YAML (the district's own rule when district is not empty).
func ruleText(id, district string) string {
	d := ""
	if district != "" {
		d = "district: \"" + district + "\"\n"
	}
	return "id: " + id + "\nname: 权限表规则\n" + d + "types: [city.sensor.reading]\nwhen: sensor.metrics.level_cm > 500\n" +
		"raise:\n  category: \"0104\"\n  severity: orange\n  title: \"积水 {{sensor.device_id}}\"\n"
}

// rulePermRows are the rule routes' rows (api/rules.go, api/rules_jobs.go). The own object is a rule of
// district A, the other one of district B; a district-A rule author works on the first and does
// not see the second. A job is its author's: the other object is another author's job.
func rulePermRows() []permRow {
	authors := func(status int) map[string]int {
		return map[string]int{auth.RoleAdmin: status, auth.RoleRuleAuthor: status}
	}
	onRule := func(method, path string, body func(f *permFixture, id string) any) func(*permFixture, bool) (string, string, any) {
		return onObject(method, path, func(f *permFixture, own bool) string {
			if own {
				return f.ownRule
			}
			return f.otherRule
		}, body)
	}
	// fresh is a new rule of the own or other district, made by the admin for a request that
	// uses it up (a delete).
	fresh := func(f *permFixture, own bool) string {
		f.seq++
		id, district := fmt.Sprintf("perm-fresh-%d", f.seq), f.districtB
		if own {
			district = f.gridA.District
		}
		if code, b := f.call(http.MethodPost, "/api/v1/rules", f.tokens[auth.RoleAdmin], yamlBody(ruleText(id, district))); code != http.StatusCreated {
			f.r.t.Fatalf("create %s: %d %s", id, code, b)
		}
		return id
	}
	reading := map[string]any{"id": "perm-reading", "type": event.TypeSensorReading, "source": "t", "time": time.Now().UTC(),
		"sensor": map[string]any{"device_id": "WL-9", "kind": "water_level", "metrics": map[string]float64{"level_cm": 600}}}
	return []permRow{
		{pattern: "GET /api/v1/rules", perm: auth.PermRules, want: authors(http.StatusOK), req: get("/api/v1/rules")},
		{pattern: "GET /api/v1/rules/fields", perm: auth.PermRules, want: authors(http.StatusOK), req: get("/api/v1/rules/fields?type=city.hotline.ticket")},
		{pattern: "POST /api/v1/rules", perm: auth.PermRules, want: authors(http.StatusCreated), scoped: true, otherStatus: http.StatusForbidden,
			req: func(f *permFixture, own bool) (string, string, any) {
				f.seq++
				district := f.districtB
				if own {
					district = f.gridA.District
				}
				return http.MethodPost, "/api/v1/rules", yamlBody(ruleText(fmt.Sprintf("perm-new-%d", f.seq), district))
			}},
		{pattern: "POST /api/v1/rules/validate", perm: auth.PermRules, want: authors(http.StatusOK),
			req: func(f *permFixture, _ bool) (string, string, any) {
				return http.MethodPost, "/api/v1/rules/validate", yamlBody(ruleText("perm-check", f.gridA.District))
			}},
		{pattern: "POST /api/v1/rules/dry-run", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodPost, "/api/v1/rules/dry-run", func(_ *permFixture, rule string) any {
				return map[string]any{"rule_id": rule, "events": []any{reading}}
			})},
		{pattern: "POST /api/v1/rules/backtest", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodPost, "/api/v1/rules/backtest", func(_ *permFixture, rule string) any {
				return map[string]any{"rule_id": rule, "since": time.Now().Add(-time.Hour), "until": time.Now()}
			})},
		{pattern: "GET /api/v1/rules/{id}", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodGet, "/api/v1/rules/%s", nil)},
		{pattern: "PUT /api/v1/rules/{id}", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: func(f *permFixture, own bool) (string, string, any) {
				rule, district := f.otherRule, f.districtB
				if own {
					rule, district = f.ownRule, f.gridA.District
				}
				f.seq++
				text := strings.Replace(ruleText(rule, district), "> 500", fmt.Sprintf("> %d", 500+f.seq), 1)
				return http.MethodPut, "/api/v1/rules/" + rule, yamlBody(text)
			}},
		{pattern: "DELETE /api/v1/rules/{id}", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: func(f *permFixture, own bool) (string, string, any) {
				return http.MethodDelete, "/api/v1/rules/" + fresh(f, own), nil
			}},
		{pattern: "POST /api/v1/rules/{id}/disable", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodPost, "/api/v1/rules/%s/disable", nil)},
		{pattern: "POST /api/v1/rules/{id}/enable", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodPost, "/api/v1/rules/%s/enable", nil)},
		{pattern: "GET /api/v1/rules/{id}/versions", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodGet, "/api/v1/rules/%s/versions", nil)},
		{pattern: "GET /api/v1/rules/{id}/versions/{version}", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodGet, "/api/v1/rules/%s/versions/1", nil)},
		{pattern: "GET /api/v1/rules/{id}/diff", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: onRule(http.MethodGet, "/api/v1/rules/%s/diff?from=1", nil)},
		{pattern: "GET /api/v1/rule-jobs/{id}", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: func(f *permFixture, own bool) (string, string, any) {
				return http.MethodGet, "/api/v1/rule-jobs/" + f.job(own), nil
			}},
		{pattern: "DELETE /api/v1/rule-jobs/{id}", perm: auth.PermRules, want: authors(http.StatusOK), scoped: true,
			req: func(f *permFixture, own bool) (string, string, any) {
				return http.MethodDelete, "/api/v1/rule-jobs/" + f.job(own), nil
			}},
	}
}

// job starts an asynchronous dry run as the fixture's rule author (own) or as another author,
// and returns its id once it has finished.
func (f *permFixture) job(own bool) string {
	tok := f.tokens[auth.RoleRuleAuthor]
	if !own {
		tok = f.strangerAuthor
	}
	var job struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	code, b := f.call(http.MethodPost, "/api/v1/rules/dry-run?async=true", tok, map[string]any{"rule_id": "water-level-high",
		"events": []any{map[string]any{"id": "j1", "type": event.TypeSensorReading, "source": "t", "time": time.Now().UTC(),
			"sensor": map[string]any{"device_id": "WL-9", "kind": "water_level", "metrics": map[string]float64{"level_cm": 120}}}}})
	if code != http.StatusAccepted || json.Unmarshal(b, &job) != nil || job.ID == "" {
		f.r.t.Fatalf("async dry run: %d %s", code, b)
	}
	eventually(f.r.t, 30*time.Second, "job "+job.ID, func() bool {
		_, b := f.call(http.MethodGet, "/api/v1/rule-jobs/"+job.ID, tok, nil)
		return json.Unmarshal(b, &job) == nil && job.State != "running"
	})
	return job.ID
}

// yamlBody is a request body sent as it is, as application/yaml.
type yamlBody string

// photoBody is an image sent as the raw body (image/png).
type photoBody []byte

// accountPermRows are the sign-in and account routes' rows (accounts.go).
func accountPermRows() []permRow {
	signedIn := readers(http.StatusOK)
	signedOut := readers(http.StatusNoContent)
	admin := func(status int) map[string]int { return map[string]int{auth.RoleAdmin: status} }
	return []permRow{
		// Public, and a wrong password is 401 for anyone (a new name each time: no lockout).
		{pattern: "POST /api/v1/session", want: everyone(http.StatusUnauthorized), req: func(f *permFixture, _ bool) (string, string, any) {
			f.seq++
			return http.MethodPost, "/api/v1/session", map[string]string{"username": fmt.Sprintf("nobody-%d", f.seq), "password": "not-the-password"}
		}},
		{pattern: "GET /api/v1/session", perm: auth.PermAccount, want: signedIn, req: get("/api/v1/session")},
		{pattern: "DELETE /api/v1/session", perm: auth.PermAccount, want: signedOut,
			req: func(*permFixture, bool) (string, string, any) { return http.MethodDelete, "/api/v1/session", nil }},
		{pattern: "GET /api/v1/users", perm: auth.PermUsers, want: admin(http.StatusOK), req: get("/api/v1/users")},
		{pattern: "POST /api/v1/users", perm: auth.PermUsers, want: admin(http.StatusCreated), req: func(f *permFixture, _ bool) (string, string, any) {
			f.seq++
			return http.MethodPost, "/api/v1/users", map[string]any{"username": fmt.Sprintf("perm-user-%d", f.seq), "role": auth.RoleViewer,
				"password": "a-long-enough-password"}
		}},
		{pattern: "POST /api/v1/users/{name}/disable", perm: auth.PermUsers, want: admin(http.StatusOK),
			req: func(*permFixture, bool) (string, string, any) {
				return http.MethodPost, "/api/v1/users/perm-account/disable", nil
			}},
		{pattern: "POST /api/v1/users/{name}/enable", perm: auth.PermUsers, want: admin(http.StatusOK),
			req: func(*permFixture, bool) (string, string, any) {
				return http.MethodPost, "/api/v1/users/perm-account/enable", nil
			}},
		{pattern: "POST /api/v1/users/{name}/reset", perm: auth.PermUsers, want: admin(http.StatusOK),
			req: func(*permFixture, bool) (string, string, any) {
				return http.MethodPost, "/api/v1/users/perm-account/reset", map[string]string{"password": "another-long-password"}
			}},
	}
}
