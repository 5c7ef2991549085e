package incidents_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
)

// Scripted scenarios of the whole work-order loop (incidents + dispatch) on a fake clock, in
// the style of Alertmanager's acceptance tests: "at t=0 push …; want … between t=… and t=…".
// Each checks the final state, the changelog and the audit log. The demo city is generated,
// so scenarios pick their grid by property (two workers on duty on Tuesday morning).

const (
	red    = event.SeverityRed
	orange = event.SeverityOrange
	yellow = event.SeverityYellow
)

var (
	deskOp  = event.Actor{Subject: "op-7", Role: "operator"}
	deskOp2 = event.Actor{Subject: "op-8", Role: "operator"}
	chief   = event.Actor{Subject: "sup-3", Role: "supervisor"}
)

type cityCase struct {
	m       *city.Map
	g       city.Grid
	area    event.Area
	workers []city.Worker // on duty in g on Tuesday 10:00
}

// loadDemo loads the demo city once for all (parallel) scenarios.
var loadDemo = sync.OnceValues(city.LoadDemo)

func demoMap(t *testing.T) *city.Map {
	t.Helper()
	m, err := loadDemo()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func busyGrid(t *testing.T) cityCase {
	t.Helper()
	m := demoMap(t)
	for _, g := range m.Grids() {
		var on []city.Worker
		for _, w := range m.Workers(g.Code) {
			if w.OnDuty(incidentstest.Tuesday10) {
				on = append(on, w)
			}
		}
		if _, ok := m.Supervisor(g.Community); ok && len(on) >= 2 {
			return cityCase{m: m, g: g, area: g.Area(), workers: on}
		}
	}
	t.Fatal("the demo city has no grid with two workers on duty")
	return cityCase{}
}

func newScenario(t *testing.T, c cityCase) *incidentstest.Scenario {
	t.Helper()
	return incidentstest.NewScenario(t, incidentstest.Options{Roster: c.m})
}

func as(w city.Worker) event.Actor {
	return event.Actor{Subject: w.ID, Role: "worker", Grids: w.Grids}
}

func byID(id string, c cityCase) event.Actor {
	for _, w := range c.m.Workers(c.g.Code) {
		if w.ID == id {
			return as(w)
		}
	}
	return event.Actor{Subject: id, Role: "worker", Grids: []string{c.g.Code}}
}

func cmd(id, action string, actor event.Actor) event.Command {
	return event.Command{IncidentID: id, Action: action, Actor: actor}
}

func withReason(c event.Command, reason string) event.Command { c.Reason = reason; return c }

// 1. 一事多报: a water-level sensor, three 12345 calls and a camera about one flooded
// underpass make one incident with five reports and one dispatch. The sensor raises 0104,
// the calls and the camera 0202: the policy relates the two categories.
func TestScenarioFloodedUnderpass(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	p := c.g.Centroid

	s.At(0).Push(incidentstest.Sensor("wl-1", "WL-UP-7", "0104", orange, p, c.area))
	inc := s.Open()
	s.At(2 * time.Minute).Push(incidentstest.Call("T-1", "0202", orange, "下穿隧道积水很深, 车熄火了", "13800000001", incidentstest.Offset(p, 40, 10), c.area))
	s.At(5 * time.Minute).Push(incidentstest.Call("T-2", "0202", orange, "隧道口水没过膝盖", "13800000002", incidentstest.Offset(p, -60, 30), c.area))
	s.At(9 * time.Minute).Push(incidentstest.Call("T-3", "0202", yellow, "地道桥下积水", "13800000003", incidentstest.Offset(p, 120, -80), c.area))
	s.At(12 * time.Minute).Push(incidentstest.Camera("cam-1", "CAM-UP-7", "road_waterlogging", "0202", orange, incidentstest.Offset(p, 20, 20), c.area))

	got := s.Get(inc.ID)
	if got.ReportCount != 5 || len(got.Reports) != 5 {
		t.Fatalf("incident has %d reports (count %d), want 5", len(got.Reports), got.ReportCount)
	}
	var tickets []string
	types := map[string]int{}
	for _, r := range got.Reports {
		types[r.EventType]++
		if r.TicketID != "" {
			tickets = append(tickets, r.TicketID)
		}
	}
	if !slices.Equal(tickets, []string{"T-1", "T-2", "T-3"}) || types[event.TypeSensorReading] != 1 || types[event.TypeVideoDetection] != 1 {
		t.Errorf("reports by type %v, work orders %v; want 1 sensor, 3 calls T-1..T-3, 1 camera", types, tickets)
	}
	if got.Status != event.StatusDispatched || got.Assignment.Agency != "water" {
		t.Errorf("incident %s to %+v, want dispatched with the water agency", got.Status, got.Assignment)
	}
	s.WantActions(inc.ID, incidents.ActionOpen, event.ActionDispatch, incidents.ActionLink, incidents.ActionLink, incidents.ActionLink, incidents.ActionLink)
	if d := s.Dispatches(inc.ID); len(d) != 1 {
		t.Errorf("%d dispatch records, want one dispatch", len(d))
	}
	n := 0
	for _, c := range s.Bus.Commands(t) {
		if c.IncidentID == inc.ID && c.Action == event.ActionDispatch {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d dispatch commands, want 1", n)
	}
	if l := s.WantChange(inc.ID, incidents.ActionLink, 2*time.Minute, 2*time.Minute); !strings.Contains(l.Change.Reason, "nearby") {
		t.Errorf("the first call joined with reason %q, want the spatial join named", l.Change.Reason)
	}
	s.WantAudit(inc.ID)

	// Not the same problem: waterlogging 450 m away, and an overflowing bin on the spot.
	s.At(15 * time.Minute).Push(incidentstest.Call("T-4", "0202", orange, "另一个路口积水", "13800000004", incidentstest.Offset(p, 450, 0), c.area))
	bin := incidentstest.Call("T-5", "0301", yellow, "垃圾桶满了", "13800000005", p, c.area)
	bin.CorrelationKey = "hotline:0301:x"
	s.At(16 * time.Minute).Push(bin)
	if open := s.Svc.Open(); len(open) != 3 {
		t.Errorf("%d open incidents, want 3 (the underpass, a far junction, a bin)", len(open))
	}
	if s.Get(inc.ID).ReportCount != 5 {
		t.Errorf("a far or unrelated report joined the underpass")
	}
	// Past the window: the underpass' latest report is at 12 m, the window is 2 h.
	s.At(2*time.Hour + 20*time.Minute).Push(incidentstest.Sensor("wl-2", "WL-UP-9", "0104", orange, p, c.area))
	if s.Get(inc.ID).ReportCount != 5 || len(s.Svc.Open()) != 4 {
		t.Errorf("a report after the window joined the underpass")
	}
}

// 2. 退单 ping-pong: the first return goes back to the dispatcher and to another worker; the
// second goes to the street supervisor instead of bouncing again.
func TestScenarioReturnPingPongEscalatesToStreet(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-20", "0301", yellow, "垃圾满溢无人清运", "13900000020", c.g.Centroid, c.area))
	id := s.Open().ID
	first := s.Get(id).Assignment.WorkerID

	s.At(5 * time.Minute)
	s.WantRefused(cmd(id, event.ActionReturn, byID(first, c)), incidents.CodeInvalidCommand) // no reason
	s.WantOK(withReason(cmd(id, event.ActionReturn, byID(first, c)), "物业管理区域, 不属于本网格"))
	inc := s.Get(id)
	second := inc.Assignment.WorkerID
	if inc.Status != event.StatusDispatched || second == "" || second == first {
		t.Fatalf("after the first return: %s to %q; want dispatched to someone other than %s", inc.Status, second, first)
	}
	s.At(10 * time.Minute)
	s.WantOK(withReason(cmd(id, event.ActionAccept, byID(second, c)), ""))
	s.WantOK(withReason(cmd(id, event.ActionReturn, byID(second, c)), "需要环卫部门专业车辆"))
	inc = s.Get(id)
	if inc.Status != event.StatusDispatched || inc.Assignment.WorkerID != "SS-"+c.g.Street || inc.Escalation != event.LevelStreet {
		t.Fatalf("after the second return: %s to %q at level %q; want dispatched to SS-%s at street level",
			inc.Status, inc.Assignment.WorkerID, inc.Escalation, c.g.Street)
	}
	if len(inc.Returns) != 2 || inc.Returns[0].WorkerID != first || inc.Returns[1].Reason != "需要环卫部门专业车辆" {
		t.Errorf("returns %+v, want both with their reasons", inc.Returns)
	}
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionReturn, event.ActionDispatch,
		event.ActionAccept, event.ActionReturn, event.ActionDispatch)
	last := s.Changes(id)[6]
	if last.Change.Level != event.LevelStreet || !strings.Contains(last.Change.Reason, "returned 2 times") {
		t.Errorf("last dispatch %+v, want the street level and why", last.Change)
	}
	if d := s.Dispatches(id); len(d) != 3 || d[2].Level != event.LevelStreet || !strings.Contains(d[1].Reason, "物业管理区域") {
		t.Errorf("dispatch records %+v, want three, the second carrying the return's reason, the last at street level", d)
	}
	// The workers who returned it can no longer touch it.
	s.WantRefused(cmd(id, event.ActionAccept, byID(first, c)), incidents.CodeForbidden)
	s.WantAudit(id, "return:invalid_command", "accept:forbidden")
}

// 3. 签收 timeout: a dispatch not signed for within 30 minutes (orange) is reassigned to
// another worker, whose own sign-for clock starts then.
func TestScenarioSignForTimeoutReassigns(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-30", "0202", orange, "路面积水", "13900000030", c.g.Centroid, c.area))
	id := s.Open().ID
	first := s.Get(id).Assignment.WorkerID

	s.At(45 * time.Minute)
	s.WantChange(id, incidents.ActionSLAWarning, 24*time.Minute, 24*time.Minute+s.Step)
	b := s.WantChange(id, incidents.ActionSLABreach, 30*time.Minute, 30*time.Minute+s.Step)
	if b.Change.Stage != event.StageSignFor || b.Change.Actor.Subject != event.SystemActor.Subject {
		t.Errorf("breach %+v, want the sign-for stage by the system", b.Change)
	}
	r := s.WantChange(id, event.ActionReassign, 30*time.Minute, 30*time.Minute+s.Step)
	to := r.Incident.Assignment.WorkerID
	if to == "" || to == first || !strings.Contains(r.Change.Reason, "not signed for in time") {
		t.Fatalf("reassigned to %q (%s), want someone other than %s", to, r.Change.Reason, first)
	}
	if ck := r.Incident.Clock; ck.Stage != event.StageSignFor || !ck.DueAt.Equal(r.Change.At.Add(30*time.Minute)) || ck.Breached {
		t.Errorf("clock after reassignment %+v, want a fresh 30 m sign-for clock", ck)
	}
	s.WantRefused(cmd(id, event.ActionAccept, byID(first, c)), incidents.CodeForbidden)
	s.WantOK(cmd(id, event.ActionAccept, byID(to, c)))
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, incidents.ActionSLAWarning, incidents.ActionSLABreach,
		event.ActionReassign, event.ActionAccept)
	s.WantAudit(id, "accept:forbidden")
	if st := s.Disp.Stats(); st.Reassigned != 1 {
		t.Errorf("dispatcher stats %+v, want one reassignment", st)
	}
}

