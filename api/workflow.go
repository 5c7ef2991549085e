package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// The work-order loop's worker and operator endpoints (docs/workflow.md): my tasks, merge,
// split, timeline. Every change still goes through city.commands to the owner of the
// incident's partition; these endpoints only shape the command.

// workflowRoutes are the HTTP routes of this file; Routes adds them with the API component.
func (s *Server) workflowRoutes() []Route {
	need := s.need
	return []Route{
		{"GET /api/v1/me/tasks", need(auth.PermCommand, s.myTasks)},
		{"GET /api/v1/incidents/{id}/timeline", need(auth.PermReadIncidents, s.timeline)},
		{"POST /api/v1/incidents/{id}/merge", need(auth.PermCommand, s.mergeIncidents)},
		{"POST /api/v1/incidents/{id}/split", need(auth.PermCommand, s.splitIncident)},
	}
}

// myTasks answers GET /api/v1/me/tasks: the open incidents assigned to the caller, most urgent
// first (the SLA clock's due time; incidents without a running clock last).
func (s *Server) myTasks(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	list, err := s.store.ListIncidents(r.Context(), storage.IncidentFilter{AssigneeWorker: claims.Subject, OpenOnly: true,
		Limit: storage.MaxLimit})
	if err != nil {
		s.internalError(w, "list tasks", err)
		return
	}
	due := func(inc event.Incident) time.Time {
		if inc.Clock == nil || !inc.Clock.PausedAt.IsZero() {
			return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		return inc.Clock.DueAt
	}
	slices.SortStableFunc(list, func(x, y event.Incident) int { return cmp.Or(due(x).Compare(due(y)), cmp.Compare(x.ID, y.ID)) })
	out := make([]event.Incident, 0, len(list))
	for _, inc := range list {
		out = append(out, auth.MaskIncident(inc, claims))
	}
	if seesPersonalData(claims) && !s.auditReads(w, r, claims, incidentReads(out)) {
		return
	}
	writeJSON(w, http.StatusOK, TaskList{Tasks: out, Count: len(out)})
}

// TimelineItem is one line of an incident's timeline: a change from the changelog, or a
// record of the audit log that is not a change (a refused command, an agency notification).
type TimelineItem struct {
	At      time.Time    `json:"at"`
	Kind    string       `json:"kind"` // change, refused, notify
	Version int64        `json:"version,omitempty"`
	Action  string       `json:"action"`
	Actor   event.Actor  `json:"actor"`
	From    event.Status `json:"from,omitempty"`
	To      event.Status `json:"to,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	Note    string       `json:"note,omitempty"`
	Level   string       `json:"level,omitempty"`
	Stage   string       `json:"stage,omitempty"`
	Related string       `json:"related,omitempty"`
	// Location is where the actor was: a worker's phone on progress and resolution.
	Location *event.Point `json:"location,omitempty"`
	Code     string       `json:"code,omitempty"`
	Error    string       `json:"error,omitempty"`
	Attempt  int          `json:"attempt,omitempty"`
	Target   string       `json:"target,omitempty"`
}

// timeline answers GET /api/v1/incidents/{id}/timeline: every change, every refused command
// and every agency notification attempt, oldest first.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	d, err := s.store.GetIncident(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !claims.CanSeeIncident(d.Incident)) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+id)
		return
	}
	if err != nil {
		s.internalError(w, "get incident", err)
		return
	}
	items := make([]TimelineItem, 0, len(d.Timeline))
	var fields []string // the personal data shown unmasked, for the read audit
	for _, te := range d.Timeline {
		for _, f := range changeFields(te.Change) {
			if !slices.Contains(fields, f) {
				fields = append(fields, f)
			}
		}
		e := auth.MaskChange(te.Change, claims)
		items = append(items, TimelineItem{At: e.At, Kind: "change", Version: te.Version, Action: e.Action, Actor: e.Actor,
			From: e.From, To: e.To, Reason: e.Reason, Note: e.Note, Level: e.Level, Stage: e.Stage, Related: e.Related,
			Location: e.Location})
	}
	if as, ok := s.store.(auditLog); ok {
		recs, err := as.ListAudit(r.Context(), id)
		if err != nil {
			s.internalError(w, "list audit", err)
			return
		}
		for _, rec := range recs {
			kind := "refused"
			switch {
			case rec.Kind == event.AuditRead:
				continue // who read it is for auditors, not the timeline
			case rec.Kind == event.AuditNotify:
				kind = "notify"
			case rec.OK:
				continue // the changelog has it
			}
			if m := auth.MaskAudit(rec, auth.Claims{}); (m.Reason != rec.Reason || m.Error != rec.Error) && !slices.Contains(fields, "audit") {
				fields = append(fields, "audit")
			}
			rec = auth.MaskAudit(rec, claims)
			items = append(items, TimelineItem{At: rec.At, Kind: kind, Action: rec.Action, Actor: rec.Actor, From: rec.From,
				To: rec.To, Reason: rec.Reason, Code: rec.Code, Error: rec.Error, Attempt: rec.Attempt, Target: rec.Target})
		}
	}
	if seesPersonalData(claims) && len(fields) > 0 {
		for i, f := range fields {
			fields[i] = "timeline." + f
		}
		if !s.auditReads(w, r, claims, []personalRead{{incident: id, key: d.Incident.Area.Key(), fields: fields}}) {
			return
		}
	}
	slices.SortStableFunc(items, func(x, y TimelineItem) int { return x.At.Compare(y.At) })
	writeJSON(w, http.StatusOK, Timeline{IncidentID: id, Timeline: items})
}

// mergeRequest is the body of POST /api/v1/incidents/{id}/merge.
type mergeRequest struct {
	ID     string `json:"id,omitempty"`
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// splitRequest is the body of POST /api/v1/incidents/{id}/split.
type splitRequest struct {
	ID      string `json:"id,omitempty"`
	EventID string `json:"event_id"`
	Reason  string `json:"reason"`
}

// mergeIncidents (并单) is the merge action of POST /api/v1/incidents/{id}/actions.
func (s *Server) mergeIncidents(w http.ResponseWriter, r *http.Request) {
	var req mergeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.asAction(w, r, actionRequest{ID: req.ID, Action: event.ActionMerge, Reason: req.Reason, Source: req.Source})
}

// splitIncident (拆单) is the split action of POST /api/v1/incidents/{id}/actions.
func (s *Server) splitIncident(w http.ResponseWriter, r *http.Request) {
	var req splitRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.asAction(w, r, actionRequest{ID: req.ID, Action: event.ActionSplit, Reason: req.Reason, EventID: req.EventID})
}

// asAction hands req to postAction, so a shaped endpoint is checked, sent and answered exactly
// as the generic one.
func (s *Server) asAction(w http.ResponseWriter, r *http.Request, req actionRequest) {
	b, err := json.Marshal(req)
	if err != nil {
		s.internalError(w, "encode action", err)
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = readCloser{bytes.NewReader(b)}
	r2.ContentLength = int64(len(b))
	s.postAction(w, r2)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// workflowCommand copies the loop's fields of an action request into its command.
func (req actionRequest) workflowCommand(cmd *event.Command) {
	cmd.Evidence, cmd.ExtendBy, cmd.Level, cmd.Result, cmd.Source, cmd.EventID =
		req.Evidence, req.ExtendBy, req.Level, req.Result, req.Source, req.EventID
}
