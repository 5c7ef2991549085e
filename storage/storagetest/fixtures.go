package storagetest

import (
	"fmt"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// t0 is the start of the suite's little world; every fixture time is an offset from it.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func area(district, street, community, grid string) event.Area {
	return event.Area{
		District: district, DistrictName: "区" + district,
		Street: street, StreetName: "街道" + street,
		Community: community, CommunityName: "社区" + community,
		Grid: grid, GridName: "网格" + grid,
	}
}

func ptr[T any](v T) *T { return &v }

func sensorEvent(id string, a event.Area, device string, tm time.Time) event.Event {
	return event.Event{
		ID: id, Type: event.TypeSensorReading, Source: "iot/" + device,
		Time: tm, Received: tm.Add(250 * time.Millisecond),
		Location: &event.Point{Lon: 120.1551, Lat: 30.2741},
		Area:     a,
		Sensor: &event.SensorReading{
			DeviceID: device, Kind: "water_level",
			Metrics: map[string]float64{"level_cm": 42.5, "rate_cm_min": 0.75},
			Lat:     ptr(30.2741), Lon: ptr(120.1551), CoordSys: event.CoordWGS84,
			Status: "alarm", Battery: ptr(87.5),
		},
	}
}

// hotlineEvent has no position (the caller gave only an address) and carries personal data,
// which the store must keep as it is.
func hotlineEvent(id string, a event.Area, tm time.Time) event.Event {
	return event.Event{
		ID: id, Type: event.TypeHotlineTicket, Source: "12345",
		Time: tm, Received: tm.Add(time.Second),
		Area: a,
		Hotline: &event.HotlineTicket{
			TicketID: "T-" + id, Channel: "phone",
			CallerName: "张三", CallerPhone: "13812345678",
			RequestType: event.RequestReport, CategoryCode: "0101",
			Content: "地下通道积水, 车辆无法通行", Address: "文三路与学院路交叉口",
			DistrictCode: a.District, Urgency: "urgent", ReceivedAt: tm,
		},
	}
}

func videoEvent(id string, a event.Area, camera string, tm time.Time) event.Event {
	return event.Event{
		ID: id, Type: event.TypeVideoDetection, Source: "vision/" + camera,
		Time: tm, Received: tm.Add(40 * time.Millisecond),
		Location: &event.Point{Lon: 120.16, Lat: 30.28},
		Area:     a,
		Video: &event.VideoDetection{
			CameraID: camera, Algorithm: "road_waterlogging", Confidence: 0.93,
			BBox: []float64{10, 20, 300, 200}, SnapshotURL: "http://cam.example/" + id + ".jpg",
			ObjectCount: 1, Lat: ptr(30.28), Lon: ptr(120.16), CoordSys: event.CoordGCJ02,
		},
	}
}

// incidentSpec describes one incident of the suite; changelog turns it into the records the
// incident service would publish.
type incidentSpec struct {
	id       string
	category string
	severity string
	area     event.Area
	created  time.Time
	worker   string // assigned at the dispatch step
	// steps is how far along the lifecycle the changelog goes: 1 open (new), 2 a second report
	// linked, 3 dispatched, 4 accepted, 5 in progress, 6 resolved, 7 closed.
	steps int
}

// reportEvents are the events an incident's reports point to: report i is linked at
// version i+1 (1 and 2).
func (s incidentSpec) reportEvents() []event.Event {
	return []event.Event{
		sensorEvent(s.id+"/e1", s.area, "dev-"+s.id, s.created.Add(-time.Minute)),
		hotlineEvent(s.id+"/e2", s.area, s.created.Add(30*time.Second)),
	}
}