// 4. 延期: a pending extension request pauses the handle clock; the supervisor's approval
// adds the time asked for to what was left. Neither a worker nor a desk operator may approve.
func TestScenarioExtensionPausesTheClock(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-40", "0202", orange, "积水倒灌地下车库", "13900000040", c.g.Centroid, c.area))
	id := s.Open().ID
	w := byID(s.Get(id).Assignment.WorkerID, c)

	s.At(time.Minute)
	s.WantOK(cmd(id, event.ActionAccept, w)) // handle: 12 h (orange, emergency category)
	s.At(2 * time.Hour)
	req := withReason(cmd(id, event.ActionRequestExtension, w), "需协调排水公司抽水车")
	req.ExtendBy = "24h"
	inc := s.WantOK(req)
	if ck := inc.Clock; ck.PausedAt.IsZero() || ck.RemainingSeconds != int64((10*time.Hour+time.Minute)/time.Second) {
		t.Fatalf("clock after the request %+v, want paused with 10h1m left", ck)
	}
	s.At(2*time.Hour + 30*time.Minute)
	s.WantRefused(cmd(id, event.ActionApproveExtension, w), incidents.CodeForbidden)
	s.WantRefused(cmd(id, event.ActionApproveExtension, deskOp), incidents.CodeForbidden)
	s.WantRefused(req, incidents.CodeInvalidCommand) // already pending (a new command id)
	s.At(6 * time.Hour)
	inc = s.WantOK(cmd(id, event.ActionApproveExtension, chief))
	due := 6*time.Hour + 10*time.Hour + time.Minute + 24*time.Hour // 40h1m
	if got := inc.Clock.DueAt.Sub(s.Start); got != due || inc.Extension.State != event.ExtensionApproved {
		t.Fatalf("due at t=%s (extension %+v), want t=%s", got, inc.Extension, due)
	}
	s.At(41 * time.Hour)
	warn := due - 12*time.Hour/5 // the last fifth of the 12 h limit
	s.WantNoChange(id, incidents.ActionSLAWarning, 0, warn-time.Second)
	s.WantNoChange(id, incidents.ActionSLABreach, 0, due-time.Second)
	s.WantChange(id, incidents.ActionSLAWarning, warn, warn+s.Step)
	if b := s.WantChange(id, incidents.ActionSLABreach, due, due+s.Step); b.Change.Level != event.LevelCommunity {
		t.Errorf("breach %+v, want an escalation to the community", b.Change)
	}
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, event.ActionRequestExtension,
		event.ActionApproveExtension, incidents.ActionSLAWarning, incidents.ActionSLABreach)
	s.WantAudit(id, "approve_extension:forbidden", "approve_extension:forbidden", "request_extension:invalid_command")
}

