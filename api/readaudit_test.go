package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// oneIncident is a Store holding one incident with a 12345 caller on it.
type oneIncident struct {
	Store // the other queries are not called
	inc   event.Incident
}

func (s oneIncident) GetIncident(_ context.Context, id string) (storage.IncidentDetail, error) {
	if id != s.inc.ID {
		return storage.IncidentDetail{}, storage.ErrNotFound
	}
	return storage.IncidentDetail{Incident: s.inc}, nil
}

// outputs records what the server emits, or fails every write with err.
type outputs struct {
	got event.Outputs
	err error
}

func (o *outputs) Emit(_ context.Context, outs event.Outputs) error {
	if o.err != nil {
		return o.err
	}
	o.got = append(o.got, outs...)
	return nil
}

// A supervisor's unmasked read is answered only once its audit record is written; when the
// broker cannot take it, the answer is refused (503). A masked read is not audited.
func TestReadOfPersonalDataWaitsForItsAudit(t *testing.T) {
	issuer := auth.NewIssuer([]byte("0123456789abcdef0123456789abcdef"), "test")
	inc := event.Incident{ID: "INC-S1-1", Area: event.Area{District: "D1", Street: "S1"},
		Reports: []event.Report{{Caller: &event.Caller{Name: "王小明", Phone: "13812345678"}}}}
	out := &outputs{}
	s := New(Deps{Config: Config{API: true}, Log: zap.NewNop(), Registry: prometheus.NewRegistry(), Issuer: issuer,
		Store: oneIncident{inc: inc}, Outputs: out})
	h := s.Handler()
	get := func(role auth.Role) *httptest.ResponseRecorder {
		t.Helper()
		tok, err := issuer.Issue(auth.Claims{Subject: "u-" + string(role), Role: role}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/api/v1/incidents/"+inc.ID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	if rec := get(auth.RoleSupervisor); rec.Code != http.StatusOK || len(out.got) != 1 {
		t.Fatalf("supervisor: %d, %d audit records; want 200 and one", rec.Code, len(out.got))
	}
	if ar, ok := out.got[0].Data.(event.AuditRecord); !ok || ar.Kind != event.AuditRead || ar.IncidentID != inc.ID ||
		ar.Action != "GET /api/v1/incidents/{id}" || out.got[0].Key != "S1" {
		t.Errorf("audit record %+v", out.got[0])
	}
	if rec := get(auth.RoleOperator); rec.Code != http.StatusOK || len(out.got) != 1 {
		t.Errorf("operator (masked): %d, %d audit records; want 200 and still one", rec.Code, len(out.got))
	}
	out.err = errors.New("broker down")
	if rec := get(auth.RoleSupervisor); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("supervisor with the audit unwritable: %d, want 503", rec.Code)
	}
}
