package app

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/webhook"
)

// The work-order loop's wiring (docs/workflow.md): the correlation and SLA policy, the SLA
// clock, agency webhooks, the audit log's projection, and the worker and operator endpoints
// (my tasks, merge, split, timeline). Every change still goes through city.commands to the
// owner of the incident's partition; these endpoints only shape the command.

func (c *Config) registerWorkflowFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.WorkflowPolicy, "workflow-policy", "", "YAML file with the correlation and SLA policy (default: the built-in policy, docs/workflow.md)")
	fs.DurationVar(&c.SLATick, "sla-tick", time.Second, "how often SLA clocks are checked")
	fs.DurationVar(&c.CommandMaxAge, "command-max-age", 24*time.Hour, "commands older than this are dead-lettered as replays, not applied (0: no limit; docs/security.md)")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", false, "let agency webhooks reach private and loopback addresses (agencies on an inner network)")
}

func (c *Config) validateWorkflow() []error {
	var errs []error
	if c.SLATick <= 0 || c.SLATick > time.Minute {
		errs = append(errs, fmt.Errorf("--sla-tick %s: want 1ns..1m", c.SLATick))
	}
	return errs
}

// loadPolicy is the --workflow-policy file, or the built-in policy.
func loadPolicy(cfg Config) (incidents.Policy, error) {
	if cfg.WorkflowPolicy == "" {
		return incidents.DefaultPolicy(), nil
	}
	b, err := os.ReadFile(cfg.WorkflowPolicy)
	if err != nil {
		return incidents.Policy{}, fmt.Errorf("--workflow-policy: %w", err)
	}
	return incidents.ParsePolicy(b)
}

// webhookSecretsFile holds each agency's webhook secret (agency code → secret), created with
// a random secret for every agency of the city that has a webhook and none yet. The agency
// gets its secret from the operator, out of band.
const webhookSecretsFile = "webhook-secrets.yaml"

// newNotifier builds the agency notifier from the city's 权责清单 (agencies with a webhook URL).
func (a *App) newNotifier() (*webhook.Notifier, error) {
	path := filepath.Join(a.cfg.DataDir, webhookSecretsFile)
	secrets := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		if err := yaml.Unmarshal(b, &secrets); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	targets := map[string]webhook.Target{}
	added := false
	for _, ag := range a.city.Agencies() {
		if ag.Webhook == "" {
			continue
		}
		if secrets[ag.Code] == "" {
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, err
			}
			secrets[ag.Code], added = hex.EncodeToString(b[:]), true
		}
		targets[ag.Code] = webhook.Target{URL: ag.Webhook, Secret: secrets[ag.Code]}
	}
	if added {
		b, err := yaml.Marshal(secrets)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return webhook.New(webhook.Config{Targets: targets, AllowPrivate: a.cfg.WebhookAllowPrivate,
		AllowLoopback: a.cfg.WebhookAllowPrivate}, outputSink{a}, a.log.Named("webhook"))
}

// runWorkflow runs the SLA clock (with the incidents component) and the agency notifier (with
// dispatch) until ctx ends.
func (a *App) runWorkflow(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if a.cfg.Runs(CompIncidents) {
		g.Go(func() error { return a.incidents.RunClock(gctx, a.cfg.SLATick, a.emit) })
	}
	if a.cfg.Runs(CompDispatch) {
		g.Go(func() error { return a.webhook.Run(gctx) })
	}
	return g.Wait()
}

// auditStore is a backend that keeps the audit log (storage/sqlite does); with one that does
// not, the audit topic is still written, and timelines show the changelog only.
type auditStore interface {
	HandleAudits(ctx context.Context, recs []event.AuditRecord) error
	ListAudit(ctx context.Context, incidentID string) ([]event.AuditRecord, error)
}

// auditSinks projects city.audit into the store, when the backend keeps an audit log.
func (a *App) auditSinks() []storageSink {
	as, ok := a.store.(auditStore)
	if !ok || !a.cfg.Runs(CompStorage) {
		return nil
	}
	return []storageSink{{name: "storage.audit", topic: event.TopicAudit, write: batchOf([]string{event.TypeAudit}, as.HandleAudits)}}
}

