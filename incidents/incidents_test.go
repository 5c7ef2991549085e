package incidents_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
)

// t0 is a Tuesday, 10:00 in Yunchuan (UTC so that decoded records compare equal).
var t0 = time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)

var area = event.Area{
	District:  "990101",
	Street:    "990101001",
	Community: "990101001001",
	Grid:      "990101001001-01",
}

// harness is one incidents service on a fake clock, its outputs written to an in-memory bus.
type harness struct {
	t     *testing.T
	ctx   context.Context
	clock *clockwork.FakeClock
	bus   *incidentstest.Bus
	svc   *incidents.Service
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: t.Context(), clock: clockwork.NewFakeClockAt(t0), bus: &incidentstest.Bus{}}
	h.svc = newService(t, h.clock, "")
	return h
}

// newService numbers incidents per service after tag, so ids read well in failures.
func newService(t testing.TB, clock clockwork.Clock, tag string) *incidents.Service {
	t.Helper()
	var mu sync.Mutex
	n := 0
	svc, err := incidents.New(incidents.Config{
		Now: clock.Now,
		NewID: func(street string) string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("INC-%s-%s%04d", street, tag, n)
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// signal handles sig and writes what it returns to the bus; it returns that too.
func (h *harness) signal(sig event.Signal) event.Outputs {
	h.t.Helper()
	out, err := h.svc.HandleSignal(h.ctx, sig)
	if err != nil {
		h.t.Fatalf("HandleSignal(%s): %v", sig.ID, err)
	}
	h.bus.Write(h.t, out)
	return out
}

// command handles c and writes what it returns to the bus; it returns that too.
func (h *harness) command(c event.Command) event.Outputs {
	h.t.Helper()
	out, err := h.svc.HandleCommand(h.ctx, c)
	if err != nil {
		h.t.Fatalf("HandleCommand(%s): %v", c.ID, err)
	}
	h.bus.Write(h.t, out)
	return out
}

// execute runs Execute and writes its outputs to the bus.
func (h *harness) execute(c event.Command) (event.Incident, error) {
	h.t.Helper()
	inc, out, err := h.svc.Execute(h.ctx, c)
	h.bus.Write(h.t, out)
	return inc, err
}

func (h *harness) lastResult() event.CommandResult {
	h.t.Helper()
	rs := h.bus.Results(h.t)
	if len(rs) == 0 {
		h.t.Fatal("no command result written")
	}
	return rs[len(rs)-1]
}

// sensorSignal is rule ruleID matching sensor event eventID.
func sensorSignal(ruleID, eventID, key, severity string) event.Signal {
	return event.Signal{
		ID:             ruleID + "@1/" + eventID,
		RuleID:         ruleID,
		RuleVersion:    1,
		Category:       "0202",
		Severity:       severity,
		Title:          "下穿隧道积水",
		CorrelationKey: key,
		At:             t0,
		Event: event.Event{
			ID:       eventID,
			Type:     event.TypeSensorReading,
			Time:     t0,
			Location: &event.Point{Lon: 102.71, Lat: 25.04},
			Area:     area,
			Sensor: &event.SensorReading{
				DeviceID: "WL-" + eventID, Kind: "water_level", Status: "alarm",
				Metrics: map[string]float64{"level_cm": 42},
			},
		},
	}
}

func hotlineSignal(ruleID, eventID, key, severity string) event.Signal {
	sig := sensorSignal(ruleID, eventID, key, severity)
	sig.Event.Type = event.TypeHotlineTicket
	sig.Event.Sensor = nil
	sig.Event.Hotline = &event.HotlineTicket{
		TicketID: "T-" + eventID, Channel: "phone", CallerName: "李女士", CallerPhone: "13812345678",
		RequestType: event.RequestReport, Content: "隧道里积水没过车轮",
	}
	return sig
}

func TestCorrelatedSignalsMakeOneIncident(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	h.signal(sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityYellow))
	h.clock.Advance(30 * time.Second)
	h.signal(hotlineSignal("flood-12345", "ev-2", "flood:tunnel-7", event.SeverityRed))
	h.clock.Advance(30 * time.Second)
	h.signal(sensorSignal("flood", "ev-3", "flood:tunnel-7", event.SeverityBlue))
	h.signal(sensorSignal("flood", "ev-4", "flood:tunnel-9", event.SeverityBlue)) // another place

	recs := h.bus.Records(event.TopicIncidents)
	changes := h.bus.Changes(t)
	if len(changes) != 4 {
		t.Fatalf("changelog has %d records, want 4", len(changes))
	}
	id := changes[0].Incident.ID
	wantActions := []string{incidents.ActionOpen, incidents.ActionLink, incidents.ActionLink}
	wantSeverity := []string{event.SeverityYellow, event.SeverityRed, event.SeverityRed}
	for i, c := range changes[:3] {
		v := int64(i + 1)
		if c.Incident.ID != id || c.Incident.Version != v || c.Change.Action != wantActions[i] {
			t.Errorf("record %d: %s v%d %q, want %s v%d %q", i, c.Incident.ID, c.Incident.Version, c.Change.Action, id, v, wantActions[i])
		}
		if c.Incident.ReportCount != i+1 || len(c.Incident.Reports) != i+1 {
			t.Errorf("record %d: %d reports (count %d), want %d", i, len(c.Incident.Reports), c.Incident.ReportCount, i+1)
		}
		if c.Incident.Severity != wantSeverity[i] {
			t.Errorf("record %d: severity %s, want %s (never lowered)", i, c.Incident.Severity, wantSeverity[i])
		}
		if c.Incident.Status != event.StatusNew || c.Change.To != event.StatusNew {
			t.Errorf("record %d: status %s, change to %s, want new", i, c.Incident.Status, c.Change.To)
		}
		ce, _ := event.Decode(recs[i].Value, event.TypeIncidentChanged, &event.IncidentChange{})
		if want := fmt.Sprintf("%s/%d", id, v); ce.ID != want || recs[i].Key != area.Street {
			t.Errorf("record %d: cloudevent id %q key %q, want %q key %q", i, ce.ID, recs[i].Key, want, area.Street)
		}
	}
	if got := event.IncidentStreet(id); got != area.Street {
		t.Errorf("IncidentStreet(%s) = %q, want %q", id, got, area.Street)
	}

	inc, ok := h.svc.Get(id)
	if !ok {
		t.Fatalf("Get(%s) found nothing", id)
	}
	if !reflect.DeepEqual(inc, changes[2].Incident) {
		t.Errorf("Get = %+v\nlast change = %+v", inc, changes[2].Incident)
	}
	wantReports := []event.Report{
		{EventID: "ev-1", EventType: event.TypeSensorReading, SignalID: "flood@1/ev-1", RuleID: "flood", At: t0,
			Location: &event.Point{Lon: 102.71, Lat: 25.04}, Summary: "water_level alarm level_cm=42", Category: "0202", Device: "WL-ev-1",
			Class: "water_level", Peak: map[string]float64{"level_cm": 42}, RuleVersion: 1,
			Joined: &event.Join{By: event.JoinOpened, Key: "flood:tunnel-7"}},
		{EventID: "ev-2", EventType: event.TypeHotlineTicket, SignalID: "flood-12345@1/ev-2", RuleID: "flood-12345", At: t0,
			Location: &event.Point{Lon: 102.71, Lat: 25.04}, Summary: "举报 隧道里积水没过车轮", TicketID: "T-ev-2", Category: "0202",
			Caller: &event.Caller{Name: "李女士", Phone: "13812345678"}, RuleVersion: 1,
			Joined: &event.Join{By: event.JoinKey, Key: "flood:tunnel-7"}},
		{EventID: "ev-3", EventType: event.TypeSensorReading, SignalID: "flood@1/ev-3", RuleID: "flood", At: t0,
			Location: &event.Point{Lon: 102.71, Lat: 25.04}, Summary: "water_level alarm level_cm=42", Category: "0202", Device: "WL-ev-3",
			Class: "water_level", Peak: map[string]float64{"level_cm": 42}, RuleVersion: 1,
			Joined: &event.Join{By: event.JoinKey, Key: "flood:tunnel-7"}},
	}
	if !reflect.DeepEqual(inc.Reports, wantReports) {
		t.Errorf("reports:\n got %+v\nwant %+v", inc.Reports, wantReports)
	}
	if !inc.CreatedAt.Equal(t0) || !inc.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("created %v updated %v, want %v and %v", inc.CreatedAt, inc.UpdatedAt, t0, t0.Add(time.Minute))
	}
	if other := changes[3].Incident; other.ID == id || other.Version != 1 || changes[3].Change.Action != incidents.ActionOpen {
		t.Errorf("another correlation key: %s v%d %s, want a new incident", other.ID, other.Version, changes[3].Change.Action)
	}
	if got := len(h.svc.Open()); got != 2 {
		t.Errorf("Open() has %d incidents, want 2", got)
	}
	if s := h.svc.Stats(); s.Opened != 2 || s.Linked != 2 {
		t.Errorf("stats %+v, want 2 opened and 2 linked", s)
	}
}

func TestReplaysAndShadowsProduceNothing(t *testing.T) {
	t.Parallel()
	first := sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityYellow)
	newVersion := first
	newVersion.ID, newVersion.RuleVersion = "flood@2/ev-1", 2
	shadow := sensorSignal("flood-draft", "ev-9", "flood:tunnel-7", event.SeverityRed)
	shadow.Shadow = true
	noID := sensorSignal("flood", "ev-8", "flood:tunnel-7", event.SeverityRed)
	noID.ID = ""

	for _, tc := range []struct {
		name string
		sig  event.Signal
	}{
		{"same signal again", first},
		{"same rule and event under a new rule version", newVersion},
		{"shadow mode", shadow},
		{"no signal id", noID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.signal(first)
			before := h.bus.Len()
			h.signal(tc.sig)
			if got := h.bus.Len(); got != before {
				t.Errorf("wrote %d records, want none", got-before)
			}
			if open := h.svc.Open(); len(open) != 1 || open[0].Version != 1 {
				t.Errorf("open incidents %+v, want the first one unchanged", open)
			}
		})
	}

	t.Run("replay after close", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.signal(first)
		id := h.bus.Changes(t)[0].Incident.ID
		h.walk(id, event.StatusClosed)
		before := h.bus.Len()
		h.signal(first)
		h.signal(newVersion) // its id is new, but not its (rule, event)
		if got := h.bus.Len(); got != before {
			t.Errorf("replay of a closed incident's signal wrote %d records", got-before)
		}
	})

	t.Run("another rule, same event, other key opens its own incident", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.signal(first)
		h.signal(sensorSignal("battery", "ev-1", "battery:WL-001", event.SeverityBlue))
		if got := len(h.svc.Open()); got != 2 {
			t.Errorf("%d open incidents, want 2", got)
		}
	})
}