// 5. A refused extension resumes the clock with only the time that was left.
func TestScenarioRefusedExtensionResumes(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-50", "0202", orange, "积水", "13900000050", c.g.Centroid, c.area))
	id := s.Open().ID
	w := byID(s.Get(id).Assignment.WorkerID, c)
	s.At(time.Minute)
	s.WantOK(cmd(id, event.ActionAccept, w))
	s.At(2 * time.Hour)
	req := withReason(cmd(id, event.ActionRequestExtension, w), "等待材料")
	req.ExtendBy = "48h"
	s.WantOK(req)
	s.At(3 * time.Hour)
	s.WantRefused(cmd(id, event.ActionRefuseExtension, chief), incidents.CodeInvalidCommand) // no reason
	inc := s.WantOK(withReason(cmd(id, event.ActionRefuseExtension, chief), "材料库存充足, 今日完成"))
	due := 12*time.Hour + time.Minute + time.Hour // paused for one hour
	if got := inc.Clock.DueAt.Sub(s.Start); got != due || inc.Extension.State != event.ExtensionRefused {
		t.Fatalf("due at t=%s, want t=%s", got, due)
	}
	s.At(14 * time.Hour)
	s.WantChange(id, incidents.ActionSLABreach, due, due+s.Step)
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, event.ActionRequestExtension,
		event.ActionRefuseExtension, incidents.ActionSLAWarning, incidents.ActionSLABreach)
	s.WantAudit(id, "refuse_extension:invalid_command")
}