// workflowRoutes are the HTTP routes of this file; httpRoutes adds them with the API component.
func (a *App) workflowRoutes() []httpRoute {
	need := a.need
	return []httpRoute{
		{"GET /api/v1/me/tasks", need(auth.PermCommand, a.myTasks)},
		{"GET /api/v1/incidents/{id}/timeline", need(auth.PermReadIncidents, a.timeline)},
		{"POST /api/v1/incidents/{id}/merge", need(auth.PermCommand, a.mergeIncidents)},
		{"POST /api/v1/incidents/{id}/split", need(auth.PermCommand, a.splitIncident)},
	}
}

// myTasks answers GET /api/v1/me/tasks: the open incidents assigned to the caller, most urgent
// first (the SLA clock's due time; incidents without a running clock last).
func (a *App) myTasks(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	list, err := a.store.ListIncidents(r.Context(), storage.IncidentFilter{AssigneeWorker: claims.Subject, OpenOnly: true,
		Limit: storage.MaxLimit})
	if err != nil {
		a.internalError(w, "list tasks", err)
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
	if seesPersonalData(claims) && !a.auditReads(w, r, claims, incidentReads(out)) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": out, "count": len(out)})
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
	Code    string       `json:"code,omitempty"`
	Error   string       `json:"error,omitempty"`
	Attempt int          `json:"attempt,omitempty"`
	Target  string       `json:"target,omitempty"`
}

// timeline answers GET /api/v1/incidents/{id}/timeline: every change, every refused command
// and every agency notification attempt, oldest first.
func (a *App) timeline(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	d, err := a.store.GetIncident(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !claims.CanSeeIncident(d.Incident)) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no incident "+id)
		return
	}
	if err != nil {
		a.internalError(w, "get incident", err)
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
			From: e.From, To: e.To, Reason: e.Reason, Note: e.Note, Level: e.Level, Stage: e.Stage, Related: e.Related})
	}
	if as, ok := a.store.(auditStore); ok {
		recs, err := as.ListAudit(r.Context(), id)
		if err != nil {
			a.internalError(w, "list audit", err)
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
		if !a.auditReads(w, r, claims, []personalRead{{incident: id, key: d.Incident.Area.Key(), fields: fields}}) {
			return
		}
	}
	slices.SortStableFunc(items, func(x, y TimelineItem) int { return x.At.Compare(y.At) })
	writeJSON(w, http.StatusOK, map[string]any{"incident_id": id, "timeline": items})
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
func (a *App) mergeIncidents(w http.ResponseWriter, r *http.Request) {
	var req mergeRequest
	if !decodeBody(w, r, &req) {
		return
	}
	a.asAction(w, r, actionRequest{ID: req.ID, Action: event.ActionMerge, Reason: req.Reason, Source: req.Source})
}

// splitIncident (拆单) is the split action of POST /api/v1/incidents/{id}/actions.
func (a *App) splitIncident(w http.ResponseWriter, r *http.Request) {
	var req splitRequest
	if !decodeBody(w, r, &req) {
		return
	}
	a.asAction(w, r, actionRequest{ID: req.ID, Action: event.ActionSplit, Reason: req.Reason, EventID: req.EventID})
}

// asAction hands req to postAction, so a shaped endpoint is checked, sent and answered exactly
// as the generic one.
func (a *App) asAction(w http.ResponseWriter, r *http.Request, req actionRequest) {
	b, err := json.Marshal(req)
	if err != nil {
		a.internalError(w, "encode action", err)
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = readCloser{bytes.NewReader(b)}
	r2.ContentLength = int64(len(b))
	a.postAction(w, r2)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommandBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
		return false
	}
	return true
}

// workflowCommand copies the loop's fields of an action request into its command.
func (req actionRequest) workflowCommand(cmd *event.Command) {
	cmd.Evidence, cmd.ExtendBy, cmd.Level, cmd.Result, cmd.Source, cmd.EventID =
		req.Evidence, req.ExtendBy, req.Level, req.Result, req.Source, req.EventID
}
