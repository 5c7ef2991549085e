package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
)

type incidentList struct {
	Incidents []event.Incident `json:"incidents"`
	Count     int              `json:"count"`
}

// A real librdkafka client (kcat) produces a 12345 complaint to the embedded broker; the
// complaint must come out as an incident dispatched to the worker of its grid, on the API and
// on the cockpit websocket, with the caller's phone masked for an operator and visible to a
// supervisor.
func TestKcatHotlineTicketBecomesDispatchedIncident(t *testing.T) {
	kcat := requireTool(t, "kcat")
	r := start(t, t.TempDir(), freeAddr(t))
	grid := r.app.City().Grids()[7]
	operator := r.token(auth.Claims{Subject: "op-1", Role: auth.RoleOperator})
	supervisor := r.token(auth.Claims{Subject: "sup-1", Role: auth.RoleSupervisor})

	// The cockpit client connects first and must see the incident arrive as a delta.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.base, "http")+"/ws/cockpit?access_token="+operator, nil)
	if err != nil {
		t.Fatalf("dial cockpit: %v", err)
	}
	defer ws.Close()
	var snap map[string]any
	if err := ws.ReadJSON(&snap); err != nil || snap["type"] != "snapshot" {
		t.Fatalf("first frame = %v, %v; want a snapshot", snap, err)
	}

	ticket := hotlineTicket("T-kcat-0001", event.RequestComplaint, "0401", "楼下广场舞噪音太大，晚上十点还在放音乐", "13812345678", grid.Centroid)
	line, _ := json.Marshal(ticket)
	cmd := exec.Command(kcat, "-b", strings.Join(r.app.BrokerAddrs(), ","), "-t", event.TopicIngestHotline, "-P", "-k", grid.Street)
	cmd.Stdin = bytes.NewReader(append(line, '\n'))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}

	var inc event.Incident
	eventually(t, 60*time.Second, "the complaint to become a dispatched incident", func() bool {
		var l incidentList
		if r.do("GET", "/api/v1/incidents?grid="+grid.Code, operator, nil, &l) != http.StatusOK {
			return false
		}
		for _, i := range l.Incidents {
			if i.Status == event.StatusDispatched && len(i.Reports) > 0 && i.Reports[0].EventID == "T-kcat-0001" {
				inc = i
				return true
			}
		}
		return false
	})
	if inc.Category != "0401" || inc.Area.Grid != grid.Code {
		t.Errorf("incident category %q grid %q; want 0401 in %s", inc.Category, inc.Area.Grid, grid.Code)
	}
	if want := eligibleWorkers(r.app.City(), grid.Code, time.Now()); !slices.Contains(want, inc.Assignment.WorkerID) {
		t.Errorf("dispatched to %q; want one of %v (on-duty in the grid, else a neighbour grid, else the supervisor)", inc.Assignment.WorkerID, want)
	}
	if c := inc.Reports[0].Caller; c == nil || c.Phone != "138****5678" {
		t.Errorf("operator sees caller %+v; want phone 138****5678", c)
	}

	var detail struct {
		Incident event.Incident `json:"incident"`
		Events   []event.Event  `json:"events"`
	}
	if code := r.do("GET", "/api/v1/incidents/"+inc.ID, supervisor, nil, &detail); code != http.StatusOK {
		t.Fatalf("supervisor GET incident: %d", code)
	}
	if c := detail.Incident.Reports[0].Caller; c == nil || c.Phone != "13812345678" {
		t.Errorf("supervisor sees caller %+v; want the full phone", c)
	}
	if len(detail.Events) != 1 || detail.Events[0].Hotline == nil || detail.Events[0].Hotline.CallerPhone != "13812345678" {
		t.Errorf("supervisor sees linked events %+v; want the ticket with its phone", detail.Events)
	}

	// The websocket delivered the incident, masked, with consecutive sequence numbers.
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	lastSeq := snap["seq"].(float64)
	for found := false; !found; {
		var frame struct {
			Type   string           `json:"type"`
			Seq    float64          `json:"seq"`
			Upsert []event.Incident `json:"upsert"`
		}
		if err := ws.ReadJSON(&frame); err != nil {
			t.Fatalf("cockpit read: %v", err)
		}
		if frame.Type != "delta" || frame.Seq != lastSeq+1 {
			t.Fatalf("%s seq %v after %v; want consecutive deltas", frame.Type, frame.Seq, lastSeq)
		}
		lastSeq = frame.Seq
		for _, i := range frame.Upsert { // coalesced: the latest state of each incident of a tick
			if i.ID == inc.ID && i.Status == event.StatusDispatched {
				if p := i.Reports[0].Caller.Phone; p != "138****5678" {
					t.Errorf("websocket phone %q; want masked", p)
				}
				found = true
			}
		}
	}
}

