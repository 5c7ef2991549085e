package sqlite_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage/sqlite"
)

func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2025, 6, 3, 2, 0, 0, 0, time.UTC)
	recs := []event.AuditRecord{
		{ID: "c-1", Kind: event.AuditCommand, CommandID: "c-1", IncidentID: "INC-1", Action: "verify",
			Actor: event.Actor{Subject: "S-1", Role: "supervisor"}, Code: "forbidden", Error: "may not verify",
			From: event.StatusResolved, To: event.StatusResolved, At: at},
		{ID: "c-2", Kind: event.AuditCommand, CommandID: "c-2", IncidentID: "INC-1", Action: "verify",
			Actor: event.Actor{Subject: "op-1", Role: "operator"}, OK: true, From: event.StatusResolved,
			To: event.StatusVerified, Version: 7, At: at.Add(time.Minute)},
		{ID: "notify:x:water:1", Kind: event.AuditNotify, IncidentID: "INC-2", Action: "notify", Actor: event.SystemActor,
			Code: "500", Attempt: 1, Target: "water", At: at},
	}
	if err := s.HandleAudits(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// A replay (with a changed record under the same id) adds and changes nothing.
	again := recs[0]
	again.Error = "rewritten"
	if err := s.HandleAudit(ctx, again); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(ctx, "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs[:2]) {
		t.Errorf("audit of INC-1\n got %+v\nwant %+v", got, recs[:2])
	}
	if err := sqlite.ReadExec(ctx, s, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}