// Commands of the happy path, by the actors who issue them.
var (
	operator   = event.Actor{Subject: "op-1", Role: "operator"}
	supervisor = event.Actor{Subject: "S-990101001001", Role: "supervisor"}
	workerA    = event.Actor{Subject: "W-990101001001-01-D", Role: "worker", Grids: []string{area.Grid}}
	workerB    = event.Actor{Subject: "W-990101001001-02-D", Role: "worker"}
	viewer     = event.Actor{Subject: "leader", Role: "viewer"}
)

var assignA = &event.Assignment{WorkerID: workerA.Subject, WorkerName: "汪静", Grid: area.Grid, Agency: "water", AgencyName: "市水务局"}

// path is the first-cut lifecycle, each step with an actor allowed to take it.
var path = []struct {
	cmd event.Command
	to  event.Status
}{
	{event.Command{ID: "c-dispatch", Action: event.ActionDispatch, Actor: event.SystemActor, Assignment: assignA, Reason: "grid on-duty"}, event.StatusDispatched},
	{event.Command{ID: "c-accept", Action: event.ActionAccept, Actor: workerA}, event.StatusAccepted},
	{event.Command{ID: "c-start", Action: event.ActionStart, Actor: workerA}, event.StatusInProgress},
	{event.Command{ID: "c-resolve", Action: event.ActionResolve, Actor: workerA, Note: "泵车排水完毕, 照片 3 张"}, event.StatusResolved},
	{event.Command{ID: "c-verify", Action: event.ActionVerify, Actor: supervisor}, event.StatusVerified},
	{event.Command{ID: "c-close", Action: event.ActionClose, Actor: operator}, event.StatusClosed},
}

