package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

const maxCommandBody = 64 << 10

// getIncident answers GET /api/v1/incidents/{id} with the timeline and linked events. An
// incident outside the caller's scope is reported as not found, so ids cannot be probed.
func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	d, err := s.store.GetIncident(r.Context(), r.PathValue("id"))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !claims.CanSeeIncident(d.Incident)) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+r.PathValue("id"))
		return
	}
	if err != nil {
		s.internalError(w, "get incident", err)
		return
	}
	if seesPersonalData(claims) && !s.auditReads(w, r, claims, []personalRead{detailRead(d)}) {
		return
	}
	// Every string of the answer goes through the one masking policy (auth): the incident,
	// the notes and reasons of its timeline, its linked events and its dispatch reasons.
	d.Incident = auth.MaskIncident(d.Incident, claims)
	for i := range d.Timeline {
		d.Timeline[i].Change = auth.MaskChange(d.Timeline[i].Change, claims)
	}
	for i := range d.Events {
		d.Events[i] = auth.MaskEvent(d.Events[i], claims)
	}
	for i := range d.Dispatches {
		d.Dispatches[i] = auth.MaskDispatch(d.Dispatches[i], claims)
	}
	writeJSON(w, http.StatusOK, d)
}

// incidentInScope is the object-level scope check of a request on incident id: the caller
// must be able to see it to act on it or on what hangs from it (its photos). An incident out of
// scope is answered as not found, so ids cannot be probed, and one the store cannot show now is
// refused, never waved through. It answers the refusal itself.
func (s *Server) incidentInScope(w http.ResponseWriter, r *http.Request, claims auth.Claims, id string) (storage.IncidentDetail, bool) {
	d, err := s.store.GetIncident(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound) || err == nil && !claims.CanSeeIncident(d.Incident):
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+id)
		return d, false
	case err != nil:
		s.log.Error("scope check of a request on an incident", zap.String("incident", id), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "cannot check the incident's scope now; try again")
		return d, false
	}
	return d, true
}

// actionRequest is the body of POST /api/v1/incidents/{id}/actions.
type actionRequest struct {
	ID         string            `json:"id,omitempty"` // optional idempotency key
	Action     string            `json:"action"`
	Reason     string            `json:"reason,omitempty"`
	Note       string            `json:"note,omitempty"`
	Assignment *event.Assignment `json:"assignment,omitempty"`
	// The work-order loop's fields (workflow.go, docs/api.md).
	Evidence *event.Evidence `json:"evidence,omitempty"`
	ExtendBy string          `json:"extend_by,omitempty"`
	Level    string          `json:"level,omitempty"`
	Result   string          `json:"result,omitempty"`
	Source   string          `json:"source,omitempty"`
	EventID  string          `json:"event_id,omitempty"`
}

// postAction sends a command through city.commands to the owner of the incident's partition
// and answers with the outcome that owner publishes on city.command-results.
func (s *Server) postAction(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	street := event.IncidentStreet(id)
	if street == "" {
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+id)
		return
	}
	var req actionRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Action == "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "action is required")
		return
	}
	// Object-level scope, before anything is sent or answered (the owner checks scope again,
	// with the state it holds).
	if _, ok := s.incidentInScope(w, r, claims, id); !ok {
		return
	}
	cmd := event.Command{
		ID: clientCommandID(claims.Subject, req.ID), IncidentID: id, Action: req.Action, Reason: req.Reason, Note: req.Note,
		Assignment: req.Assignment, At: time.Now().UTC(),
		Actor: event.Actor{Subject: claims.Subject, Role: claims.Role, District: claims.District, Grids: claims.Grids},
	}
	req.workflowCommand(&cmd)
	wait, done := s.outcomes.Expect(cmd.ID)
	defer done()
	if err := s.emit(r.Context(), event.Outputs{{Key: street, ID: cmd.ID, Time: cmd.At, Data: cmd}}); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "command not sent: "+err.Error())
		return
	}
	s.log.Info("command sent", zap.String("command", cmd.ID), zap.String("incident", id), zap.String("action", cmd.Action),
		zap.String("actor", claims.Subject), zap.String("role", claims.Role))
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CommandTimeout)
	defer cancel()
	select {
	case res := <-wait:
		if !res.OK {
			writeError(w, statusForCode(res.Code), res.Code, res.Error)
			return
		}
		// Read-your-writes: the caller's next GET reads the store, so answer once the store
		// holds what this answer shows, within what is left of the command timeout; if it does
		// not get there in time, the answer says so ("stored": false) and is still 200.
		ans := actionAnswer{CommandResult: res, Stored: true}
		if res.Incident != nil {
			ans.Stored = s.outcomes.AwaitStored(ctx, res.Incident.ID, res.Incident.Version)
			if !ans.Stored {
				s.log.Warn("command answered before the store had its outcome", zap.String("command", cmd.ID),
					zap.String("incident", id), zap.Int64("version", res.Incident.Version), zap.Duration("timeout", s.cfg.CommandTimeout))
			}
			masked := auth.MaskIncident(*res.Incident, claims)
			ans.Incident = &masked
		}
		writeJSON(w, http.StatusOK, ans)
	case <-ctx.Done():
		writeJSON(w, http.StatusAccepted, CommandPending{Code: CodeTimeout, CommandID: cmd.ID,
			Error: "command accepted but its outcome did not arrive within " + s.cfg.CommandTimeout.String()})
	}
}

// actionAnswer is a successful command's answer: its outcome, and whether the store (what GET
// reads) held the incident at the answer's version when it was given.
type actionAnswer struct {
	event.CommandResult
	Stored bool `json:"stored"`
}

// clientCommandID is the id of a command sent over HTTP: the caller's idempotency key (a new
// one when they chose none) in the caller's own namespace. Two callers choosing the same key
// are two commands, and no caller can choose the id of a system command ("dispatch:…",
// "reassign:…", "sla:…"), which would otherwise answer for it or suppress it.
func clientCommandID(subject, key string) string {
	if key == "" {
		key = uuid.NewString()
	}
	return "http:" + subject + ":" + key
}
