package dispatch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/urbanbrain/urbanbrain/city"
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
	m := demo(t)
	g := findGrid(t, m, func(g city.Grid) bool { return len(onDuty(m, g.Code, tuesdayMorning)) >= 2 })
	h := newHarness(t, m, tuesdayMorning)
	o := opened("INC-"+g.Street+"-0001", g, "0301")
	h.handle(o)
	first, _ := h.last()

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