// walk takes incident id along the happy path until it reaches status to.
func (h *harness) walk(id string, to event.Status) {
	h.t.Helper()
	for _, step := range path {
		c := step.cmd
		c.ID, c.IncidentID = id+"/"+c.ID, id
		h.command(c)
		if step.to == to {
			return
		}
	}
}

func TestHappyPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signal(sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityOrange))
	opened := h.bus.Changes(t)[0].Incident

	prev := opened
	for i, step := range path {
		h.clock.Advance(10 * time.Minute)
		cmd := step.cmd
		cmd.IncidentID = opened.ID
		h.command(cmd)

		changes := h.bus.Changes(t)
		if len(changes) != i+2 {
			t.Fatalf("%s: changelog has %d records, want %d", cmd.Action, len(changes), i+2)
		}
		got := changes[i+1]
		want := event.Change{
			Action: cmd.Action, From: prev.Status, To: step.to, Actor: cmd.Actor,
			Reason: cmd.Reason, Note: cmd.Note, CommandID: cmd.ID, At: h.clock.Now(),
		}
		if !reflect.DeepEqual(got.Change, want) {
			t.Errorf("%s: change\n got %+v\nwant %+v", cmd.Action, got.Change, want)
		}
		if got.Incident.Version != prev.Version+1 || got.Incident.Status != step.to || !got.Incident.UpdatedAt.Equal(h.clock.Now()) {
			t.Errorf("%s: incident v%d %s updated %v, want v%d %s updated %v", cmd.Action,
				got.Incident.Version, got.Incident.Status, got.Incident.UpdatedAt, prev.Version+1, step.to, h.clock.Now())
		}
		if got.Incident.Assignment != *assignA {
			t.Errorf("%s: assignment %+v, want %+v", cmd.Action, got.Incident.Assignment, *assignA)
		}
		res := h.lastResult()
		if !res.OK || res.CommandID != cmd.ID || res.IncidentID != opened.ID || res.Code != "" ||
			res.Incident == nil || !reflect.DeepEqual(*res.Incident, got.Incident) {
			t.Errorf("%s: result %+v, want OK with the incident of the change", cmd.Action, res)
		}
		if rec := h.bus.Records(event.TopicResults); rec[len(rec)-1].Key != area.Street {
			t.Errorf("%s: result keyed %q, want the street %q", cmd.Action, rec[len(rec)-1].Key, area.Street)
		}
		prev = got.Incident
	}

	if open := h.svc.Open(); len(open) != 0 {
		t.Errorf("Open() after close = %+v, want none", open)
	}
	if inc, ok := h.svc.Get(opened.ID); !ok || inc.Status != event.StatusClosed {
		t.Errorf("Get(%s) = %s, %v; want the closed incident", opened.ID, inc.Status, ok)
	}
	// The problem is back: a new report with the same key opens a new incident.
	h.signal(sensorSignal("flood", "ev-2", "flood:tunnel-7", event.SeverityOrange))
	if open := h.svc.Open(); len(open) != 1 || open[0].ID == opened.ID {
		t.Errorf("after a new report of a closed problem, open = %+v, want one new incident", open)
	}
}

func TestCommandRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		at    event.Status // where the incident is when the command arrives
		cmd   event.Command
		code  string
		check func(*testing.T, error)
	}{
		{
			name: "close a dispatched incident", at: event.StatusDispatched,
			cmd:  event.Command{Action: event.ActionClose, Actor: operator},
			code: incidents.CodeIllegalTransition,
			check: func(t *testing.T, err error) {
				var ill incidents.ErrIllegalTransition
				if !errors.As(err, &ill) || ill.From != event.StatusDispatched || ill.Action != event.ActionClose {
					t.Errorf("error %v, want ErrIllegalTransition{dispatched, close}", err)
				}
				if want := `cannot "close" an incident that is "dispatched"`; err.Error() != want {
					t.Errorf("error text %q, want %q", err.Error(), want)
				}
			},
		},
		{name: "dispatch twice", at: event.StatusDispatched,
			cmd:  event.Command{Action: event.ActionDispatch, Actor: event.SystemActor, Assignment: assignA},
			code: incidents.CodeIllegalTransition},
		{name: "worker accepts someone else's incident", at: event.StatusDispatched,
			cmd:  event.Command{Action: event.ActionAccept, Actor: workerB},
			code: incidents.CodeForbidden},
		{name: "worker closes their own incident", at: event.StatusVerified,
			cmd:  event.Command{Action: event.ActionClose, Actor: workerA},
			code: incidents.CodeForbidden},
		{name: "viewer accepts", at: event.StatusDispatched,
			cmd:  event.Command{Action: event.ActionAccept, Actor: viewer},
			code: incidents.CodeForbidden},
		{name: "system closes", at: event.StatusVerified,
			cmd:  event.Command{Action: event.ActionClose, Actor: event.SystemActor},
			code: incidents.CodeForbidden},
		{name: "unknown incident", at: event.StatusNew,
			cmd:  event.Command{IncidentID: "INC-990101001-9999", Action: event.ActionAccept, Actor: supervisor},
			code: incidents.CodeNotFound,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, incidents.ErrNotFound) {
					t.Errorf("error %v, want ErrNotFound", err)
				}
			}},
		{name: "incident of a street never seen", at: event.StatusNew,
			cmd:  event.Command{IncidentID: "INC-990299001-0001", Action: event.ActionAccept, Actor: supervisor},
			code: incidents.CodeNotFound},
		{name: "dispatch without assignment", at: event.StatusNew,
			cmd:  event.Command{Action: event.ActionDispatch, Actor: operator},
			code: incidents.CodeInvalidCommand,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, incidents.ErrInvalidCommand) {
					t.Errorf("error %v, want ErrInvalidCommand", err)
				}
			}},
		{name: "resolve without evidence", at: event.StatusInProgress,
			cmd:  event.Command{Action: event.ActionResolve, Actor: workerA},
			code: incidents.CodeInvalidCommand},
		{name: "unknown action", at: event.StatusNew,
			cmd:  event.Command{Action: "teleport", Actor: operator},
			code: incidents.CodeInvalidCommand},
		{name: "no command id", at: event.StatusNew,
			cmd:  event.Command{ID: "-", Action: event.ActionAccept, Actor: operator},
			code: incidents.CodeInvalidCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.signal(sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityOrange))
			id := h.bus.Changes(t)[0].Incident.ID
			h.walk(id, tc.at)
			changesBefore := len(h.bus.Changes(t))
			before, _ := h.svc.Get(id)

			cmd := tc.cmd
			switch cmd.ID {
			case "":
				cmd.ID = "c-refused"
			case "-":
				cmd.ID = ""
			}
			if cmd.IncidentID == "" {
				cmd.IncidentID = id
			}
			_, err := h.execute(cmd)
			if got := incidents.Code(err); got != tc.code {
				t.Fatalf("Execute error %v (code %q), want code %q", err, got, tc.code)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
			res := h.lastResult()
			if res.OK || res.Code != tc.code || res.Error != err.Error() || res.CommandID != cmd.ID ||
				res.IncidentID != cmd.IncidentID || res.Incident != nil || !res.At.Equal(t0) {
				t.Errorf("result %+v, want a refusal with code %q and error %q", res, tc.code, err)
			}
			if got := len(h.bus.Changes(t)); got != changesBefore {
				t.Errorf("a refused command wrote %d changelog records", got-changesBefore)
			}
			if after, _ := h.svc.Get(id); !reflect.DeepEqual(after, before) {
				t.Errorf("a refused command changed the incident:\n got %+v\nwant %+v", after, before)
			}
			// The router sees an answered command, not a failure to redeliver.
			cmd.ID += "-again"
			if out, err := h.svc.HandleCommand(h.ctx, cmd); err != nil || len(out) != 2 {
				t.Errorf("HandleCommand returned %d outputs, %v for a refusal; want its audit and result, nil", len(out), err)
			}
		})
	}
}

func TestRepeatedCommandIDGetsFirstOutcome(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signal(sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityOrange))
	id := h.bus.Changes(t)[0].Incident.ID
	h.walk(id, event.StatusDispatched)

	// A refusal is a first outcome too: "start" before "accept" stays refused on retry even
	// once the incident could be started.
	early := event.Command{ID: "c-early-start", IncidentID: id, Action: event.ActionStart, Actor: workerA}
	h.command(early)
	refusal := h.lastResult()

	accept := event.Command{ID: "c-accept", IncidentID: id, Action: event.ActionAccept, Actor: workerA}
	h.command(accept)
	first := h.lastResult()
	changes := len(h.bus.Changes(t))

	h.clock.Advance(time.Minute)
	h.command(accept)
	if again := h.lastResult(); !reflect.DeepEqual(again, first) {
		t.Errorf("repeated accept: result\n got %+v\nwant %+v", again, first)
	}
	inc, err := h.execute(accept)
	if err != nil || inc.Version != first.Incident.Version {
		t.Errorf("Execute(repeat) = v%d, %v; want v%d, nil", inc.Version, err, first.Incident.Version)
	}
	h.command(early)
	if again := h.lastResult(); !reflect.DeepEqual(again, refusal) || again.Code != incidents.CodeIllegalTransition {
		t.Errorf("repeated early start: result\n got %+v\nwant %+v", again, refusal)
	}
	if _, err := h.execute(early); incidents.Code(err) != incidents.CodeIllegalTransition {
		t.Errorf("Execute(repeated refusal) error %v, want the first illegal transition", err)
	}
	if got := len(h.bus.Changes(t)); got != changes {
		t.Errorf("repeats wrote %d changelog records, want none", got-changes)
	}
	if inc, _ := h.svc.Get(id); inc.Status != event.StatusAccepted {
		t.Errorf("status %s, want accepted", inc.Status)
	}
}

