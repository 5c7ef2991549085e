package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// Error codes of the HTTP API (docs/api.md lists them). Every error body is
// {"code": "...", "error": "..."}.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeNotFound          = "not_found"
	CodeForbidden         = "forbidden"
	CodeIllegalTransition = "illegal_transition"
	CodeInvalidCommand    = "invalid_command"
	CodeTimeout           = "timeout"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
)

const maxCommandBody = 64 << 10

// httpRoute is one line of the HTTP routing table; docs/api.md must list every pattern.
type httpRoute struct {
	pattern string
	handler http.Handler
}

// guarded is a route's handler with what it requires, declared where the route is: every route
// of httpRoutes is one (the permission table test, permissions_test.go, reads them).
type guarded struct {
	http.Handler
	perm auth.Permission // "" for a public route
	self bool            // the handler checks the token itself (a websocket, before upgrading)
}

// need is a route that answers only a valid token whose role holds p.
func (a *App) need(p auth.Permission, h http.HandlerFunc) http.Handler {
	return guarded{Handler: auth.Middleware(a.issuer, p)(h), perm: p}
}

// public is a route anyone may call: probes and the pages, which carry no data.
func public(h http.Handler) http.Handler { return guarded{Handler: h} }

// selfGuarded is a route whose handler checks a token holding p itself.
func selfGuarded(p auth.Permission, h http.Handler) http.Handler {
	return guarded{Handler: h, perm: p, self: true}
}

// httpRoutes is every HTTP route of the enabled components.
func (a *App) httpRoutes() []httpRoute {
	need := a.need
	metrics := promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry})
	rs := []httpRoute{
		{"GET /livez", public(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}))},
		{"GET /readyz", public(http.HandlerFunc(a.readyz))},
		{"GET /metrics", public(metrics)},
	}
	if a.cfg.MetricsTokenRequired {
		rs[2].handler = need(auth.PermReadIncidents, metrics.ServeHTTP)
	}
	if a.cfg.Runs(CompIngest) {
		rs = append(rs, httpRoute{"POST /api/v1/events", need(auth.PermIngest, a.ingest.ServeHTTP)})
	}
	if a.cfg.Runs(CompAPI) {
		rs = append(rs,
			httpRoute{"GET /api/v1/incidents", need(auth.PermReadIncidents, a.searchIncidents)},
			httpRoute{"GET /api/v1/incidents/{id}", need(auth.PermReadIncidents, a.getIncident)},
			httpRoute{"POST /api/v1/incidents/{id}/actions", need(auth.PermCommand, a.postAction)},
		)
		rs = append(rs, a.queryRoutes()...)    // search, event history, KPIs (queries.go)
		rs = append(rs, a.workflowRoutes()...) // my tasks, timeline, merge, split (workflow.go)
		rs = append(rs, a.photoRoutes()...)    // evidence photos (photos.go)
		rs = append(rs, a.ruleRoutes()...)     // rule authoring, dry run, backtest (rules.go)
		rs = append(rs, a.accountRoutes()...)  // sign-in and local accounts (accounts.go)
		rs = append(rs, pageRoutes()...)       // the people's screens (web, cockpit.go)
	}
	if a.cfg.Runs(CompCockpit) {
		rs = append(rs, a.cockpitRoutes()...) // websockets and the wall-screen page (cockpit.go)
	}
	return rs
}

func (a *App) httpHandler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range a.httpRoutes() {
		mux.Handle(r.pattern, r.handler)
	}
	return mux
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"broker": "ok", "store": "ok", "router": "ok"}
	ok := true
	if err := a.pingBroker(ctx); err != nil {
		checks["broker"], ok = err.Error(), false
	}
	if a.store == nil {
		checks["store"], ok = "not open", false
	} else if err := a.store.Ping(ctx); err != nil {
		checks["store"], ok = err.Error(), false
	}
	if !a.ready.Load() {
		checks["router"], ok = "not running", false
	}
	// Every stage has joined its group and loaded what it owns: a member that still waits for
	// its first assignment (a rebalance after a restart) is not ready to answer for the city.
	owned := map[string]any{}
	if names := a.stages.Load(); names != nil {
		for st, name := range *names {
			parts, joined := st.Loaded()
			if !joined {
				checks["router"], ok = "stage "+name+" has not joined its group yet", false
			}
			owned[name] = map[string]any{"partitions": parts, "lag": st.Stats().Lag}
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks, "stages": owned})
}

