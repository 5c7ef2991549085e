package incidents_test

import (
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/incidents/incidentstest"
)

// msgTypes lists an incident's alert messages as "Type/severity".
func msgTypes(inc event.Incident) []string {
	var out []string
	for _, m := range inc.Alerts {
		out = append(out, m.MsgType+"/"+m.Severity)
	}
	return out
}

// 预警: an operator publishes a CAP alert; it follows the incident — an Update when a further
// report raises the severity, a Cancel when the incident is cancelled as a false alarm — and a
// second alert while one is live, or one by a worker, is refused.
func TestAlertFollowsTheIncident(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	s.At(0).Push(incidentstest.Call("T-A1", "0202", yellow, "路面积水", "13900000201", c.g.Centroid, c.area))
	id := s.Open().ID
	w := byID(s.Get(id).Assignment.WorkerID, c)

	s.At(time.Minute)
	s.WantRefused(cmd(id, event.ActionAlert, w), incidents.CodeForbidden)
	pub := cmd(id, event.ActionAlert, deskOp)
	pub.Note = "低洼路段积水，请绕行"
	inc := s.WantOK(pub)
	if got := msgTypes(inc); len(got) != 1 || got[0] != "Alert/yellow" || inc.Alerts[0].By != deskOp.Subject || inc.Alerts[0].Note != pub.Note {
		t.Fatalf("alerts %v (%+v), want the operator's Alert at yellow", got, inc.Alerts)
	}
	s.WantRefused(cmd(id, event.ActionAlert, chief), incidents.CodeInvalidCommand) // one is live

	s.At(2 * time.Minute).Push(incidentstest.Call("T-A2", "0202", red, "积水已没过车轮", "13900000202", c.g.Centroid, c.area))
	if got := msgTypes(s.Get(id)); len(got) != 2 || got[1] != "Update/red" {
		t.Fatalf("after a red report: %v, want an Update at red", got)
	}
	s.At(3 * time.Minute)
	s.WantOK(withReason(cmd(id, event.ActionCancel, deskOp), "核实为误报"))
	got := s.Get(id)
	if m := msgTypes(got); len(m) != 3 || m[2] != "Cancel/red" || got.Alerts[2].By != "system" {
		t.Fatalf("after 误报: %v, want a Cancel by the system", m)
	}
	for i := 1; i < len(got.Alerts); i++ {
		if !got.Alerts[i].Sent.After(got.Alerts[i-1].Sent) {
			t.Errorf("message %d sent %v, not after %v", i, got.Alerts[i].Sent, got.Alerts[i-1].Sent)
		}
	}
}

// A rule whose raise says alert publishes one for the incident its signal opens, once.
func TestRuleAlertPublishesOnce(t *testing.T) {
	t.Parallel()
	c := busyGrid(t)
	s := newScenario(t, c)
	sig := incidentstest.Sensor("R-A1", "WL-A", "0104", orange, c.g.Centroid, c.area)
	sig.Alert = true
	s.At(0).Push(sig)
	id := s.Open().ID
	inc := s.Get(id)
	if m := msgTypes(inc); len(m) != 1 || m[0] != "Alert/orange" || inc.Alerts[0].By != "rule:"+sig.RuleID {
		t.Fatalf("alerts %v (%+v), want the rule's Alert", m, inc.Alerts)
	}
	again := incidentstest.Sensor("R-A2", "WL-A", "0104", orange, c.g.Centroid, c.area)
	again.Alert = true
	s.At(time.Minute).Push(again)
	if m := msgTypes(s.Get(id)); len(m) != 1 {
		t.Errorf("a second alerting signal on the incident: %v, want still one message", m)
	}
}