func TestCommandMemoryIsBounded(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(t0)
	svc, err := incidents.New(incidents.Config{Now: clock.Now, CommandMemory: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: t.Context(), clock: clock, bus: &incidentstest.Bus{}, svc: svc}
	h.signal(sensorSignal("flood", "ev-1", "k", event.SeverityRed))
	id := h.bus.Changes(t)[0].Incident.ID
	refused := func(cid string) event.Command {
		return event.Command{ID: cid, IncidentID: id, Action: event.ActionClose, Actor: operator}
	}
	for _, cid := range []string{"c1", "c2", "c3"} { // c1 is forgotten once c3 is remembered
		h.command(refused(cid))
	}
	dispatch := event.Command{ID: "c1", IncidentID: id, Action: event.ActionDispatch, Actor: operator, Assignment: assignA}
	if _, err := h.execute(dispatch); err != nil {
		t.Errorf("c1 was evicted, so it is a new command: got %v, want success", err)
	}
	dispatch.ID = "c3"
	if _, err := h.execute(dispatch); incidents.Code(err) != incidents.CodeIllegalTransition {
		t.Errorf("c3 is remembered: got %v, want its first outcome (illegal close)", err)
	}
}

// The stage runner writes every output a handler returns before it commits the input, and
// after a handler error it resumes the partition from the last committed offset: an input
// whose outputs were returned can be delivered again. The state already has its change, so
// the redelivery makes none: a signal returns nothing, a command answers again with its first
// audit record and result.
func TestRedeliveryAfterOutputsMakesNoSecondChange(t *testing.T) {
	t.Parallel()

	t.Run("signal", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		sig := sensorSignal("flood", "ev-1", "k", event.SeverityRed)
		first := h.signal(sig)
		if len(first) != 1 {
			t.Fatalf("HandleSignal returned %d outputs, want the changelog record", len(first))
		}
		if again := h.signal(sig); len(again) != 0 {
			t.Errorf("redelivered signal returned %+v, want nothing", again)
		}
		link := sensorSignal("flood", "ev-2", "k", event.SeverityRed)
		h.signal(link)
		if again := h.signal(link); len(again) != 0 {
			t.Errorf("redelivered link returned %+v, want nothing", again)
		}
		c := h.bus.Changes(t)
		if len(c) != 2 || c[0].Change.Action != incidents.ActionOpen || c[1].Incident.Version != 2 || c[1].Incident.ReportCount != 2 {
			t.Errorf("changelog %+v, want open at v1 and one link at v2 with 2 reports", c)
		}
		if s := h.svc.Stats(); s.Opened != 1 || s.Linked != 1 || s.Duplicate != 2 {
			t.Errorf("stats %+v, want 1 opened, 1 linked, 2 duplicates", s)
		}
	})

	t.Run("command", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		h.signal(sensorSignal("flood", "ev-1", "k", event.SeverityRed))
		id := h.bus.Changes(t)[0].Incident.ID
		cmd := event.Command{ID: "c-dispatch", IncidentID: id, Action: event.ActionDispatch, Actor: operator, Assignment: assignA}

		first := h.command(cmd)
		if inc, _ := h.svc.Get(id); inc.Status != event.StatusDispatched || inc.Version != 2 {
			t.Fatalf("once the outputs are returned the incident is %s v%d, want dispatched v2", inc.Status, inc.Version)
		}
		h.clock.Advance(time.Minute)
		again := h.command(cmd)
		if !reflect.DeepEqual(again, first[1:]) {
			t.Errorf("redelivered command returned\n %+v\nwant its first audit record and result\n %+v", again, first[1:])
		}
		if c := h.bus.Changes(t); len(c) != 2 || c[1].Incident.Status != event.StatusDispatched {
			t.Errorf("changelog %+v, want open then one dispatch", c)
		}
		if rs := h.bus.Results(t); len(rs) != 2 || !reflect.DeepEqual(rs[1], rs[0]) || !rs[0].OK || rs[0].Incident.Version != 2 {
			t.Errorf("results %+v, want the OK result at v2 twice", rs)
		}
	})
}

