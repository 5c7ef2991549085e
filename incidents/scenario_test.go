package incidents_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/city/citytest"
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

// demoMap is the demo city, loaded once for all (parallel) scenarios.
func demoMap(t *testing.T) *city.Map { return citytest.Demo(t) }

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
	p.Evidence = &event.Evidence{Location: &event.Point{Lon: 200, Lat: 30}}
	s.WantRefused(p, incidents.CodeInvalidCommand) // a phone off the globe
	p.Evidence.Location = &event.Point{Lon: 102.71, Lat: 25.04}
	if inc := s.WantOK(p); inc.Status != event.StatusAccepted {
		t.Errorf("progress moved the incident to %s", inc.Status)
	}
	// Where the worker was goes on the timeline with the note.
	if ch := s.Changes(id)[3].Change; ch.Action != event.ActionProgress || ch.Location == nil || ch.Location.Lat != 25.04 {
		t.Errorf("progress change %+v, want the phone's location", ch)
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
		"approve_extension:invalid_command", "progress:invalid_command", "escalate:invalid_command")
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

// Issue 12: scenarios through the real demo rules (rules engine in the loop), where every
// signal counts as evidence and every report explains itself.

func newRulesScenario(t *testing.T, c cityCase) *incidentstest.Scenario {
	t.Helper()
	return incidentstest.NewScenario(t, incidentstest.Options{Roster: c.m, Engine: incidentstest.DemoEngine(t)})
}

// wantExplained fails the test unless every report of inc names its rule version, why it
// matched (a term of its condition that held) and why it joined.
func wantExplained(t *testing.T, inc event.Incident) {
	t.Helper()
	for _, r := range inc.Reports {
		x := r.Explanation
		if r.RuleVersion < 1 || x == nil || x.Condition == "" || len(x.Terms) == 0 || r.Joined == nil {
			t.Errorf("report %s (%s): rule version %d, explanation %+v, joined %+v; want all three", r.EventID, r.RuleID, r.RuleVersion, x, r.Joined)
			continue
		}
		held := false
		for _, term := range x.Terms {
			held = held || term.Holds
		}
		if !held {
			t.Errorf("report %s: no term of %q held: %+v", r.EventID, x.Condition, x.Terms)
		}
	}
	if inc.RuleID == "" || inc.RuleVersion < 1 {
		t.Errorf("incident %s names no rule version: %q v%d", inc.ID, inc.RuleID, inc.RuleVersion)
	}
}

func termText(x *event.Explanation) []string {
	var out []string
	if x != nil {
		for _, t := range x.Terms {
			out = append(out, t.Text)
		}
	}
	return out
}

func level(cm float64) map[string]float64 { return map[string]float64{"level_cm": cm} }