// 6. 预警 → 超时 → 督办: a red gas leak not handled within 2 h warns at 80 %, then climbs the
// organisation one level per limit: community, street, district, and no further.
func TestScenarioWarningBreachEscalation(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Sensor("gas-1", "GAS-12", "0103", red, c.g.Centroid, c.area))
	id := s.Open().ID
	s.At(time.Minute)
	s.WantOK(cmd(id, event.ActionAccept, byID(s.Get(id).Assignment.WorkerID, c)))
	s.At(9 * time.Hour)

	s.WantChange(id, incidents.ActionSLAWarning, time.Hour+37*time.Minute, time.Hour+37*time.Minute+s.Step)
	b1 := s.WantChange(id, incidents.ActionSLABreach, 2*time.Hour+time.Minute, 2*time.Hour+time.Minute+s.Step)
	b2 := s.WantChange(id, incidents.ActionSLABreach, 4*time.Hour+time.Minute, 4*time.Hour+time.Minute+2*s.Step)
	b3 := s.WantChange(id, incidents.ActionSLABreach, 6*time.Hour+time.Minute, 6*time.Hour+time.Minute+3*s.Step)
	for i, b := range []event.IncidentChange{b1, b2, b3} {
		want := []string{event.LevelCommunity, event.LevelStreet, event.LevelDistrict}[i]
		if b.Change.Level != want || b.Incident.Escalation != want || b.Change.Stage != event.StageHandle {
			t.Errorf("breach %d: level %q (incident %q, stage %s), want %q", i+1, b.Change.Level, b.Incident.Escalation, b.Change.Stage, want)
		}
	}
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, incidents.ActionSLAWarning,
		incidents.ActionSLABreach, incidents.ActionSLABreach, incidents.ActionSLABreach)
	if ck := s.Get(id).Clock; !ck.Breached || ck.Breaches != 3 {
		t.Errorf("clock %+v, want breached (stopped) after three escalations", ck)
	}
	s.WantAudit(id)
	// An operator's 督办 cannot go above the district either.
	s.WantRefused(withReason(cmd(id, event.ActionEscalate, deskOp), "领导批示"), incidents.CodeInvalidCommand)
}

// 7. 回访: a dissatisfied citizen reopens a closed hotline incident (重办), back to the same
// worker who must sign for it again; a satisfied one leaves it closed.
func TestScenarioDissatisfiedCallbackReopens(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-70", "0301", yellow, "垃圾桶满了三天", "13900000070", c.g.Centroid, c.area))
	id := s.Open().ID
	w := byID(s.Get(id).Assignment.WorkerID, c)
	s.At(10 * time.Minute)
	s.WantOK(cmd(id, event.ActionAccept, w))
	s.WantOK(cmd(id, event.ActionStart, w))
	s.At(time.Hour)
	res := cmd(id, event.ActionResolve, w)
	res.Evidence = &event.Evidence{Note: "已清运", Photos: []string{"https://img.example/after.jpg"}, Location: &c.g.Centroid}
	inc := s.WantOK(res)
	if inc.Evidence == nil || inc.Evidence.By != w.Subject || len(inc.Evidence.Photos) != 1 || inc.Clock.Stage != event.StageVerify {
		t.Fatalf("after resolve: evidence %+v clock %+v", inc.Evidence, inc.Clock)
	}
	s.WantOK(cmd(id, event.ActionVerify, deskOp))
	s.WantOK(cmd(id, event.ActionClose, deskOp))
	s.At(2 * time.Hour)
	s.WantRefused(cmd(id, event.ActionCallback, deskOp), incidents.CodeInvalidCommand) // no result
	cb := cmd(id, event.ActionCallback, deskOp)
	cb.Result, cb.Note = event.CallbackDissatisfied, "市民反映垃圾桶旁仍有散落垃圾"
	inc = s.WantOK(cb)
	if inc.Status != event.StatusDispatched || inc.Reopens != 1 || inc.Assignment.WorkerID != w.Subject ||
		inc.Evidence != nil || inc.Callback != event.CallbackDissatisfied || inc.Clock.Stage != event.StageSignFor {
		t.Fatalf("after a dissatisfied call-back: %+v", inc)
	}
	s.WantOK(cmd(id, event.ActionAccept, w))
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, event.ActionStart, event.ActionResolve,
		event.ActionVerify, event.ActionClose, event.ActionCallback, event.ActionAccept)
	if ch := s.Changes(id)[7].Change; ch.From != event.StatusClosed || ch.To != event.StatusDispatched {
		t.Errorf("call-back change %s → %s, want closed → dispatched", ch.From, ch.To)
	}
	s.WantAudit(id, "callback:invalid_command")

	// A sensor-only incident has nobody to call back.
	s.Push(incidentstest.Sensor("wl-70", "WL-70", "0104", orange, incidentstest.Offset(c.g.Centroid, 2000, 0), c.area))
	var sensorID string
	for _, o := range s.Svc.Open() {
		if o.ID != id {
			sensorID = o.ID
		}
	}
	cb.IncidentID, cb.ID = sensorID, ""
	s.WantRefused(cb, incidents.CodeIllegalTransition) // not closed
}