// The outputs of a command are typed and in the order they must be written: the changelog
// records (for a merge, the incident that gains the reports first; for a split, the new
// incident first), then the audit records, then the result. Each is keyed by the street and
// carries the id and time its CloudEvent has.
func TestCommandOutputsInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signal(sensorSignal("flood", "ev-1", "k-1", event.SeverityRed))
	h.signal(sensorSignal("flood", "ev-2", "k-2", event.SeverityRed))
	h.signal(sensorSignal("flood", "ev-3", "k-2", event.SeverityRed))
	changes := h.bus.Changes(t)
	a, b := changes[0].Incident.ID, changes[1].Incident.ID
	h.clock.Advance(time.Minute)
	at := h.clock.Now()

	kinds := func(out event.Outputs) []string {
		var ks []string
		for _, o := range out {
			var k string
			switch d := o.Data.(type) {
			case event.IncidentChange:
				k = "change:" + d.Incident.ID
			case event.AuditRecord:
				k = "audit:" + d.IncidentID
			case event.CommandResult:
				k = "result:" + d.IncidentID
			default:
				k = fmt.Sprintf("%T", o.Data)
			}
			if o.Key != area.Street || !o.Time.Equal(at) {
				t.Errorf("output %s keyed %q at %v, want %q at %v", k, o.Key, o.Time, area.Street, at)
			}
			ks = append(ks, k)
		}
		return ks
	}

	merge := event.Command{ID: "c-merge", IncidentID: a, Source: b, Action: event.ActionMerge, Actor: operator, Reason: "同一处积水"}
	out := h.command(merge)
	if got, want := kinds(out), []string{"change:" + a, "change:" + b, "audit:" + a, "audit:" + b, "result:" + a}; !reflect.DeepEqual(got, want) {
		t.Errorf("merge outputs %v, want %v", got, want)
	}
	if out[0].ID != a+"/2" || out[1].ID != b+"/3" || out[2].ID != "c-merge" || out[3].ID != "c-merge#"+b || out[4].ID != "c-merge" {
		t.Errorf("merge output ids %s %s %s %s %s", out[0].ID, out[1].ID, out[2].ID, out[3].ID, out[4].ID)
	}

	split := event.Command{ID: "c-split", IncidentID: a, EventID: "ev-3", Action: event.ActionSplit, Actor: operator, Reason: "另一处"}
	out = h.command(split)
	born := out[0].Data.(event.IncidentChange).Incident.ID
	if got, want := kinds(out), []string{"change:" + born, "change:" + a, "audit:" + a, "audit:" + born, "result:" + a}; !reflect.DeepEqual(got, want) {
		t.Errorf("split outputs %v, want %v", got, want)
	}

	refused := event.Command{ID: "c-close", IncidentID: a, Action: event.ActionClose, Actor: operator}
	if got, want := kinds(h.command(refused)), []string{"audit:" + a, "result:" + a}; !reflect.DeepEqual(got, want) {
		t.Errorf("refusal outputs %v, want %v", got, want)
	}
}

// Tick returns the due SLA commands and disarms their deadlines; RunClock hands them to its
// emit function and, when that fails, arms them again so the next tick sends them.
func TestRunClockRearmsWhenEmitFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signal(sensorSignal("flood", "ev-1", "k", event.SeverityRed))
	id := h.bus.Changes(t)[0].Incident.ID
	h.command(event.Command{ID: "c-dispatch", IncidentID: id, Action: event.ActionDispatch, Actor: operator, Assignment: assignA})
	h.clock.Advance(100 * time.Hour) // the sign-for clock is long due

	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	var calls []event.Outputs
	emit := func(_ context.Context, out event.Outputs) error {
		calls = append(calls, out)
		if len(calls) == 1 {
			return errors.New("broker down")
		}
		cancel()
		return nil
	}
	if err := h.svc.RunClock(ctx, time.Millisecond, emit); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || len(calls[0]) != 1 || !reflect.DeepEqual(calls[1], calls[0]) {
		t.Fatalf("emit calls %+v, want the same SLA command twice (re-armed after the failure)", calls)
	}
	o := calls[1][0]
	cmd, ok := o.Data.(event.Command)
	if !ok || cmd.Action != event.ActionSLA || cmd.IncidentID != id || o.Key != area.Street || o.ID != cmd.ID ||
		!strings.HasPrefix(cmd.ID, "sla:"+id+"@") || !o.Time.Equal(cmd.At) {
		t.Errorf("SLA output %+v, want an sla command for %s keyed by its street", o, id)
	}
	if again := h.svc.Tick(h.clock.Now()); len(again) != 0 {
		t.Errorf("Tick after the commands were sent returned %+v, want nothing", again)
	}
	if err := h.svc.RunClock(h.ctx, time.Millisecond, nil); err == nil {
		t.Error("RunClock without emit accepted")
	}
}