func (a *App) pingBroker(ctx context.Context) error {
	if len(a.brokers) == 0 {
		return errors.New("no broker")
	}
	var d net.Dialer
	var lastErr error
	for _, b := range a.brokers {
		c, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = c.Close()
			return nil
		}
		lastErr = err
	}
	return lastErr
}

// getIncident answers GET /api/v1/incidents/{id} with the timeline and linked events. An
// incident outside the caller's scope is reported as not found, so ids cannot be probed.
func (a *App) getIncident(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	d, err := a.store.GetIncident(r.Context(), r.PathValue("id"))
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !claims.CanSeeIncident(d.Incident)) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+r.PathValue("id"))
		return
	}
	if err != nil {
		a.internalError(w, "get incident", err)
		return
	}
	if seesPersonalData(claims) && !a.auditReads(w, r, claims, []personalRead{detailRead(d)}) {
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
func (a *App) incidentInScope(w http.ResponseWriter, r *http.Request, claims auth.Claims, id string) (storage.IncidentDetail, bool) {
	d, err := a.store.GetIncident(r.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound) || err == nil && !claims.CanSeeIncident(d.Incident):
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+id)
		return d, false
	case err != nil:
		a.log.Error("scope check of a request on an incident", zap.String("incident", id), zap.Error(err))
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
func (a *App) postAction(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	street := event.IncidentStreet(id)
	if street == "" {
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+id)
		return
	}
	var req actionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommandBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
		return
	}
	if req.Action == "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "action is required")
		return
	}
	// Object-level scope, before anything is sent or answered (the owner checks scope again,
	// with the state it holds).
	if _, ok := a.incidentInScope(w, r, claims, id); !ok {
		return
	}
	cmd := event.Command{
		ID: clientCommandID(claims.Subject, req.ID), IncidentID: id, Action: req.Action, Reason: req.Reason, Note: req.Note,
		Assignment: req.Assignment, At: time.Now().UTC(),
		Actor: event.Actor{Subject: claims.Subject, Role: claims.Role, District: claims.District, Grids: claims.Grids},
	}
	req.workflowCommand(&cmd)
	b, err := event.Encode(event.TypeCommand, cmd.ID, cmd.At, cmd)
	if err != nil {
		a.internalError(w, "encode command", err)
		return
	}
	wait := a.results.expect(cmd.ID)
	defer a.results.forget(cmd.ID)
	if err := a.Publish(r.Context(), event.TopicCommands, street, b); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "command not sent: "+err.Error())
		return
	}
	a.log.Info("command sent", zap.String("command", cmd.ID), zap.String("incident", id), zap.String("action", cmd.Action),
		zap.String("actor", claims.Subject), zap.String("role", claims.Role))
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.CommandTimeout)
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
			ans.Stored = a.awaitStored(ctx, res.Incident.ID, res.Incident.Version)
			if !ans.Stored {
				a.log.Warn("command answered before the store had its outcome", zap.String("command", cmd.ID),
					zap.String("incident", id), zap.Int64("version", res.Incident.Version), zap.Duration("timeout", a.cfg.CommandTimeout))
			}
			masked := auth.MaskIncident(*res.Incident, claims)
			ans.Incident = &masked
		}
		writeJSON(w, http.StatusOK, ans)
	case <-ctx.Done():
		writeJSON(w, http.StatusAccepted, map[string]string{"code": CodeTimeout, "command_id": cmd.ID,
			"error": "command accepted but its outcome did not arrive within " + a.cfg.CommandTimeout.String()})
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

func statusForCode(code string) int {
	switch code {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeForbidden:
		return http.StatusForbidden
	case CodeIllegalTransition:
		return http.StatusConflict
	case CodeInvalidCommand:
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

func (a *App) internalError(w http.ResponseWriter, what string, err error) {
	a.log.Error(what, zap.Error(err))
	writeError(w, http.StatusInternalServerError, CodeInternal, what+" failed")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "error": msg})
}

func intParam(s string, def, lo, hi int) (int, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d..%d", n, lo, hi)
	}
	return n, nil
}