// Stop the process and start it on the same data directory: every incident is back with its
// state, and replaying the same events creates no new incident and no extra report.
func TestRestartKeepsStateAndReplayCreatesNoDuplicates(t *testing.T) {
	dir, broker := t.TempDir(), freeAddr(t)
	r := start(t, dir, broker)
	grids := r.app.City().Grids()
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})

	batch := []map[string]any{
		hotlineTicket("T-restart-1", event.RequestHelp, "0601", "家里停水三天了，老人需要帮助", "13900001111", grids[3].Centroid),
		hotlineTicket("T-restart-2", event.RequestReport, "0302", "小区门口有人占道摆摊卖菜", "13900002222", grids[20].Centroid),
		hotlineTicket("T-restart-3", event.RequestComplaint, "0301", "垃圾桶满了好几天没人清运", "13900003333", grids[40].Centroid),
	}
	postBatch := func(r *running) {
		t.Helper()
		b, _ := json.Marshal(batch)
		req, _ := http.NewRequest("POST", r.base+"/api/v1/events", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+producer)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST batch: %d", resp.StatusCode)
		}
	}
	postBatch(r)
	var before incidentList
	eventually(t, 60*time.Second, "three dispatched incidents", func() bool {
		before = incidentList{}
		r.do("GET", "/api/v1/incidents?status=dispatched", operator, nil, &before)
		return before.Count == 3
	})
	// Move one incident on, as its worker.
	target := before.Incidents[0]
	worker := r.token(auth.Claims{Subject: target.Assignment.WorkerID, Role: auth.RoleWorker, Grids: []string{target.Area.Grid}})
	var res event.CommandResult
	if code := r.do("POST", "/api/v1/incidents/"+target.ID+"/actions", worker, map[string]string{"action": event.ActionAccept}, &res); code != http.StatusOK || !res.OK {
		t.Fatalf("accept: %d %+v", code, res)
	}
	eventually(t, 30*time.Second, "the accepted state in the store", func() bool {
		var l incidentList
		r.do("GET", "/api/v1/incidents?status=accepted", operator, nil, &l)
		return l.Count == 1
	})
	if err := r.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	r2 := start(t, dir, broker)
	var after incidentList
	r2.do("GET", "/api/v1/incidents", operator, nil, &after)
	if after.Count != 3 {
		t.Fatalf("after restart %d incidents; want 3", after.Count)
	}
	states := map[string]event.Status{}
	for _, i := range after.Incidents {
		states[i.ID] = i.Status
	}
	if states[target.ID] != event.StatusAccepted {
		t.Errorf("incident %s is %q after restart; want accepted", target.ID, states[target.ID])
	}
	// The incident service rebuilt its state: an illegal command is still refused from the
	// restored state, and a legal one goes on from it.
	if code := r2.do("POST", "/api/v1/incidents/"+target.ID+"/actions", operator, map[string]string{"action": event.ActionClose}, nil); code != http.StatusConflict {
		t.Errorf("close an accepted incident after restart: %d; want 409", code)
	}

	// Replay the same tickets, then a marker in the same street as each: once every marker's
	// incident is visible, the replays before them on the same partitions were handled too.
	postBatch(r2)
	markers := []map[string]any{}
	for i, tk := range batch {
		d := tk["data"].(map[string]any)
		p := event.Point{Lat: d["lat"].(float64), Lon: d["lon"].(float64)}
		markers = append(markers, hotlineTicket("T-marker-"+string(rune('a'+i)), event.RequestComplaint, "0401", "夜间施工噪音扰民", "13700000000", p))
	}
	batch = markers
	postBatch(r2)
	var final incidentList
	eventually(t, 60*time.Second, "the three marker incidents", func() bool {
		final = incidentList{}
		r2.do("GET", "/api/v1/incidents?category=0401", operator, nil, &final)
		return final.Count == 3
	})
	var all incidentList
	r2.do("GET", "/api/v1/incidents", operator, nil, &all)
	if all.Count != 6 {
		t.Errorf("after replay %d incidents; want 3 originals + 3 markers", all.Count)
	}
	for _, i := range all.Incidents {
		if i.ReportCount != 1 {
			t.Errorf("incident %s has %d reports after replay; want 1", i.ID, i.ReportCount)
		}
	}
}