func TestRestoreRebuildsState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	signals := []event.Signal{
		sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityYellow),
		hotlineSignal("flood-12345", "ev-2", "flood:tunnel-7", event.SeverityRed),
		sensorSignal("lamp", "ev-3", "lamp:L-9", event.SeverityBlue),
		sensorSignal("manhole", "ev-4", "manhole:M-1", event.SeverityOrange),
	}
	for _, sig := range signals {
		h.signal(sig)
		h.clock.Advance(time.Minute)
	}
	changes := h.bus.Changes(t)
	flood, lamp := changes[0].Incident.ID, changes[2].Incident.ID
	h.walk(flood, event.StatusInProgress)
	h.walk(lamp, event.StatusClosed)
	changes = h.bus.Changes(t)

	fresh := newService(t, h.clock, "")
	for _, c := range changes {
		fresh.Restore(c)
	}
	fresh.Restore(changes[0]) // an old record again: the newer state stands

	if got, want := fresh.Open(), h.svc.Open(); !reflect.DeepEqual(got, want) {
		t.Errorf("Open() after restore:\n got %+v\nwant %+v", got, want)
	}
	for _, id := range []string{flood, lamp, changes[3].Incident.ID} {
		got, ok := fresh.Get(id)
		want, _ := h.svc.Get(id)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Get(%s) after restore:\n got %+v\nwant %+v", id, got, want)
		}
	}

	// Continue on the restored service, writing to a bus of its own.
	h2 := &harness{t: t, ctx: h.ctx, clock: h.clock, bus: &incidentstest.Bus{}}
	h2.svc = newServiceFrom(t, h2, changes)
	for _, sig := range signals {
		h2.signal(sig)
	}
	if n := h2.bus.Len(); n != 0 {
		t.Errorf("replayed signals after restore wrote %d records, want none", n)
	}
	h2.command(event.Command{ID: flood + "/" + "c-accept", IncidentID: flood, Action: event.ActionAccept, Actor: workerA})
	res := h2.lastResult()
	if !res.OK || res.Incident == nil || res.Incident.Status != event.StatusAccepted || res.Incident.Version != 4 {
		t.Errorf("repeated accept after restore: %+v, want the first outcome (accepted, v4)", res)
	}
	if n := len(h2.bus.Changes(t)); n != 0 {
		t.Errorf("repeated command after restore wrote %d changes", n)
	}
	h2.signal(sensorSignal("flood", "ev-5", "flood:tunnel-7", event.SeverityBlue))
	if c := h2.bus.Changes(t); len(c) != 1 || c[0].Incident.ID != flood || c[0].Incident.Version != 6 || c[0].Incident.ReportCount != 3 {
		t.Errorf("a new report after restore: %+v, want flood v6 with 3 reports", c)
	}
	h2.signal(sensorSignal("lamp", "ev-6", "lamp:L-9", event.SeverityBlue))
	if c := h2.bus.Changes(t); len(c) != 2 || c[1].Incident.ID == lamp || c[1].Change.Action != incidents.ActionOpen {
		t.Errorf("a report of a closed problem after restore: %+v, want a new incident", c[len(c)-1])
	}
}

// newServiceFrom restores a service from a changelog and gives it h's clock.
func newServiceFrom(t *testing.T, h *harness, changes []event.IncidentChange) *incidents.Service {
	t.Helper()
	svc := newService(t, h.clock, "r")
	for _, c := range changes {
		svc.Restore(c)
	}
	return svc
}