// 8. 核查 by someone other than the resolver: a supervisor who resolved the work may not
// verify it; another operator may.
func TestScenarioResolverCannotVerifyOwnWork(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	// No grid: dispatch leaves it for triage, and the desk sends it to the supervisor.
	area := c.area
	area.Grid, area.Community = "", ""
	s.At(0).Push(incidentstest.Call("T-80", "0602", yellow, "沿街商铺油烟", "13900000080", c.g.Centroid, area))
	id := s.Open().ID
	if st := s.Get(id).Status; st != event.StatusNew {
		t.Fatalf("an incident without a grid is %s, want new (left for triage)", st)
	}
	sup := event.Actor{Subject: "S-desk", Role: "supervisor"}
	d := cmd(id, event.ActionDispatch, deskOp)
	d.Assignment = &event.Assignment{WorkerID: sup.Subject, WorkerName: "督查组"}
	s.At(5 * time.Minute)
	s.WantOK(d)
	s.WantOK(cmd(id, event.ActionAccept, sup))
	s.WantOK(cmd(id, event.ActionStart, sup))
	r := cmd(id, event.ActionResolve, sup)
	r.Note = "已约谈商户安装净化器"
	s.WantOK(r)
	res := s.WantRefused(cmd(id, event.ActionVerify, sup), incidents.CodeForbidden)
	if !strings.Contains(res.Error, "may not verify") {
		t.Errorf("refusal %q, want it to say why", res.Error)
	}
	s.WantRefused(cmd(id, event.ActionClose, deskOp), incidents.CodeIllegalTransition) // not verified yet
	s.WantOK(cmd(id, event.ActionVerify, deskOp2))
	inc := s.WantOK(cmd(id, event.ActionClose, deskOp2))
	if inc.VerifiedBy != deskOp2.Subject || inc.Status != event.StatusClosed || inc.Clock != nil {
		t.Errorf("closed incident %+v", inc)
	}
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, event.ActionStart,
		event.ActionResolve, event.ActionVerify, event.ActionClose)
	s.WantAudit(id, "verify:forbidden", "close:illegal_transition")
}

// 9. Scope: a worker of another grid may not act on this grid's incident, nor a district
// operator on another district's; nothing changes and every refusal is audited.
func TestScenarioWorkerOfAnotherGridRefused(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	var other city.Worker
	for _, g := range c.m.Grids() {
		if g.Code == c.g.Code {
			continue
		}
		if ws := c.m.Workers(g.Code); len(ws) > 0 {
			other = ws[0]
			break
		}
	}
	s.At(0).Push(incidentstest.Call("T-90", "0301", yellow, "垃圾满溢", "13900000090", c.g.Centroid, c.area))
	id := s.Open().ID
	before := s.Get(id)
	intruder := as(other)
	s.At(time.Minute)
	s.WantRefused(cmd(id, event.ActionAccept, intruder), incidents.CodeForbidden)
	s.WantRefused(withReason(cmd(id, event.ActionReturn, intruder), "不是我的"), incidents.CodeForbidden)
	r := cmd(id, event.ActionResolve, intruder)
	r.Note = "done"
	s.WantRefused(r, incidents.CodeForbidden)
	s.WantRefused(withReason(cmd(id, event.ActionCancel, event.Actor{Subject: "op-far", Role: "operator", District: "999999"}), "误报"), incidents.CodeForbidden)
	s.WantRefused(withReason(cmd(id, event.ActionCancel, event.Actor{Subject: "v", Role: "viewer"}), "误报"), incidents.CodeForbidden)
	if after := s.Get(id); !reflect.DeepEqual(after, before) {
		t.Errorf("refused commands changed the incident")
	}
	s.WantOK(cmd(id, event.ActionAccept, byID(before.Assignment.WorkerID, c)))
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept)
	s.WantAudit(id, "accept:forbidden", "return:forbidden", "resolve:forbidden", "cancel:forbidden", "cancel:forbidden")
}

