package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// testAuditLog: audit records are kept once each, whatever the replays, listed oldest first,
// and retention never removes them, not even with their incident.
func testAuditLog(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	ctx := t.Context()
	var recs []event.AuditRecord
	for i := range 5 {
		recs = append(recs, event.AuditRecord{
			ID: fmt.Sprintf("aud-%d", i), Kind: event.AuditCommand, CommandID: fmt.Sprintf("cmd-%d", i),
			IncidentID: "INC-s1-ka", Action: event.ActionAccept, Actor: event.Actor{Subject: "w1", Role: "worker"},
			OK: i != 2, Code: map[bool]string{true: "", false: "illegal_transition"}[i != 2],
			From: event.StatusDispatched, To: event.StatusAccepted, At: at(time.Duration(4-i) * time.Minute).UTC(),
		})
	}
	other := recs[0]
	other.ID, other.IncidentID = "aud-other", "INC-s1-kb"
	must(t, s.HandleAudits(ctx, append(recs, other)))
	must(t, s.HandleAudits(ctx, recs[1:3]))                              // replayed
	must(t, s.HandleAudits(ctx, []event.AuditRecord{{Kind: "command"}})) // no id: skipped

	got, err := s.ListAudit(ctx, "INC-s1-ka")
	must(t, err)
	want := []event.AuditRecord{recs[4], recs[3], recs[2], recs[1], recs[0]} // oldest first
	mustEqual(t, "audit log", got, want)

	kpiWorld(t, s) // INC-s1-ka is closed at +6m
	_, err = s.Retain(ctx, storage.Cutoffs{Events: at(time.Hour), Incidents: at(10 * time.Hour)})
	must(t, err)
	_, err = s.GetIncident(ctx, "INC-s1-ka")
	isNotFound(t, "the incident retention removed", err)
	got, err = s.ListAudit(ctx, "INC-s1-ka")
	must(t, err)
	mustEqual(t, "audit log after retention", got, want)
	// A read of personal data (issue 11 item 6) keeps who read which fields, and outlives any
	// retention (等保: at least 180 days; the audit log is never removed at all).
	read := event.AuditRecord{ID: "read-1", Kind: event.AuditRead, IncidentID: "INC-s1-kr", Action: "GET /api/v1/incidents/{id}",
		Actor: event.Actor{Subject: "sup-1", Role: "supervisor"}, OK: true,
		Fields: []string{"reports.caller.name", "reports.caller.phone"}, At: at(0).UTC()}
	must(t, s.HandleAudits(ctx, []event.AuditRecord{read}))
	_, err = s.Retain(ctx, storage.Cutoffs{Events: at(400 * 24 * time.Hour), Incidents: at(400 * 24 * time.Hour)})
	must(t, err)
	got, err = s.ListAudit(ctx, "INC-s1-kr")
	must(t, err)
	mustEqual(t, "read audit after retention", got, []event.AuditRecord{read})
	empty, err := s.ListAudit(ctx, "INC-s1-none")
	must(t, err)
	if len(empty) != 0 {
		t.Errorf("audit of an unknown incident: %v", empty)
	}
}