func TestDefaultIDsEmbedTheStreet(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(t0)
	svc, err := incidents.New(incidents.Config{Now: clock.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: t.Context(), clock: clock, bus: &incidentstest.Bus{}, svc: svc}
	for i := range 200 {
		sig := sensorSignal("flood", fmt.Sprintf("ev-%d", i), fmt.Sprintf("k-%d", i), event.SeverityBlue)
		if i%2 == 1 {
			sig.Event.Area = event.Area{} // unresolved: still owned, by the "unknown" street
		}
		h.signal(sig)
	}
	seen := make(map[string]bool)
	for _, c := range h.bus.Changes(t) {
		id := c.Incident.ID
		if seen[id] {
			t.Fatalf("id %s issued twice at the same instant", id)
		}
		seen[id] = true
		if got := event.IncidentStreet(id); got != c.Incident.Area.Key() {
			t.Errorf("IncidentStreet(%s) = %q, want %q", id, got, c.Incident.Area.Key())
		}
		if _, ok := svc.Get(id); !ok {
			t.Errorf("Get(%s) found nothing", id)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := incidents.New(incidents.Config{CommandMemory: -1}, nil); err == nil {
		t.Error("negative CommandMemory accepted")
	}
}

// Handlers run concurrently for different partitions; the same street is still serialised.
func TestConcurrentHandlers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	streets := []string{"990101001", "990101002", "990102001", "990102002"}
	const perStreet = 50
	var wg sync.WaitGroup
	for _, st := range streets {
		for worker := range 2 { // two goroutines per street, as during a rebalance
			wg.Go(func() {
				for i := range perStreet {
					sig := sensorSignal("flood", fmt.Sprintf("%s-ev-%d", st, i), fmt.Sprintf("k-%d", i%5), event.SeverityBlue)
					sig.Event.Area.Street = st
					out, err := h.svc.HandleSignal(h.ctx, sig)
					if err != nil {
						t.Error(err)
						return
					}
					if err := h.bus.Emit(h.ctx, out); err != nil {
						t.Error(err)
						return
					}
					if worker == 0 {
						_ = h.svc.Open()
					}
				}
			})
		}
	}
	wg.Wait()
	open := h.svc.Open()
	if len(open) != len(streets)*5 {
		t.Fatalf("%d open incidents, want %d (5 keys per street)", len(open), len(streets)*5)
	}
	for _, inc := range open {
		if inc.ReportCount != perStreet/5 {
			t.Errorf("%s has %d reports, want %d", inc.ID, inc.ReportCount, perStreet/5)
		}
	}
	if s := h.svc.Stats(); s.Duplicate != uint64(len(streets)*perStreet) {
		t.Errorf("stats %+v, want every second copy dropped as duplicate", s)
	}
}

// A revoked partition's streets are forgotten whole: their incidents, their clocks (no SLA
// command is due for them any more) and the ids they have seen; other streets stay. Restoring
// the street's changelog brings everything back.
func TestForgetDropsAStreetAndRestoreBringsItBack(t *testing.T) {
	h := newHarness(t)
	sig := sensorSignal("flood", "ev-1", "k", event.SeverityRed)
	h.signal(sig)
	other := sensorSignal("flood", "ev-2", "k2", event.SeverityRed)
	other.Event.Area.Street = "990101002"
	h.signal(other)
	changes := h.bus.Changes(t)
	for i, ch := range changes { // dispatched: their sign-for clocks run
		h.command(event.Command{ID: fmt.Sprint("c-d", i), IncidentID: ch.Incident.ID, Action: event.ActionDispatch,
			Actor: event.SystemActor, Assignment: assignA})
	}
	changes = h.bus.Changes(t)
	id := changes[0].Incident.ID
	street := changes[0].Incident.Area.Key()
	if n := h.svc.Forget(func(s string) bool { return s == street }); n != 1 {
		t.Fatalf("Forget dropped %d incidents, want 1", n)
	}
	if _, ok := h.svc.Get(id); ok {
		t.Fatalf("%s still held after its street was forgotten", id)
	}
	otherID := changes[1].Incident.ID
	if _, ok := h.svc.Get(otherID); !ok {
		t.Fatalf("the other street's incident was dropped too")
	}
	if outs := h.svc.Tick(t0.Add(1000 * time.Hour)); len(outs) != 1 || outs[0].Data.(event.Command).IncidentID != otherID {
		t.Errorf("Tick after Forget: %v, want one SLA command, for %s", outs, otherID)
	}
	for _, ch := range changes {
		if ch.Incident.ID == id {
			h.svc.Restore(ch)
		}
	}
	if _, ok := h.svc.Get(id); !ok {
		t.Fatalf("%s not back after Restore", id)
	}
	if outs, err := h.svc.HandleSignal(h.ctx, sig); err != nil || len(outs) != 0 {
		t.Errorf("the replayed signal after Restore: %d outputs, %v; want none (already linked)", len(outs), err)
	}
}

// A command id is its sender's own: another sender reusing it (a guessed system id, another
// actor's id, an id used on another incident) is refused without seeing the first outcome, and
// a client cannot take the id of an SLA command to suppress it.
func TestCommandIDsBelongToTheirSender(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.signal(sensorSignal("flood", "ev-1", "flood:tunnel-7", event.SeverityOrange))
	id := h.bus.Changes(t)[0].Incident.ID
	h.signal(sensorSignal("flood", "ev-2", "flood:tunnel-9", event.SeverityOrange))
	other := h.bus.Changes(t)[1].Incident.ID
	h.walk(id, event.StatusAccepted) // ids id+"/c-dispatch" (system), id+"/c-accept" (workerA)
	changes := len(h.bus.Changes(t))
	outsider := event.Actor{Subject: "op-far", Role: "operator", District: "990299"}

	for _, tc := range []struct {
		name string
		cmd  event.Command
	}{
		{"another district's operator reuses the system's dispatch id",
			event.Command{ID: id + "/c-dispatch", IncidentID: id, Action: event.ActionProgress, Note: "x", Actor: outsider}},
		{"an operator reuses the worker's accept id",
			event.Command{ID: id + "/c-accept", IncidentID: id, Action: event.ActionProgress, Note: "x", Actor: operator}},
		{"the worker reuses their own id on another incident",
			event.Command{ID: id + "/c-accept", IncidentID: other, Action: event.ActionProgress, Note: "x", Actor: workerA}},
	} {
		h.command(tc.cmd)
		res := h.lastResult()
		if res.OK || res.Code != incidents.CodeInvalidCommand || res.Incident != nil {
			t.Errorf("%s: result %+v; want invalid_command and no incident", tc.name, res)
		}
		if !strings.Contains(res.Error, "already used") {
			t.Errorf("%s: error %q does not say why", tc.name, res.Error)
		}
	}
	if got := len(h.bus.Changes(t)); got != changes {
		t.Errorf("reused ids wrote %d changes, want none", got-changes)
	}
	// The refusals are audited beside the first outcome, not deduplicated into it.
	refused := 0
	for _, a := range h.bus.Audit(t) {
		if !a.OK && strings.Contains(a.ID, "#reused-by:") {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("%d audited refusals of reused ids, want 3", refused)
	}

	// The worker takes the id of the incident's next SLA command: refused as reserved, and the
	// clock still fires under it.
	inc, _ := h.svc.Get(id)
	if inc.Clock == nil {
		t.Fatal("accepted incident has no SLA clock")
	}
	at := inc.Clock.WarnAt
	if at.IsZero() {
		at = inc.Clock.DueAt
	}
	slaID := "sla:" + id + "@" + strconv.FormatInt(at.UnixMilli(), 10)
	h.command(event.Command{ID: slaID, IncidentID: id, Action: event.ActionProgress, Note: "x", Actor: workerA})
	if res := h.lastResult(); res.OK || res.Code != incidents.CodeInvalidCommand || !strings.Contains(res.Error, "reserved") {
		t.Errorf("worker command with an SLA id: result %+v, want refused as reserved", res)
	}
	h.clock.Advance(at.Sub(h.clock.Now()) + time.Second)
	fired := false
	for _, o := range h.svc.Tick(h.clock.Now()) {
		cmd := o.Data.(event.Command)
		if cmd.ID == slaID {
			fired = true
		}
		h.command(cmd)
	}
	if !fired {
		t.Fatalf("Tick did not send %s", slaID)
	}
	found := false
	for _, c := range h.bus.Changes(t)[changes:] {
		if c.Change.CommandID == slaID {
			found = true
		}
	}
	if !found {
		t.Errorf("the SLA command %s changed nothing: a client's id suppressed it", slaID)
	}
}