// 10. A restart mid-lifecycle keeps every clock: a running handle clock, a running sign-for
// clock and a paused one all fire (or stay quiet) exactly as without the restart.
func TestScenarioRestartKeepsEveryClock(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	p := c.g.Centroid
	s.At(0).Push(incidentstest.Sensor("gas-2", "GAS-2", "0103", red, p, c.area))
	gas := s.Open().ID
	s.At(time.Minute)
	s.WantOK(cmd(gas, event.ActionAccept, byID(s.Get(gas).Assignment.WorkerID, c))) // handle due 2h1m
	s.At(2 * time.Minute).Push(incidentstest.Call("T-100", "0202", orange, "积水", "13900000100", incidentstest.Offset(p, 3000, 0), c.area))
	s.At(3 * time.Minute).Push(incidentstest.Call("T-101", "0401", yellow, "噪声", "13900000101", incidentstest.Offset(p, -3000, 0), c.area))
	var water, noise string
	for _, o := range s.Svc.Open() {
		switch o.Category {
		case "0202":
			water = o.ID // sign-for due 32m
		case "0401":
			noise = o.ID
		}
	}
	nw := byID(s.Get(noise).Assignment.WorkerID, c)
	s.WantOK(cmd(noise, event.ActionAccept, nw))
	req := withReason(cmd(noise, event.ActionRequestExtension, nw), "夜间施工许可核查")
	req.ExtendBy = "8h"
	s.At(10 * time.Minute)
	s.WantOK(req)

	s.At(20 * time.Minute)
	before := map[string]*event.Clock{gas: s.Get(gas).Clock, water: s.Get(water).Clock, noise: s.Get(noise).Clock}
	s.Restart()
	for id, ck := range before {
		if got := s.Get(id).Clock; !reflect.DeepEqual(got, ck) {
			t.Errorf("clock of %s after restart\n got %+v\nwant %+v", id, got, ck)
		}
	}
	s.At(time.Hour)
	s.Restart() // and once more, between the sign-for timeout and the handle breach
	s.At(3 * time.Hour)

	s.WantChange(water, incidents.ActionSLABreach, 32*time.Minute, 32*time.Minute+s.Step)
	s.WantChange(water, event.ActionReassign, 32*time.Minute, 32*time.Minute+s.Step)
	s.WantChange(gas, incidents.ActionSLAWarning, time.Hour+37*time.Minute, time.Hour+37*time.Minute+s.Step)
	s.WantChange(gas, incidents.ActionSLABreach, 2*time.Hour+time.Minute, 2*time.Hour+time.Minute+s.Step)
	s.WantNoChange(noise, incidents.ActionSLAWarning, 0, 3*time.Hour)
	s.WantNoChange(noise, incidents.ActionSLABreach, 0, 3*time.Hour)
	// The gas clock fired once, restarts notwithstanding. (The water incident's sign-for
	// clock restarts with every reassignment, so it warns once per round.)
	for _, id := range []string{gas} {
		n := 0
		for _, a := range s.Actions(id) {
			if a == incidents.ActionSLAWarning {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s warned %d times, want once", id, n)
		}
	}
	s.WantActions(gas, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, incidents.ActionSLAWarning,
		incidents.ActionSLABreach) // the next, at the street level, would be at 4h1m
	s.WantActions(noise, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, event.ActionRequestExtension)
	s.WantAudit(gas)
	s.WantAudit(water)
	s.WantAudit(noise)
}

// 11. 并单 and 拆单: an operator merges two incidents about one problem (later reports of the
// merged one's key join the survivor), then splits a report that was not about it.
func TestScenarioMergeAndSplit(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	p := c.g.Centroid
	s.At(0).Push(incidentstest.Call("T-110", "0301", yellow, "垃圾满溢", "13900000110", p, c.area))
	a := s.Open().ID
	other := incidentstest.Camera("cam-110", "CAM-9", "garbage_overflow", "0303", yellow, incidentstest.Offset(p, 30, 0), c.area)
	s.At(time.Minute).Push(other)
	var b string
	for _, o := range s.Svc.Open() {
		if o.ID != a {
			b = o.ID
		}
	}
	m := withReason(cmd(a, event.ActionMerge, deskOp), "同一处垃圾点")
	m.Source = b
	s.At(2 * time.Minute)
	s.WantRefused(withReason(event.Command{IncidentID: a, Action: event.ActionMerge, Actor: deskOp, Source: a}, "x"), incidents.CodeInvalidCommand)
	inc := s.WantOK(m)
	if inc.ReportCount != 2 || s.Get(b).Status != event.StatusMerged || s.Get(b).MergedInto != a {
		t.Fatalf("after merge: %d reports on %s, %s is %s into %q", inc.ReportCount, a, b, s.Get(b).Status, s.Get(b).MergedInto)
	}
	// The camera sees the scene again: its episode on the survivor goes on (one report, two
	// detections), it does not become a third report.
	other.ID, other.Event.ID = "video-garbage_overflow@1/cam-111", "cam-111"
	s.At(3 * time.Minute).Push(other)
	if inc := s.Get(a); inc.ReportCount != 2 || len(s.Svc.Open()) != 1 || inc.Reports[1].Count != 2 || inc.Reports[1].LastEventID != "cam-111" {
		t.Errorf("a later detection of the merged key: %s has %d reports (%+v), %d open; want it joined to the camera's episode",
			a, inc.ReportCount, inc.Reports, len(s.Svc.Open()))
	}
	sp := withReason(cmd(a, event.ActionSplit, deskOp), "是另一处垃圾点")
	sp.EventID = "cam-111" // the episode's latest detection names it
	s.At(4 * time.Minute)
	s.WantOK(sp)
	if n := s.Get(a).ReportCount; n != 1 || len(s.Svc.Open()) != 2 {
		t.Fatalf("after split: %d reports on %s, %d open; want 1 and 2", n, a, len(s.Svc.Open()))
	}
	var born event.Incident
	for _, o := range s.Svc.Open() {
		if o.ID != a {
			born = o
		}
	}
	if born.ReportCount != 1 || born.Reports[0].LastEventID != "cam-111" || born.Reports[0].Count != 2 || born.Status != event.StatusDispatched {
		t.Errorf("split-off incident %+v, want the camera report, dispatched", born)
	}
	s.WantActions(a, incidents.ActionOpen, event.ActionDispatch, event.ActionMerge, incidents.ActionLink, event.ActionSplit)
	s.WantActions(b, incidents.ActionOpen, event.ActionDispatch, event.ActionMerge)
	s.WantActions(born.ID, event.ActionSplit, event.ActionDispatch)
	s.WantAudit(a, "merge:invalid_command")
	s.WantAudit(b)
	s.WantAudit(born.ID)
	// Rebuilt from the changelog, the split and the merge hold.
	s.Restart()
	if s.Get(a).ReportCount != 1 || s.Get(born.ID).ReportCount != 1 || s.Get(b).Status != event.StatusMerged {
		t.Errorf("after restart the merge or split is lost")
	}
}

// 12. 误报: an operator cancels a false alarm; its clocks stop, and the next report of the
// same key opens a new incident.
func TestScenarioCancelFalseAlarm(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	sig := incidentstest.Sensor("wl-120", "WL-120", "0104", orange, c.g.Centroid, c.area)
	s.At(0).Push(sig)
	id := s.Open().ID
	w := byID(s.Get(id).Assignment.WorkerID, c)
	s.At(5 * time.Minute)
	s.WantRefused(withReason(cmd(id, event.ActionCancel, w), "误报"), incidents.CodeForbidden)
	s.WantRefused(cmd(id, event.ActionCancel, deskOp), incidents.CodeInvalidCommand)
	inc := s.WantOK(withReason(cmd(id, event.ActionCancel, deskOp), "传感器被水草缠绕误报"))
	if inc.Status != event.StatusCancelled || inc.Clock != nil || len(s.Svc.Open()) != 0 {
		t.Fatalf("after cancel: %s, clock %+v, %d open", inc.Status, inc.Clock, len(s.Svc.Open()))
	}
	if n := s.Disp.Load(w.Subject); n != 0 {
		t.Errorf("load of %s after cancel is %d, want 0", w.Subject, n)
	}
	s.At(2 * time.Hour)
	s.WantNoChange(id, incidents.ActionSLABreach, 0, 2*time.Hour)
	s.WantRefused(cmd(id, event.ActionAccept, w), incidents.CodeIllegalTransition)
	sig.ID, sig.Event.ID = "sensor-rule@1/wl-121", "wl-121"
	s.Push(sig)
	if open := s.Svc.Open(); len(open) != 1 || open[0].ID == id {
		t.Errorf("after a cancel, a new report opened %+v; want a new incident", open)
	}
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionCancel)
	s.WantAudit(id, "cancel:forbidden", "cancel:invalid_command", "accept:illegal_transition")
}

