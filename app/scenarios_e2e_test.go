package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/urbanbrain/urbanbrain/api"
	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
)

// The city scenarios of the demo rules, as a city would live them: producers' records put on
// the ingest topics with kcat (a real librdkafka client), the outcome read from the API and
// the cockpit websocket as an operator sees it. Event times lie in the past, in order, so the
// rules' held durations and windows run on event time without the test waiting for them.
func TestCityScenariosEndToEnd(t *testing.T) {
	kcat := requireTool(t, "kcat")
	r := start(t, t.TempDir(), freeAddr(t), func(c *Config) { c.RateLimit = 0 })
	admin := r.token(auth.Claims{Subject: "root", Role: auth.RoleAdmin})
	operator := r.token(auth.Claims{Subject: "op-1", Role: auth.RoleOperator})
	brokers := strings.Join(r.app.BrokerAddrs(), ",")
	t0 := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.base, "http")+"/ws/cockpit?access_token="+operator, nil)
	if err != nil {
		t.Fatalf("dial cockpit: %v", err)
	}
	defer ws.Close()
	seen := map[string]event.Incident{} // the latest state of each incident on the socket
	readFrames := func(until func() bool) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		for !until() {
			var f struct {
				Type      string           `json:"type"`
				Incidents []event.Incident `json:"incidents"`
				Upsert    []event.Incident `json:"upsert"`
			}
			if err := ws.ReadJSON(&f); err != nil {
				t.Fatalf("cockpit read: %v", err)
			}
			for _, inc := range append(f.Incidents, f.Upsert...) {
				seen[inc.ID] = inc
			}
		}
	}

	// produce puts records on an ingest topic with kcat, keyed by street, in order.
	produce := func(topic, key string, recs ...map[string]any) {
		t.Helper()
		var in bytes.Buffer
		for _, rec := range recs {
			b, _ := json.Marshal(rec)
			in.Write(append(b, '\n'))
		}
		cmd := exec.Command(kcat, "-b", brokers, "-t", topic, "-P", "-k", key)
		cmd.Stdin = &in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce: %v\n%s", err, out)
		}
	}
	at := func(rec map[string]any, d time.Duration) map[string]any {
		rec["time"] = t0.Add(d).Format(time.RFC3339)
		return rec
	}
	sensor := func(id, device, kind, metric string, v float64, p event.Point, d time.Duration) map[string]any {
		return at(map[string]any{"specversion": "1.0", "id": id, "source": "sensor-gw/e2e", "type": event.TypeSensorReading,
			"datacontenttype": "application/json", "data": map[string]any{"device_id": device, "kind": kind,
				"metrics": map[string]float64{metric: v}, "lat": p.Lat, "lon": p.Lon, "status": "alarm"}}, d)
	}
	// call is a 12345 ticket; without a category code, ingest classifies its text.
	call := func(id, category, text string, p event.Point, d time.Duration) map[string]any {
		rec := hotlineTicket(id, event.RequestHelp, category, text, "13800138000", p)
		if category == "" {
			delete(rec["data"].(map[string]any), "category_code")
		}
		return at(rec, d)
	}
	camera := func(id, cam, algorithm string, conf float64, p event.Point, d time.Duration) map[string]any {
		return at(map[string]any{"specversion": "1.0", "id": id, "source": "video-ai/e2e", "type": event.TypeVideoDetection,
			"datacontenttype": "application/json", "data": map[string]any{"camera_id": cam, "algorithm": algorithm,
				"confidence": conf, "lat": p.Lat, "lon": p.Lon}}, d)
	}
	// incidentOf waits for the incident that holds event id and returns its detail.
	incidentOf := func(g city.Grid, id string, done func(event.Incident) bool) event.Incident {
		t.Helper()
		var found event.Incident
		eventually(t, 90*time.Second, "the incident of "+id, func() bool {
			var l incidentList
			r.do("GET", "/api/v1/incidents?street="+g.Street+"&limit=500", admin, nil, &l)
			for _, inc := range l.Incidents {
				for _, rep := range inc.Reports {
					if rep.EventID == id || rep.LastEventID == id {
						var d struct {
							Incident event.Incident `json:"incident"`
						}
						r.do("GET", "/api/v1/incidents/"+inc.ID, operator, nil, &d)
						found = d.Incident
						return done(found)
					}
				}
			}
			return false
		})
		return found
	}
	timeline := func(id string) []api.TimelineItem {
		var tl struct {
			Timeline []api.TimelineItem `json:"timeline"`
		}
		r.do("GET", "/api/v1/incidents/"+id+"/timeline", operator, nil, &tl)
		return tl.Timeline
	}
	signalChanges := func(id, rule string) int {
		n := 0
		for _, it := range timeline(id) {
			if it.Action == incidents.ActionSignal && strings.Contains(it.Reason, rule) {
				n++
			}
		}
		return n
	}
	explained := func(inc event.Incident) {
		t.Helper()
		if inc.RuleID == "" || inc.RuleVersion == 0 {
			t.Errorf("%s: raised by rule %q v%d, want the rule and its version", inc.ID, inc.RuleID, inc.RuleVersion)
		}
		for _, rep := range inc.Reports {
			if rep.Explanation == nil || rep.Joined == nil || rep.RuleVersion == 0 {
				t.Errorf("%s: report %s explained %+v, joined %+v, rule v%d: every report says why", inc.ID, rep.EventID, rep.Explanation, rep.Joined, rep.RuleVersion)
			}
		}
	}
	grids := r.app.City().Grids()

	t.Run("flood", func(t *testing.T) {
		g := grids[10]
		p := g.Centroid
		wl := func(i int, cm float64) map[string]any {
			return sensor(fmt.Sprintf("e2e-wl-%d", i), "WL-E2E-1", "water_level", "level_cm", cm, p, time.Duration(i)*time.Minute)
		}
		produce(event.TopicIngestSensor, g.Street, wl(0, 95), wl(1, 105), wl(2, 110), wl(3, 112), wl(4, 115))
		produce(event.TopicIngestHotline, g.Street,
			call("E2E-F-1", "", "下穿隧道积水很深，车辆熄火了", incidentstest.Offset(p, 40, 10), 2*time.Minute),
			call("E2E-F-2", "", "隧道口积水没过膝盖，请赶快来排水", incidentstest.Offset(p, -60, 30), 5*time.Minute),
			call("E2E-F-3", "", "地道桥下面积水很深", incidentstest.Offset(p, 120, -80), 9*time.Minute))
		produce(event.TopicIngestVideo, g.Street,
			camera("e2e-cam-1", "CAM-E2E-1", "waterlogging", 0.88, incidentstest.Offset(p, 20, 20), 6*time.Minute),
			camera("e2e-cam-2", "CAM-E2E-1", "waterlogging", 0.95, incidentstest.Offset(p, 20, 20), 7*time.Minute))
		inc := incidentOf(g, "e2e-wl-0", func(i event.Incident) bool {
			return len(i.Reports) == 5 && i.Severity == event.SeverityRed && i.Assignment.WorkerID != ""
		})
		if n := signalChanges(inc.ID, "water-level-held"); n != 1 {
			t.Errorf("%d signal changes by water-level-held in the timeline, want 1", n)
		}
		explained(inc)
		var sensorRep event.Report
		for _, rep := range inc.Reports {
			if rep.Device == "WL-E2E-1" {
				sensorRep = rep
			}
		}
		if sensorRep.Count != 5 || len(sensorRep.Rules) != 1 || sensorRep.Rules[0].RuleID != "water-level-held" || sensorRep.Rules[0].Explanation.Held == "" {
			t.Errorf("the sensor's report %+v: want one episode of 5 readings, with the held rule and how long it held", sensorRep)
		}
		var d struct {
			Dispatches []event.Dispatch `json:"dispatches"`
		}
		// The dispatch record is stored by its own sink, apart from the changelog's: the
		// incident may show its assignee before the record of why is stored.
		eventually(t, 30*time.Second, "the dispatch record stored", func() bool {
			r.do("GET", "/api/v1/incidents/"+inc.ID, operator, nil, &d)
			return len(d.Dispatches) > 0
		})
		time.Sleep(500 * time.Millisecond) // a second one, if any, would be stored by now
		r.do("GET", "/api/v1/incidents/"+inc.ID, operator, nil, &d)
		if len(d.Dispatches) != 1 {
			t.Errorf("%d dispatches, want 1", len(d.Dispatches))
		}
		readFrames(func() bool { return seen[inc.ID].Severity == event.SeverityRed })
	})

	t.Run("gas leak", func(t *testing.T) {
		g := grids[60]
		p := g.Centroid
		var readings []map[string]any
		for i, ppm := range []float64{80, 120, 160, 210, 240, 250, 260} { // over six minutes
			readings = append(readings, sensor(fmt.Sprintf("e2e-gas-%d", i), "GAS-E2E-1", "gas", "ppm", ppm, p, time.Duration(i)*time.Minute))
		}
		readings = append(readings, sensor("e2e-gas-b", "GAS-E2E-2", "gas", "ppm", 120, incidentstest.Offset(p, 50, 0), 6*time.Minute+30*time.Second))
		produce(event.TopicIngestSensor, g.Street, readings...)
		inc := incidentOf(g, "e2e-gas-0", func(i event.Incident) bool {
			return len(i.Reports) == 2 && i.Severity == event.SeverityRed
		})
		first, second := inc.Reports[0], inc.Reports[1]
		if first.Device != "GAS-E2E-1" || first.Count != 7 || first.Peak["ppm"] != 260 || second.Device != "GAS-E2E-2" || second.Joined == nil || second.Joined.By != event.JoinPlace {
			t.Errorf("reports %+v / %+v: want one episode of 7 readings peaking at 260 ppm, and the second sensor joined by place", first, second)
		}
		explained(inc)
	})

	t.Run("noise cluster", func(t *testing.T) {
		g := grids[100]
		p := g.Centroid
		noise := func(id string, d time.Duration, east float64) map[string]any {
			rec := call(id, "0401", "楼下广场舞音乐太吵", incidentstest.Offset(p, east, 0), d)
			rec["data"].(map[string]any)["request_type"] = event.RequestComplaint
			return rec
		}
		produce(event.TopicIngestHotline, g.Street, noise("E2E-N-1", 0, 0), noise("E2E-N-2", 20*time.Minute, 30), noise("E2E-N-3", 25*time.Minute, -30))
		inc := incidentOf(g, "E2E-N-1", func(i event.Incident) bool { return len(i.Reports) == 3 && i.Severity == event.SeverityOrange })
		produce(event.TopicIngestHotline, g.Street, noise("E2E-N-4", 28*time.Minute, 10))
		inc = incidentOf(g, "E2E-N-1", func(i event.Incident) bool { return len(i.Reports) == 4 })
		if n := signalChanges(inc.ID, "hotline-noise-cluster"); n != 1 {
			t.Errorf("%d signal changes by hotline-noise-cluster, want 1: the window's signal is applied once", n)
		}
		explained(inc)
		// A complaint in another district makes its own incident.
		var far city.Grid
		for _, o := range grids {
			if o.District != g.District {
				far = o
				break
			}
		}
		produce(event.TopicIngestHotline, far.Street, call("E2E-N-5", "0401", "噪音扰民", far.Centroid, 29*time.Minute))
		other := incidentOf(far, "E2E-N-5", func(event.Incident) bool { return true })
		if other.ID == inc.ID {
			t.Errorf("the other district's complaint joined %s", inc.ID)
		}
		if got := incidentOf(g, "E2E-N-1", func(event.Incident) bool { return true }); len(got.Reports) != 4 {
			t.Errorf("the cluster has %d reports after another district's complaint, want 4", len(got.Reports))
		}
	})
	if code := r.do("GET", "/api/v1/incidents?limit=1", operator, nil, nil); code != http.StatusOK {
		t.Errorf("API: %d", code)
	}
}