// changelog is the incident's city.incidents records, version 1 to s.steps, one minute apart.
func (s incidentSpec) changelog() []event.IncidentChange {
	evs := s.reportEvents()
	report := func(i int) event.Report {
		e := evs[i]
		r := event.Report{
			EventID: e.ID, EventType: e.Type, SignalID: "sig-" + e.ID, RuleID: "rule-flood",
			At: e.Time, Location: e.Location, Summary: "report " + e.ID,
		}
		if e.Hotline != nil {
			r.Caller = &event.Caller{Name: e.Hotline.CallerName, Phone: e.Hotline.CallerPhone}
		}
		return r
	}
	worker := event.Actor{Subject: s.worker, Role: "worker", Grids: []string{s.area.Grid}}
	operator := event.Actor{Subject: "op-1", Role: "operator", District: s.area.District}
	steps := []struct {
		action   string
		to       event.Status
		actor    event.Actor
		note     string
		assigned bool
	}{
		{"open", event.StatusNew, event.SystemActor, "", false},
		{"link", event.StatusNew, event.SystemActor, "", false},
		{event.ActionDispatch, event.StatusDispatched, operator, "", true},
		{event.ActionAccept, event.StatusAccepted, worker, "", true},
		{event.ActionStart, event.StatusInProgress, worker, "", true},
		{event.ActionResolve, event.StatusResolved, worker, "水已排净, 见照片", true},
		{event.ActionClose, event.StatusClosed, operator, "", true},
	}

	var out []event.IncidentChange
	from := event.Status("")
	inc := event.Incident{
		ID: s.id, Category: s.category, Severity: s.severity,
		Title: s.category + " at " + s.area.StreetName, CorrelationKey: "corr-" + s.id,
		Area: s.area, Location: &event.Point{Lon: 120.1551, Lat: 30.2741},
		CreatedAt: s.created,
	}
	for i := 0; i < s.steps && i < len(steps); i++ {
		st := steps[i]
		when := s.created.Add(time.Duration(i) * time.Minute)
		inc.Version = int64(i + 1)
		inc.Status = st.to
		inc.UpdatedAt = when
		if i < 2 {
			inc.Reports = append(append([]event.Report(nil), inc.Reports...), report(i))
			inc.ReportCount = len(inc.Reports)
		}
		if st.assigned {
			inc.Assignment = event.Assignment{
				WorkerID: s.worker, WorkerName: "网格员" + s.worker, Grid: s.area.Grid,
				Agency: "water", AgencyName: "水务局",
			}
		}
		ch := event.Change{
			Action: st.action, From: from, To: st.to, Actor: st.actor, Note: st.note, At: when,
		}
		if i < 2 {
			// A signal's change carries why it matched; the reports do not (event.ExplainReports).
			ch.SignalID, ch.RuleID, ch.EventID = inc.Reports[i].SignalID, inc.Reports[i].RuleID, inc.Reports[i].EventID
			ch.Explanation = explanationOf(evs[i].ID)
		} else {
			ch.CommandID = fmt.Sprintf("cmd-%s-%d", s.id, i+1)
		}
		out = append(out, event.IncidentChange{Incident: inc, Change: ch})
		from = st.to
	}
	return out
}

// dispatchFor is the dispatch record made at version v of the incident.
func dispatchFor(s incidentSpec, v int, worker string, when time.Time) event.Dispatch {
	return event.Dispatch{
		ID: fmt.Sprintf("%s/%d", s.id, v), IncidentID: s.id,
		Assignment: event.Assignment{
			WorkerID: worker, WorkerName: "网格员" + worker, Grid: s.area.Grid,
			Agency: "water", AgencyName: "水务局",
		},
		Reason: "least loaded on-duty worker of grid " + s.area.Grid, At: when,
	}
}

// explanationOf is the explanation a fixture's signal on event id carries.
func explanationOf(id string) *event.Explanation {
	return &event.Explanation{Condition: "sensor.metrics.level_cm > 80", Terms: []event.Term{{
		Expr: "sensor.metrics.level_cm > 80", Text: "sensor.metrics.level_cm 95 > 80 (" + id + ")", Holds: true,
		Left: event.Operand{Expr: "sensor.metrics.level_cm", Value: "95"}, Right: event.Operand{Expr: "80", Value: "80"},
	}}}
}