// 13. Working hours: a non-emergency dispatch at 17:00 on a Tuesday counts only 30 minutes
// that day; its 1 h sign-for limit runs out at 09:00 on Wednesday, with no warning overnight.
func TestScenarioWorkingHoursClock(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	five := time.Date(2025, 6, 3, 17, 0, 0, 0, time.FixedZone("CST", 8*3600))
	s := incidentstest.NewScenario(t, incidentstest.Options{Roster: c.m, Start: five, Step: time.Minute})
	s.At(0).Push(incidentstest.Call("T-130", "0301", yellow, "垃圾满溢", "13900000130", c.g.Centroid, c.area))
	id := s.Open().ID
	if s.Get(id).Status != event.StatusDispatched {
		t.Skip("nobody on duty at 17:00 in this grid's neighbourhood")
	}
	s.At(18 * time.Hour)                  // Wednesday 11:00
	warn := 15*time.Hour + 48*time.Minute // Wednesday 08:48: 30 m + 18 m of work (80 % of 1 h)
	due := 16 * time.Hour                 // Wednesday 09:00
	s.WantNoChange(id, incidents.ActionSLAWarning, 0, warn-time.Second)
	s.WantChange(id, incidents.ActionSLAWarning, warn, warn+s.Step)
	s.WantChange(id, incidents.ActionSLABreach, due, due+s.Step)
	if ck := s.Changes(id)[1].Incident.Clock; !ck.WorkingHours || ck.LimitSeconds != 3600 {
		t.Errorf("sign-for clock %+v, want 1 h of working time", ck)
	}
	if a := s.Actions(id); len(a) < 5 || !slices.Equal(a[:5], []string{incidents.ActionOpen, event.ActionDispatch,
		incidents.ActionSLAWarning, incidents.ActionSLABreach, event.ActionReassign}) {
		t.Errorf("changelog %v, want open, dispatch, warning, breach, reassign", a)
	}
	s.WantAudit(id)
}

// 14. 督办 by hand and illegal steps: each refused command names its reason, changes nothing,
// and is audited.
func TestScenarioIllegalStepsAndManualEscalation(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-140", "0301", yellow, "垃圾满溢", "13900000140", c.g.Centroid, c.area))
	id := s.Open().ID
	w := byID(s.Get(id).Assignment.WorkerID, c)
	s.At(time.Minute)
	s.WantRefused(cmd(id, event.ActionVerify, deskOp), incidents.CodeIllegalTransition)
	s.WantRefused(cmd(id, event.ActionStart, w), incidents.CodeIllegalTransition)
	s.WantRefused(withReason(cmd(id, event.ActionReopen, deskOp), "x"), incidents.CodeIllegalTransition)
	s.WantRefused(cmd(id, event.ActionApproveExtension, chief), incidents.CodeIllegalTransition)
	s.WantRefused(cmd(id, event.ActionSLA, deskOp), incidents.CodeForbidden)
	s.WantRefused(cmd(id, "teleport", deskOp), incidents.CodeInvalidCommand)
	s.WantOK(cmd(id, event.ActionAccept, w))
	s.WantRefused(cmd(id, event.ActionApproveExtension, chief), incidents.CodeInvalidCommand) // none pending
	p := cmd(id, event.ActionProgress, w)
	p.Note = "已联系环卫, 车辆 30 分钟内到"
	if inc := s.WantOK(p); inc.Status != event.StatusAccepted {
		t.Errorf("progress moved the incident to %s", inc.Status)
	}
	s.WantRefused(cmd(id, event.ActionEscalate, deskOp), incidents.CodeInvalidCommand) // no reason
	e := s.WantOK(withReason(cmd(id, event.ActionEscalate, deskOp), "群众多次来电"))
	if e.Escalation != event.LevelCommunity {
		t.Errorf("escalated to %q, want community", e.Escalation)
	}
	up := withReason(cmd(id, event.ActionEscalate, chief), "区领导督办")
	up.Level = event.LevelDistrict
	if e = s.WantOK(up); e.Escalation != event.LevelDistrict {
		t.Errorf("escalated to %q, want district", e.Escalation)
	}
	s.WantActions(id, incidents.ActionOpen, event.ActionDispatch, event.ActionAccept, event.ActionProgress,
		event.ActionEscalate, event.ActionEscalate)
	if ch := s.Changes(id)[5].Change; ch.Level != event.LevelDistrict {
		t.Errorf("escalation change %+v, want the district level recorded", ch)
	}
	s.WantAudit(id, "verify:illegal_transition", "start:illegal_transition", "reopen:illegal_transition",
		"approve_extension:illegal_transition", "sla:forbidden", "teleport:invalid_command",
		"approve_extension:invalid_command", "escalate:invalid_command")
}

