package dispatch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/urbanbrain/urbanbrain/city"
	"github.com/urbanbrain/urbanbrain/dispatch"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
)

// returned is the changelog record of incident c returned by the workers in by, in order.
func returned(c event.IncidentChange, version int64, by ...string) event.IncidentChange {
	c.Incident.Version = version
	c.Incident.Status = event.StatusReturned
	c.Incident.Assignment = event.Assignment{Grid: c.Incident.Area.Grid}
	c.Incident.Returns = nil
	for _, w := range by {
		c.Incident.Returns = append(c.Incident.Returns, event.Return{WorkerID: w, Reason: "不归我管 " + w})
	}
	c.Change = event.Change{Action: event.ActionReturn, From: event.StatusAccepted, To: event.StatusReturned}
	return c
}

func TestReturnGoesToSomeoneElseThenToTheStreet(t *testing.T) {
	t.Parallel()
	h, g, o, first := dispatched(t, 2, "0301")

	h.handle(returned(o, 4, first.Assignment.WorkerID))
	cmd, rec := h.last()
	if cmd.Assignment.WorkerID == first.Assignment.WorkerID || cmd.Assignment.WorkerID == "" {
		t.Errorf("after a return, dispatched to %q again; want someone else", cmd.Assignment.WorkerID)
	}
	if cmd.ID != "dispatch:"+o.Incident.ID+"@4" {
		t.Errorf("re-dispatch command id %q, want one per round", cmd.ID)
	}
	if !strings.Contains(rec.Reason, "不归我管") || cmd.Level != "" {
		t.Errorf("re-dispatch reason %q level %q, want the return's reason and no escalation", rec.Reason, cmd.Level)
	}
	h.handle(returned(o, 7, first.Assignment.WorkerID, cmd.Assignment.WorkerID))
	cmd, rec = h.last()
	if cmd.Assignment.WorkerID != "SS-"+g.Street || cmd.Level != event.LevelStreet || rec.Level != event.LevelStreet {
		t.Errorf("after the second return: %+v level %q; want the street supervisor at street level", cmd.Assignment, cmd.Level)
	}
	if h.d.Stats().Redispatched != 2 {
		t.Errorf("stats %+v", h.d.Stats())
	}
}

func TestSignForTimeoutReassignsThenEscalates(t *testing.T) {
	t.Parallel()
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 1 })
	sup, _ := m.Supervisor(g.Community)
	h := newHarness(t, edgeOfTown{m}, tuesdayMorning)
	o := opened("INC-"+g.Street+"-0001", g, "0202")
	breach := func(version int64, worker, level string, lapsed ...string) event.IncidentChange {
		c := assigned(o, version, event.StatusDispatched, worker)
		c.Incident.Escalation, c.Incident.Lapsed = level, lapsed
		c.Incident.Clock = &event.Clock{Stage: event.StageSignFor, Breached: true}
		c.Change = event.Change{Action: incidents.ActionSLABreach, Stage: event.StageSignFor, From: event.StatusDispatched, To: event.StatusDispatched}
		return c
	}
	workers := onDuty(m, g.Code, tuesdayMorning)
	var ids []string
	for _, w := range workers {
		ids = append(ids, w.ID)
	}
	// Everyone of the grid has let it lapse: the community supervisor.
	h.handle(breach(5, ids[len(ids)-1], "", ids...))
	cmd, _ := h.last()
	if cmd.Action != event.ActionReassign || cmd.Assignment.WorkerID != sup.ID || cmd.Level != event.LevelCommunity {
		t.Errorf("after the grid: %s to %s level %q; want reassign to %s at community", cmd.Action, cmd.Assignment.WorkerID, cmd.Level, sup.ID)
	}
	h.handle(breach(7, sup.ID, event.LevelCommunity, append(ids, sup.ID)...))
	cmd, _ = h.last()
	if cmd.Assignment.WorkerID != "SS-"+g.Street || cmd.Level != event.LevelStreet {
		t.Errorf("after the community: to %s level %q; want the street supervisor", cmd.Assignment.WorkerID, cmd.Level)
	}
	h.handle(breach(9, "SS-"+g.Street, event.LevelStreet, append(ids, sup.ID, "SS-"+g.Street)...))
	cmds := h.bus.Commands(t)
	last := cmds[len(cmds)-1]
	if last.Action != event.ActionEscalate || last.Level != event.LevelDistrict || last.ID != "reassign:"+o.Incident.ID+"@9" {
		t.Errorf("after the street: %+v; want an escalation to the district", last)
	}
	// Redelivered, the same timeout sends the same command id again (the incidents service
	// answers it with its first outcome), and the load does not move twice.
	before := slices.Clone(h.bus.Commands(t))
	h.handle(breach(9, "SS-"+g.Street, event.LevelStreet, append(ids, sup.ID, "SS-"+g.Street)...))
	if after := h.bus.Commands(t); len(after) != len(before)+1 || after[len(after)-1].ID != last.ID {
		t.Errorf("redelivered timeout sent %+v", after[len(before):])
	}
	if st := h.d.Stats(); st.Reassigned != 2 || st.Escalated != 2 {
		t.Errorf("stats %+v, want 2 reassignments and 2 escalations (one redelivered)", st)
	}
}

// Regression (issue 12): the street supervisor was named "桂苑街道街道监督员". Over every street of
// the demo city, an incident returned twice goes to the street's duty post, named once with 街道.
func TestStreetSupervisorIsNamedOnce(t *testing.T) {
	t.Parallel()
	m := demo(t)
	h := newHarness(t, m, tuesdayMorning)
	grids := m.Grids()
	for _, st := range m.Streets() {
		i := slices.IndexFunc(grids, func(g city.Grid) bool { return g.Street == st.Code })
		if i < 0 {
			t.Fatalf("street %s has no grid", st.Code)
		}
		g := grids[i]
		o := opened("INC-"+g.Street+"-ss", g, "0301")
		h.handle(returned(o, 6, "W-a", "W-b"))
		cmd, _ := h.last()
		want := strings.TrimSuffix(st.Name, "街道") + "街道监督员"
		if cmd.Assignment.WorkerID != "SS-"+st.Code || cmd.Assignment.WorkerName != want ||
			strings.Contains(cmd.Assignment.WorkerName, "街道街道") {
			t.Errorf("street %s %q: supervisor %s %q, want SS-%s %q", st.Code, st.Name, cmd.Assignment.WorkerID, cmd.Assignment.WorkerName, st.Code, want)
		}
	}
	// A street name without the suffix (another city's data) gets it once.
	if id, name := dispatch.StreetDutyPost(event.Area{Street: "330102001", StreetName: "湖滨"}); id != "SS-330102001" || name != "湖滨街道监督员" {
		t.Errorf("StreetDutyPost(湖滨) = %s %q, want SS-330102001 湖滨街道监督员", id, name)
	}
}