// eligibleWorkers is who the dispatch policy may choose for a grid at t: its on-duty workers,
// else the on-duty workers of its neighbours, else its community supervisor.
func eligibleWorkers(m *city.Map, grid string, t time.Time) []string {
	onDuty := func(grids ...string) []string {
		var ids []string
		for _, g := range grids {
			for _, w := range m.Workers(g) {
				if w.OnDuty(t) {
					ids = append(ids, w.ID)
				}
			}
		}
		return ids
	}
	if ids := onDuty(grid); len(ids) > 0 {
		return ids
	}
	if ids := onDuty(m.Neighbours(grid)...); len(ids) > 0 {
		return ids
	}
	g, _ := m.Grid(grid)
	if s, ok := m.Supervisor(g.Community); ok {
		return []string{s.ID}
	}
	return nil
}

// The README's run command (`serve --demo`): with simulated traffic and nothing else, incidents
// appear on the cockpit websocket, dispatched.
func TestDemoTrafficReachesCockpit(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) { c.Demo, c.SimulateRate = true, 100 })
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.base, "http")+"/ws/cockpit?access_token="+operator, nil)
	if err != nil {
		t.Fatalf("dial cockpit: %v", err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(90 * time.Second))
	sources := map[string]bool{}
	for len(sources) < 2 {
		var frame struct {
			Type      string           `json:"type"`
			Upsert    []event.Incident `json:"upsert"`    // delta
			Incidents []event.Incident `json:"incidents"` // snapshot
		}
		if err := ws.ReadJSON(&frame); err != nil {
			t.Fatalf("cockpit read (sources seen so far %v): %v", sources, err)
		}
		for _, inc := range append(frame.Incidents, frame.Upsert...) {
			if inc.Status == event.StatusDispatched && len(inc.Reports) > 0 {
				sources[inc.Reports[0].EventType] = true
			}
		}
	}
}

// Regression: GET /api/v1/incidents filtered a worker's scope after paging, so a worker whose
// grids held only older incidents got an empty first page while their incidents existed.
// The scope must narrow the query itself.
func TestWorkerIncidentPageIsFull(t *testing.T) {
	r := start(t, t.TempDir(), freeAddr(t))
	grids := r.app.City().Grids()
	mine, other := grids[5], grids[90]
	producer := r.token(auth.Claims{Subject: "p", Role: auth.RoleIngest})
	operator := r.token(auth.Claims{Subject: "op", Role: auth.RoleOperator})
	worker := r.token(auth.Claims{Subject: "w", Role: auth.RoleWorker, Grids: []string{mine.Code}})
	post := func(tk map[string]any) {
		t.Helper()
		b, _ := json.Marshal(tk)
		req, _ := http.NewRequest("POST", r.base+"/api/v1/events", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+producer)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	wait := func(n int) {
		t.Helper()
		eventually(t, 60*time.Second, fmt.Sprintf("%d incidents", n), func() bool {
			var l incidentList
			r.do("GET", "/api/v1/incidents", operator, nil, &l)
			return l.Count == n
		})
	}
	post(hotlineTicket("T-page-mine", event.RequestComplaint, "0301", "垃圾没人清运", "13900000001", mine.Centroid))
	wait(1)
	post(hotlineTicket("T-page-other", event.RequestComplaint, "0302", "占道经营", "13900000002", other.Centroid))
	wait(2)
	var l incidentList
	if code := r.do("GET", "/api/v1/incidents?limit=1", worker, nil, &l); code != http.StatusOK {
		t.Fatalf("worker list: %d", code)
	}
	if l.Count != 1 || l.Incidents[0].Area.Grid != mine.Code {
		t.Errorf("worker's first page of one: %+v; want the incident of grid %s", l.Incidents, mine.Code)
	}
}