// edgeOfTown is the demo map with no neighbouring grids, so a grid's own workers are all
// there is before the supervisors.
type edgeOfTown struct{ *city.Map }

func (edgeOfTown) Neighbours(string) []string { return nil }

// 15. Nobody signs for it: the dispatch goes from worker to worker of the grid, then to the
// community supervisor, then to the street supervisor, and finally escalates to the district.
func TestScenarioSignForChainEndsAtTheDistrict(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := incidentstest.NewScenario(t, incidentstest.Options{Roster: edgeOfTown{c.m}})
	s.At(0).Push(incidentstest.Call("T-150", "0202", orange, "积水", "13900000150", c.g.Centroid, c.area))
	id := s.Open().ID
	s.At(4 * time.Hour)
	sup, _ := c.m.Supervisor(c.g.Community)
	var chain []string
	var levels []string
	for _, ch := range s.Changes(id) {
		if ch.Change.Action == event.ActionReassign || ch.Change.Action == event.ActionDispatch {
			chain = append(chain, ch.Incident.Assignment.WorkerID)
		}
		if ch.Change.Level != "" {
			levels = append(levels, ch.Change.Action+":"+ch.Change.Level)
		}
	}
	n := len(c.workers)
	if len(chain) != n+2 || chain[n] != sup.ID || chain[n+1] != "SS-"+c.g.Street {
		t.Errorf("assignees %v, want the %d on-duty workers, then %s, then SS-%s", chain, n, sup.ID, c.g.Street)
	}
	if want := []string{"reassign:community", "reassign:street", "escalate:district"}; !slices.Equal(levels, want) {
		t.Errorf("levels reached %v, want %v", levels, want)
	}
	// Every hop is one sign-for limit (30 m) after the last, within a tick.
	first := s.WantChange(id, event.ActionEscalate, time.Duration(n+2)*30*time.Minute, time.Duration(n+2)*(30*time.Minute+s.Step))
	if first.Incident.Escalation != event.LevelDistrict {
		t.Errorf("escalation %+v", first.Incident)
	}
	s.WantAudit(id)
}

// A gas sensor that keeps alarming is one report that updates (its episode: readings, first
// and latest), not a report per reading; a second sensor nearby is a second report. Replays
// of any reading, before and after a rebuild from the changelog, change nothing.
func TestScenarioSensorEpisodeIsOneReport(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	p := c.g.Centroid
	reading := func(i int, device string) event.Signal {
		sig := incidentstest.Sensor(fmt.Sprintf("gas-r%02d", i), device, "0103", red, p, c.area)
		sig.CorrelationKey = "gas:" + c.area.Grid // the gas rule keys by place, not by device
		return sig
	}
	for i := range 12 {
		s.At(time.Duration(i) * 20 * time.Second).Push(reading(i, "GAS-7"))
	}
	id := s.Open().ID
	inc := s.Get(id)
	if inc.ReportCount != 1 || len(inc.Reports) != 1 {
		t.Fatalf("12 readings of one sensor: %d reports, want 1 episode", inc.ReportCount)
	}
	if r := inc.Reports[0]; r.Device != "GAS-7" || r.Count != 12 || r.EventID != "gas-r00" || r.LastEventID != "gas-r11" || !r.LastAt.After(r.At) {
		t.Errorf("episode %+v, want GAS-7 with 12 readings from gas-r00 to gas-r11", r)
	}
	s.At(5 * time.Minute).Push(reading(12, "GAS-8"))
	if inc = s.Get(id); inc.ReportCount != 2 || inc.Reports[1].Device != "GAS-8" {
		t.Fatalf("a second sensor: %+v, want a second report", inc.Reports)
	}
	version := inc.Version
	s.Push(reading(4, "GAS-7"))
	s.Restart()
	s.Push(reading(7, "GAS-7")).Push(reading(11, "GAS-7")).Push(reading(12, "GAS-8"))
	if got := s.Get(id); got.Version != version || got.Reports[0].Count != 12 {
		t.Errorf("replayed readings changed the incident: version %d (want %d), episode %+v", got.Version, version, got.Reports[0])
	}
}
