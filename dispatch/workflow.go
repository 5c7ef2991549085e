package dispatch

import (
	"fmt"
	"strconv"

	"github.com/urbanbrain/urbanbrain/event"
)

// The rounds after the first dispatch: a return (退单) comes back here with its reason and is
// sent to someone who has not returned it — until MaxReturns, when it goes to the street
// supervisor instead of bouncing again; and a dispatch nobody signed for in time (the
// incidents service marks the sign-for clock breached) is reassigned, or escalated when
// nobody is left.

// awaitsDispatch reports whether an incident in status s is waiting for a dispatcher.
func awaitsDispatch(s event.Status) bool {
	return s == event.StatusNew || s == event.StatusReturned
}

// signForBreached reports whether rec is the sign-for clock of a dispatched incident running
// out (the change the incidents service writes when nobody signed for it in time).
func signForBreached(rec event.IncidentChange) bool {
	c := rec.Incident.Clock
	return rec.Change.Action == "sla_breach" && rec.Change.Stage == event.StageSignFor &&
		rec.Incident.Status == event.StatusDispatched && c != nil && c.Stage == event.StageSignFor && c.Breached
}

// returners are the workers who returned inc, the ones not to send it to again.
func returners(inc event.Incident) []string {
	out := make([]string, 0, len(inc.Returns))
	for _, r := range inc.Returns {
		out = append(out, r.WorkerID)
	}
	return out
}

// decideFor decides a new incident (decide) or a returned one. d.mu is held.
func (d *Dispatcher) decideFor(inc event.Incident) (*event.Dispatch, string) {
	if inc.Status != event.StatusReturned || len(inc.Returns) == 0 {
		return d.decide(inc)
	}
	last := inc.Returns[len(inc.Returns)-1]
	if len(inc.Returns) >= d.cfg.MaxReturns {
		dec := d.toStreetSupervisor(inc)
		dec.Reason = fmt.Sprintf("returned %d times (last by %s: %s): to the street supervisor instead of bouncing again",
			len(inc.Returns), last.WorkerID, last.Reason)
		d.stats.redispatched.Add(1)
		return dec, ""
	}
	dec, why := d.choose(inc, returners(inc))
	if dec == nil {
		dec = d.toStreetSupervisor(inc)
		dec.Reason = "returned and nobody else nearby: to the street supervisor"
	} else {
		dec.Reason = fmt.Sprintf("re-dispatch after return by %s (%s): %s", last.WorkerID, last.Reason, dec.Reason)
	}
	d.stats.redispatched.Add(1)
	return dec, why
}

// toStreetSupervisor is a dispatch to the street supervisor, escalated to the street level.
func (d *Dispatcher) toStreetSupervisor(inc event.Incident) *event.Dispatch {
	id, name := d.cfg.StreetSupervisor(inc.Area)
	a := event.Assignment{WorkerID: id, WorkerName: name, Grid: inc.Area.Grid}
	if ag, ok := d.agency(inc); ok {
		a.Agency, a.AgencyName = ag.Code, ag.Name
	}
	return &event.Dispatch{
		ID:         inc.ID + "/" + strconv.FormatInt(inc.Version, 10),
		IncidentID: inc.ID,
		Assignment: a,
		Level:      event.LevelStreet,
		At:         d.cfg.Now().UTC(),
	}
}

// reassign acts on a sign-for timeout: another on-duty worker of the grid or a neighbouring
// one (never the one who let it lapse, nor one who returned it); else the community
// supervisor; else the street supervisor; and when even the street has let it lapse, an
// escalation to the district. The command id is the incident and version, so a redelivered
// timeout changes nothing twice.
func (d *Dispatcher) reassign(inc event.Incident) event.Outputs {
	d.mu.Lock()
	exclude := append(append(returners(inc), inc.Lapsed...), inc.Assignment.WorkerID)
	dec, _ := d.choose(inc, exclude)
	lapsed := inc.Assignment.WorkerName
	if lapsed == "" {
		lapsed = inc.Assignment.WorkerID
	}
	level := inc.Escalation
	switch {
	case dec != nil && dec.Assignment.WorkerID != "":
	case level != event.LevelStreet && level != event.LevelDistrict:
		dec = d.toStreetSupervisor(inc)
	default:
		dec = nil
	}
	if dec != nil {
		dec.Reason = fmt.Sprintf("not signed for in time by %s: %s", lapsed, cmpReason(dec.Reason, "to the street supervisor"))
		// Count the load at once, as hold does; a redelivered timeout finds it moved already.
		if t := d.incidents[inc.ID]; t.worker != dec.Assignment.WorkerID {
			d.move(t.worker, dec.Assignment.WorkerID)
			t.worker = dec.Assignment.WorkerID
			d.incidents[inc.ID] = t
		}
	}
	d.mu.Unlock()

	id := fmt.Sprintf("reassign:%s@%d", inc.ID, inc.Version)
	if dec == nil {
		cmd := event.Command{ID: id, IncidentID: inc.ID, Action: event.ActionEscalate, Actor: event.SystemActor,
			Level: event.LevelDistrict, Reason: "not signed for in time by the street: escalated to the district", At: d.cfg.Now().UTC()}
		if level == event.LevelDistrict {
			return nil // nowhere further to go; the cockpit shows it overdue
		}
		d.stats.escalated.Add(1)
		return outputs(inc, cmd, nil)
	}
	a := dec.Assignment
	cmd := event.Command{ID: id, IncidentID: inc.ID, Action: event.ActionReassign, Actor: event.SystemActor,
		Reason: dec.Reason, Assignment: &a, Level: dec.Level, At: dec.At}
	d.stats.reassigned.Add(1)
	return outputs(inc, cmd, dec)
}

func cmpReason(r, fallback string) string {
	if r == "" {
		return fallback
	}
	return r
}