// A water-level sensor, three calls and a camera within 10 minutes and 200 m: one incident,
// five reports (the sensor and the camera each one episode), raised to red by
// water-level-held on a reading water-level-high already reported — the signal that was
// thrown away — with one dispatch and the escalation on the timeline.
func TestScenarioFloodHeldRuleRaisesToRed(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newRulesScenario(t, c)
	p := c.g.Centroid
	wl := func(id string, cm float64) event.Event {
		return incidentstest.Reading(id, "WL-UP-7", "water_level", level(cm), p, c.area)
	}

	s.At(0).Send(wl("wl-0", 95))
	inc := s.Open()
	if inc.Severity != orange || inc.RuleID != "water-level-high" {
		t.Fatalf("opened %s by %s, want orange by water-level-high", inc.Severity, inc.RuleID)
	}
	s.At(1 * time.Minute).Send(wl("wl-1", 105)) // above 100 cm: held from here
	s.At(2 * time.Minute).Send(wl("wl-2", 110)).
		Send(incidentstest.Ticket("T-1", "0202", event.RequestHelp, "下穿隧道积水很深, 车熄火了", "13800000001", incidentstest.Offset(p, 40, 10), c.area))
	s.At(3 * time.Minute).Send(wl("wl-3", 112))
	s.At(4 * time.Minute).Send(wl("wl-4", 115)) // held 3 minutes: water-level-held fires
	s.At(5 * time.Minute).Send(incidentstest.Ticket("T-2", "0202", event.RequestHelp, "隧道口水没过膝盖", "13800000002", incidentstest.Offset(p, -60, 30), c.area))
	s.At(6 * time.Minute).Send(incidentstest.Detection("cam-1", "CAM-UP-7", "waterlogging", 0.88, incidentstest.Offset(p, 20, 20), c.area))
	s.At(7 * time.Minute).Send(incidentstest.Detection("cam-2", "CAM-UP-7", "waterlogging", 0.95, incidentstest.Offset(p, 20, 20), c.area))
	s.At(9 * time.Minute).Send(incidentstest.Ticket("T-3", "0202", event.RequestReport, "地道桥下积水", "13800000003", incidentstest.Offset(p, 120, -80), c.area))

	got := s.Get(inc.ID)
	if len(s.Svc.Open()) != 1 || got.ReportCount != 5 || len(got.Reports) != 5 {
		t.Fatalf("%d open incidents; the flood has %d reports (count %d), want one incident of 5", len(s.Svc.Open()), len(got.Reports), got.ReportCount)
	}
	if got.Severity != red {
		t.Errorf("severity %s, want red: water-level-held's signal was dropped", got.Severity)
	}
	if d := s.Dispatches(inc.ID); len(d) != 1 {
		t.Errorf("%d dispatches, want 1", len(d))
	}
	esc := s.WantChange(inc.ID, incidents.ActionSignal, 4*time.Minute, 4*time.Minute)
	if esc.Change.RuleID != "water-level-held" || esc.Change.RuleVersion != 1 || esc.Incident.Severity != red ||
		!strings.Contains(esc.Change.Reason, "orange → red") || esc.Change.Explanation == nil {
		t.Errorf("escalation %+v (severity %s), want water-level-held v1 raising orange → red, explained", esc.Change, esc.Incident.Severity)
	}
	n := 0
	for _, a := range s.Actions(inc.ID) {
		if a == incidents.ActionSignal {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d signal changes, want the held rule once: %v", n, s.Actions(inc.ID))
	}

	got = s.Explained(got)
	sensor, camera := got.Reports[0], got.Reports[3] // sensor, T-1, T-2, camera, T-3
	if sensor.Device != "WL-UP-7" || sensor.Count != 5 || sensor.EventID != "wl-0" || sensor.LastEventID != "wl-4" ||
		sensor.Peak["level_cm"] != 115 || !sensor.At.Equal(s.Start) || !sensor.LastAt.Equal(s.Start.Add(4*time.Minute)) {
		t.Errorf("sensor episode %+v; want 5 readings wl-0..wl-4 from t=0 to t=4m, peak 115", sensor)
	}
	if !slices.Contains(termText(sensor.Explanation), `sensor.metrics.level_cm 115 > 80`) {
		t.Errorf("sensor report explained by %v, want the latest level 115 > 80", termText(sensor.Explanation))
	}
	if len(sensor.Rules) != 1 || sensor.Rules[0].RuleID != "water-level-held" || sensor.Rules[0].EventID != "wl-4" {
		t.Fatalf("sensor report's further rules %+v, want water-level-held on wl-4", sensor.Rules)
	}
	held := sensor.Rules[0].Explanation
	if held == nil || held.For != "3m" || held.Held != "3m0s" || !held.HeldSince.Equal(s.Start.Add(time.Minute)) ||
		!slices.Contains(termText(held), `sensor.metrics.level_cm 115 > 100`) {
		t.Errorf("held explanation %+v, want level 115 > 100 held 3m0s since t=1m", held)
	}
	if camera.Device != "CAM-UP-7" || camera.Class != "waterlogging" || camera.Count != 2 || camera.Peak["confidence"] != 0.95 {
		t.Errorf("camera episode %+v, want one report of 2 detections, peak confidence 0.95", camera)
	}
	for _, r := range got.Reports[1:] {
		if j := r.Joined; j == nil || j.By != event.JoinPlace || j.DistanceMeters <= 0 || j.DistanceMeters > 200 || j.RadiusMeters != 300 {
			t.Errorf("report %s joined %+v, want by place within 200 m", r.EventID, j)
		}
	}
	if j := sensor.Joined; j == nil || j.By != event.JoinOpened {
		t.Errorf("the sensor report joined %+v, want opened", j)
	}
	wantExplained(t, got)

	// Replays change nothing: the held reading again, and the held signal again after a
	// rebuild from the changelog.
	before := len(s.Changes(inc.ID))
	s.Send(wl("wl-4", 115))
	s.Restart()
	for _, sig := range s.Signals() {
		if sig.RuleID == "water-level-held" && !sig.Clear {
			s.Push(sig)
		}
	}
	if after := len(s.Changes(inc.ID)); after != before {
		t.Errorf("replays wrote %d changes", after-before)
	}
}

// A gas leak: one sensor over 6 minutes, rising past 200 ppm (red), and a second sensor 50 m
// away. One red incident, one report per sensor that updates (first and last seen, peak,
// count), not a report per reading.
func TestScenarioGasLeakOneReportPerSensor(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newRulesScenario(t, c)
	p := c.g.Centroid
	ppm := []float64{60, 90, 150, 230, 260, 240, 210}
	for i, v := range ppm {
		s.At(time.Duration(i) * time.Minute).Send(incidentstest.Reading(fmt.Sprintf("g1-%d", i), "GAS-1", "gas", map[string]float64{"ppm": v}, p, c.area))
	}
	s.At(6*time.Minute + 30*time.Second).Send(incidentstest.Reading("g2-0", "GAS-2", "gas", map[string]float64{"ppm": 70}, incidentstest.Offset(p, 50, 0), c.area))
	s.At(7 * time.Minute).Send(incidentstest.Reading("g2-1", "GAS-2", "gas", map[string]float64{"ppm": 120}, incidentstest.Offset(p, 50, 0), c.area))

	inc := s.Open()
	if inc.Severity != red || inc.ReportCount != 2 || len(inc.Reports) != 2 {
		t.Fatalf("incident %s with %d reports, want red with one report per sensor", inc.Severity, len(inc.Reports))
	}
	inc = s.Explained(inc)
	g1, g2 := inc.Reports[0], inc.Reports[1]
	if g1.Device != "GAS-1" || g1.Count != 7 || g1.EventID != "g1-0" || g1.LastEventID != "g1-6" || g1.Peak["ppm"] != 260 ||
		!g1.At.Equal(s.Start) || !g1.LastAt.Equal(s.Start.Add(6*time.Minute)) {
		t.Errorf("GAS-1 report %+v; want 7 readings from t=0 to t=6m, peak 260", g1)
	}
	if !slices.Contains(termText(g1.Explanation), `sensor.metrics.ppm 210 > 50`) {
		t.Errorf("GAS-1 explained by %v", termText(g1.Explanation))
	}
	if g2.Device != "GAS-2" || g2.Count != 2 || g2.Peak["ppm"] != 120 || g2.Joined == nil || g2.Joined.By != event.JoinPlace ||
		g2.Joined.DistanceMeters < 45 || g2.Joined.DistanceMeters > 55 {
		t.Errorf("GAS-2 report %+v joined %+v; want its own episode, joined by place 50 m away", g2, g2.Joined)
	}
	wantExplained(t, inc)
	if got := len(s.Changes(inc.ID)); got != 1+1+6+2 {
		t.Errorf("%d changes, want open, dispatch and one link per reading (9 readings)", got)
	}
}

// A camera re-detecting one scene is one report; another class seen by the same camera under
// the same rule is another.
func TestScenarioCameraEpisodeIsOneScene(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	p := c.g.Centroid
	cam := func(id, algorithm string, conf float64) event.Signal {
		sig := incidentstest.Camera(id, "CAM-9", algorithm, "0301", yellow, p, c.area)
		sig.RuleID, sig.ID, sig.CorrelationKey = "video-any", "video-any@1/"+id, "video:CAM-9"
		sig.Event.Video.Confidence = conf
		return sig
	}
	s.At(0).Push(cam("v-1", "garbage_overflow", 0.81))
	s.At(time.Minute).Push(cam("v-2", "garbage_overflow", 0.93))
	s.At(2 * time.Minute).Push(cam("v-3", "garbage_overflow", 0.85))
	s.At(3 * time.Minute).Push(cam("v-4", "street_vending", 0.9))
	inc := s.Open()
	if len(inc.Reports) != 2 {
		t.Fatalf("%d reports, want the overflow scene and the vending", len(inc.Reports))
	}
	if r := inc.Reports[0]; r.Class != "garbage_overflow" || r.Count != 3 || r.Peak["confidence"] != 0.93 || r.LastEventID != "v-3" {
		t.Errorf("scene %+v, want 3 detections, peak 0.93, latest v-3", r)
	}
}

// Three noise complaints about one community within an hour: the window rule's orange signal
// is applied once (it raises the blue complaint incident and is on its timeline); a fourth
// joins without another signal; a complaint in another district does not join.
func TestScenarioNoiseClusterRaisesOnce(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newRulesScenario(t, c)
	p := c.g.Centroid
	call := func(id string, d time.Duration, east float64) {
		s.At(d).Send(incidentstest.Ticket(id, "0401", event.RequestComplaint, "楼下广场舞音乐太吵", "13900000001", incidentstest.Offset(p, east, 0), c.area))
	}
	call("N-1", 0, 0)
	inc := s.Open()
	if inc.Severity != event.SeverityBlue {
		t.Fatalf("first complaint opened %s, want blue", inc.Severity)
	}
	call("N-2", 20*time.Minute, 30)
	call("N-3", 40*time.Minute, -30)
	got := s.Get(inc.ID)
	if got.Severity != orange {
		t.Errorf("after the third complaint %s, want orange from hotline-noise-cluster", got.Severity)
	}
	sig := s.WantChange(inc.ID, incidents.ActionSignal, 40*time.Minute, 40*time.Minute)
	if x := sig.Change.Explanation; sig.Change.RuleID != "hotline-noise-cluster" || x == nil || x.Window == nil || x.Window.Count != 3 ||
		x.Window.Size != "1h" || x.Window.Having != "count >= 3" {
		t.Errorf("signal change %+v, want hotline-noise-cluster with a window of 3 in 1h", sig.Change)
	}
	call("N-4", 50*time.Minute, 10)

	// Another district's complaint, at the same time.
	m := demoMap(t)
	var far city.Grid
	for _, g := range m.Grids() {
		if g.District != c.g.District {
			far = g
			break
		}
	}
	if far.Code == "" {
		t.Fatal("the demo city has one district")
	}
	s.At(55 * time.Minute).Send(incidentstest.Ticket("N-5", "0401", event.RequestComplaint, "噪音", "13900000005", far.Centroid, far.Area()))

	got = s.Get(inc.ID)
	if got.ReportCount != 4 || got.Severity != orange {
		t.Errorf("%d reports, severity %s; want N-1..N-4 and orange", got.ReportCount, got.Severity)
	}
	n := 0
	for _, a := range s.Actions(inc.ID) {
		if a == incidents.ActionSignal {
			n++
		}
	}
	if n != 1 {
		t.Errorf("window signal applied %d times, want once: %v", n, s.Actions(inc.ID))
	}
	if len(s.Svc.Open()) != 2 {
		t.Errorf("%d open incidents, want the cluster and the far complaint", len(s.Svc.Open()))
	}
	got = s.Explained(got)
	third := got.Reports[2]
	if len(third.Rules) != 1 || third.Rules[0].RuleID != "hotline-noise-cluster" || third.Rules[0].Explanation.Window.Count != 3 {
		t.Errorf("third complaint's further rules %+v, want the cluster with its count", third.Rules)
	}
	wantExplained(t, got)
}

// The changelog carries each explanation once, on the change of its signal, never on the
// reports that every later change re-writes; a reader of the changes (the store's detail)
// still explains every report, after a sensor episode continues and after a merge moves
// reports to another incident.
func TestChangelogExplainsOnce(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newRulesScenario(t, c)
	p := c.g.Centroid
	for i, v := range []float64{60, 90, 150} {
		s.At(time.Duration(i) * time.Minute).Send(incidentstest.Reading(fmt.Sprintf("g-%d", i), "GAS-7", "gas", map[string]float64{"ppm": v}, p, c.area))
	}
	gas := s.Open().ID
	s.At(3 * time.Minute).Send(incidentstest.Ticket("N-7", "0401", event.RequestComplaint, "楼下广场舞音乐太吵", "13900000007", incidentstest.Offset(p, 20, 0), c.area))
	var noise string
	for _, o := range s.Svc.Open() {
		if o.ID != gas {
			noise = o.ID
		}
	}
	if noise == "" {
		t.Fatal("the complaint opened no incident of its own")
	}
	m := withReason(cmd(gas, event.ActionMerge, deskOp), "同一处")
	m.Source = noise
	s.At(4 * time.Minute).WantOK(m)

	explained := 0
	for _, ch := range s.Changes("") {
		for _, r := range ch.Incident.Reports {
			if r.Explanation != nil {
				t.Errorf("%s v%d (%s): report %s carries its explanation in the record", ch.Incident.ID, ch.Incident.Version, ch.Change.Action, r.EventID)
			}
			for _, rm := range r.Rules {
				if rm.Explanation != nil {
					t.Errorf("%s v%d: rule match %s carries its explanation in the record", ch.Incident.ID, ch.Incident.Version, rm.RuleID)
				}
			}
		}
		if ch.Change.Explanation != nil {
			explained++
		}
	}
	if explained < 4 { // three readings and the complaint
		t.Errorf("%d changes explained, want one per signal (at least 4)", explained)
	}
	got := s.Explained(s.Get(gas))
	if len(got.Reports) != 2 {
		t.Fatalf("%d reports after the merge, want the sensor's episode and the complaint", len(got.Reports))
	}
	wantExplained(t, got)
	if !slices.Contains(termText(got.Reports[0].Explanation), `sensor.metrics.ppm 150 > 50`) {
		t.Errorf("the episode is explained by %v, want its latest reading (150 > 50)", termText(got.Reports[0].Explanation))
	}
	if raw := s.Get(gas); !event.Unexplained(raw) || event.Unexplained(got) {
		t.Errorf("Unexplained: %v before explaining, %v after; want true, false", event.Unexplained(raw), event.Unexplained(got))
	}
}
