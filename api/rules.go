package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/storage"
)

// The rule authoring API (docs/api.md, "Rules"): the catalog's rules and versions, saving a
// version (through city.rules, which every instance reads back), validation with positioned
// errors, dry runs and backtests.

// Error codes of the rule authoring API (docs/api.md lists them).
const (
	CodeInvalidRule     = "invalid_rule"     // 422: the rule does not validate; errors carry positions
	CodeRuleExists      = "rule_exists"      // 409: create with an id that is taken
	CodeVersionConflict = "version_conflict" // 409: base_version is not the newest version
)

const (
	maxRuleBody    = 256 << 10 // a rule's text is capped at 64 KiB; the rest is room for JSON
	maxDryRunBody  = 8 << 20   // sample events
	maxBacktest    = 200_000   // events one backtest replays
	maxBacktestAge = 31 * 24 * time.Hour
)

// ruleRoutes is the authoring API.
func (s *Server) ruleRoutes() []Route {
	need := func(h http.HandlerFunc) Guarded { return s.need(auth.PermRules, h) }
	return []Route{
		{"GET /api/v1/rules", need(s.listRules)},
		{"GET /api/v1/rules/fields", need(ruleFields)},
		{"POST /api/v1/rules", need(s.createRule)},
		{"POST /api/v1/rules/validate", need(s.validateRule)},
		{"POST /api/v1/rules/dry-run", need(s.dryRunRule)},
		{"POST /api/v1/rules/backtest", need(s.backtestRule)},
		{"GET /api/v1/rules/{id}", need(s.getRule)},
		{"PUT /api/v1/rules/{id}", need(s.updateRule)},
		{"DELETE /api/v1/rules/{id}", need(s.deleteRule)},
		{"POST /api/v1/rules/{id}/enable", need(s.enableRule)},
		{"POST /api/v1/rules/{id}/disable", need(s.disableRule)},
		{"GET /api/v1/rules/{id}/versions", need(s.ruleVersions)},
		{"GET /api/v1/rules/{id}/versions/{version}", need(s.ruleVersion)},
		{"GET /api/v1/rules/{id}/diff", need(s.ruleDiff)},
		{"GET /api/v1/rule-jobs/{id}", need(s.getRuleJob)},
		{"DELETE /api/v1/rule-jobs/{id}", need(s.cancelRuleJob)},
	}
}

// RuleView is a rule as the API shows it.
type RuleView struct {
	lang.Rule
	Kind      string            `json:"kind,omitempty"`
	Source    string            `json:"source"`
	Author    string            `json:"author"`
	Action    string            `json:"action"`
	UpdatedAt time.Time         `json:"updated_at"`
	Editable  bool              `json:"editable"`        // the caller's scope covers the rule's: they may change it
	Stats     *engine.RuleStats `json:"stats,omitempty"` // this instance's counters
}

func (s *Server) viewRule(c auth.Claims, v authoring.RuleVersion, r lang.Rule, stats map[string]engine.RuleStats) RuleView {
	out := RuleView{Rule: r, Kind: r.Kind(), Source: v.Source, Author: v.Author, Action: v.Action, UpdatedAt: v.At,
		Editable: canWriteRule(c, r.District)}
	if st, ok := stats[r.ID]; ok {
		out.Stats = &st
	}
	return out
}

func (s *Server) statsByRule() map[string]engine.RuleStats {
	out := map[string]engine.RuleStats{}
	for _, st := range s.ruleStats.Stats() {
		out[st.RuleID] = st
	}
	return out
}

// listRules answers GET /api/v1/rules: the rules the caller may read (see rules_scope.go).
func (s *Server) listRules(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	stats := s.statsByRule()
	list := []RuleView{}
	for _, rule := range s.catalog.Current() {
		if !canReadRule(claims, rule.District) {
			continue
		}
		v, _, _ := s.catalog.Get(rule.ID)
		list = append(list, s.viewRule(claims, v, rule, stats))
	}
	broken := map[string]string{}
	for k, err := range s.catalog.VersionErrors() {
		id, _, _ := strings.Cut(k, "@")
		if d, ok := s.ruleDistrict(id); ok && !canReadRule(claims, d) {
			continue
		}
		broken[k] = err.Error()
	}
	writeJSON(w, http.StatusOK, RuleList{Rules: list, Count: len(list), VersionErrors: broken, Engine: s.ruleStats.EngineStats()})
}

// getRule answers GET /api/v1/rules/{id}.
func (s *Server) getRule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	claims, _ := auth.FromContext(r.Context())
	v, rule, ok := s.catalog.Get(id)
	if !ok || !canReadRule(claims, rule.District) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return
	}
	writeJSON(w, http.StatusOK, s.viewRule(claims, v, rule, s.statsByRule()))
}

// readRuleText reads a rule's text from the body: YAML or JSON, either is parsed as YAML.
func readRuleText(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRuleBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeInvalidRule, fmt.Sprintf("rule text is larger than %d bytes", maxRuleBody))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
		return nil, false
	}
	return b, true
}

// RuleError is one positioned problem with a rule, for an editor to mark.
type RuleError struct {
	Field     string `json:"field,omitempty"`
	EventType string `json:"event_type,omitempty"`
	Message   string `json:"message"`
	// Line and Column are in the field's own text (the expression); FileLine and FileColumn
	// in the text that was sent.
	Line       int    `json:"line,omitempty"`
	Column     int    `json:"column,omitempty"`
	FileLine   int    `json:"file_line,omitempty"`
	FileColumn int    `json:"file_column,omitempty"`
	Snippet    string `json:"snippet,omitempty"`
	Text       string `json:"text"` // the whole message as the CLI prints it
}

func ruleErrors(err error) []RuleError {
	var out []RuleError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ce *lang.CompileError
		var ve *lang.ValidationError
		switch {
		case errors.As(err, &ce):
			out = append(out, RuleError{Field: ce.Field, EventType: ce.EventType, Message: ce.Msg, Line: ce.Line, Column: ce.Column,
				FileLine: ce.Pos.Line, FileColumn: ce.Pos.Column, Snippet: ce.Snippet, Text: ce.Error()})
		case errors.As(err, &ve):
			out = append(out, RuleError{Field: ve.Field, Message: ve.Msg, FileLine: ve.Pos.Line, FileColumn: ve.Pos.Column, Text: ve.Error()})
		default:
			out = append(out, RuleError{Message: err.Error(), Text: err.Error()})
		}
	}
	walk(err)
	return out
}

// writeRuleError maps an authoring error to the catalogue of codes.
func (s *Server) writeRuleError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, authoring.ErrRuleNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, authoring.ErrRuleExists):
		writeError(w, http.StatusConflict, CodeRuleExists, err.Error())
	case errors.Is(err, authoring.ErrVersionConflict):
		writeError(w, http.StatusConflict, CodeVersionConflict, err.Error())
	default:
		writeJSON(w, http.StatusUnprocessableEntity, RuleInvalid{Code: CodeInvalidRule, Error: err.Error(), Errors: ruleErrors(err)})
	}
}

// validateRule answers POST /api/v1/rules/validate: the rule compiles, or every problem with
// its position.
func (s *Server) validateRule(w http.ResponseWriter, r *http.Request) {
	text, ok := readRuleText(w, r)
	if !ok {
		return
	}
	rs, err := lang.Parse("body", text)
	if err == nil && len(rs) != 1 {
		err = fmt.Errorf("%w; it holds %d", authoring.ErrNotOneRule, len(rs))
	}
	if err != nil {
		s.writeRuleError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, RuleCheck{Valid: true, Rule: rs[0], Kind: rs[0].Kind()})
}

// baseVersion reads ?base_version=N (0: not given).
func baseVersion(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := intParam(r.URL.Query().Get("base_version"), 0, 1, 1<<30)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "base_version: "+err.Error())
		return 0, false
	}
	return n, true
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	text, ok := readRuleText(w, r)
	if !ok || !s.writableText(w, r, text) {
		return
	}
	v, err := s.catalog.Create(text, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		s.writeRuleError(w, err)
		return
	}
	s.saveRuleVersion(w, r, v, http.StatusCreated)
}

func (s *Server) updateRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	base, ok := baseVersion(w, r)
	if !ok {
		return
	}
	text, ok := readRuleText(w, r)
	if !ok || !s.writableRule(w, r, r.PathValue("id")) || !s.writableText(w, r, text) {
		return
	}
	v, err := s.catalog.Update(r.PathValue("id"), text, base, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		s.writeRuleError(w, err)
		return
	}
	s.saveRuleVersion(w, r, v, http.StatusOK)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	base, ok := baseVersion(w, r)
	if !ok || !s.writableRule(w, r, r.PathValue("id")) {
		return
	}
	v, err := s.catalog.Delete(r.PathValue("id"), base, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		s.writeRuleError(w, err)
		return
	}
	s.saveRuleVersion(w, r, v, http.StatusOK)
}

func (s *Server) enableRule(w http.ResponseWriter, r *http.Request)  { s.setRuleEnabled(w, r, true) }
func (s *Server) disableRule(w http.ResponseWriter, r *http.Request) { s.setRuleEnabled(w, r, false) }

func (s *Server) setRuleEnabled(w http.ResponseWriter, r *http.Request, enabled bool) {
	claims, _ := auth.FromContext(r.Context())
	base, ok := baseVersion(w, r)
	if !ok || !s.writableRule(w, r, r.PathValue("id")) {
		return
	}
	v, changed, err := s.catalog.SetEnabled(r.PathValue("id"), enabled, base, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		s.writeRuleError(w, err)
		return
	}
	if !changed {
		writeJSON(w, http.StatusOK, RuleSaved{Version: v, Applied: true, Unchanged: true})
		return
	}
	s.saveRuleVersion(w, r, v, http.StatusOK)
}

// saveRuleVersion publishes a version to city.rules and answers once this instance has read
// it back and loaded it (every other instance does the same from the topic).
func (s *Server) saveRuleVersion(w http.ResponseWriter, r *http.Request, v authoring.RuleVersion, status int) {
	if err := s.publishRule(r.Context(), v); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "rule version not sent: "+err.Error())
		return
	}
	s.log.Info("rule version saved", zap.String("rule", v.RuleID), zap.Int("version", v.Version),
		zap.String("action", v.Action), zap.String("author", v.Author))
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CommandTimeout)
	defer cancel()
	if err := s.catalog.Wait(ctx, v.RuleID, v.Version); err != nil {
		writeJSON(w, http.StatusAccepted, RuleSaved{Code: CodeTimeout, Version: v, Applied: false,
			Error: "saved, but not read back from " + event.TopicRules + " within " + s.cfg.CommandTimeout.String()})
		return
	}
	writeJSON(w, status, RuleSaved{Version: v, Applied: true})
}

// ruleVersions answers GET /api/v1/rules/{id}/versions: the history, oldest first, without
// the sources (GET …/versions/{version} has one).
func (s *Server) ruleVersions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.readableRule(w, r, id) {
		return
	}
	hist := s.catalog.History(id)
	if len(hist) == 0 {
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return
	}
	out := make([]RuleHistoryEntry, 0, len(hist))
	for _, v := range hist {
		out = append(out, RuleHistoryEntry{v.Version, v.Action, v.Author, v.At, v.Comment, v.Deleted})
	}
	writeJSON(w, http.StatusOK, RuleHistory{RuleID: id, Versions: out})
}

func (s *Server) ruleVersion(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.readableRule(w, r, id) {
		return
	}
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "version: not a number")
		return
	}
	v, ok := s.catalog.Version(id, n)
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no version %d of rule %s", n, id))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// ruleDiff answers GET /api/v1/rules/{id}/diff?from=&to= (default: the newest version against
// the one before).
func (s *Server) ruleDiff(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !s.readableRule(w, r, id) {
		return
	}
	head, ok := s.catalog.Head(id)
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return
	}
	q := r.URL.Query()
	to, err := intParam(q.Get("to"), head.Version, 1, head.Version)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "to: "+err.Error())
		return
	}
	from, err := intParam(q.Get("from"), max(1, to-1), 1, head.Version)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "from: "+err.Error())
		return
	}
	va, okA := s.catalog.Version(id, from)
	vb, okB := s.catalog.Version(id, to)
	if !okA || !okB {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("rule %s has no version %d or %d", id, from, to))
		return
	}
	writeJSON(w, http.StatusOK, authoring.Diff(va, vb))
}

// ruleRef names the rule a dry run or backtest is about: an unsaved text, or a saved version
// (the current one when version is 0).
type ruleRef struct {
	Source  string `json:"source,omitempty"`
	RuleID  string `json:"rule_id,omitempty"`
	Version int    `json:"version,omitempty"`
}

// resolveRule returns the rule, or writes the error and returns false. A saved rule the
// caller may not read is not found; a text of a district outside their scope is refused.
func (s *Server) resolveRule(w http.ResponseWriter, r *http.Request, ref ruleRef) (lang.Rule, bool) {
	rule, ok := s.resolveRuleRef(w, ref)
	if !ok {
		return rule, false
	}
	claims, _ := auth.FromContext(r.Context())
	if !canReadRule(claims, rule.District) {
		if ref.RuleID != "" {
			writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+ref.RuleID)
		} else {
			writeError(w, http.StatusForbidden, CodeForbidden, scopeRefusal(claims, rule.District))
		}
		return lang.Rule{}, false
	}
	return rule, true
}

func (s *Server) resolveRuleRef(w http.ResponseWriter, ref ruleRef) (lang.Rule, bool) {
	switch {
	case ref.Source != "" && ref.RuleID != "":
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "give source or rule_id, not both")
	case ref.Source != "":
		if len(ref.Source) > maxRuleBody {
			writeError(w, http.StatusRequestEntityTooLarge, CodeInvalidRule, "rule text is too large")
			return lang.Rule{}, false
		}
		rs, err := lang.Parse("source", []byte(ref.Source))
		if err == nil && len(rs) != 1 {
			err = fmt.Errorf("%w; it holds %d", authoring.ErrNotOneRule, len(rs))
		}
		if err != nil {
			s.writeRuleError(w, err)
			return lang.Rule{}, false
		}
		return rs[0], true
	case ref.RuleID != "":
		if ref.Version == 0 {
			if _, r, ok := s.catalog.Get(ref.RuleID); ok {
				return r, true
			}
			writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+ref.RuleID)
			return lang.Rule{}, false
		}
		v, ok := s.catalog.Version(ref.RuleID, ref.Version)
		if !ok || v.Deleted {
			writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no version %d of rule %s", ref.Version, ref.RuleID))
			return lang.Rule{}, false
		}
		r, err := v.Rule()
		if err != nil {
			s.writeRuleError(w, err)
			return lang.Rule{}, false
		}
		return r, true
	default:
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "give the rule: source (its text) or rule_id (and version)")
	}
	return lang.Rule{}, false
}

// dryRunRequest is the body of POST /api/v1/rules/dry-run.
type dryRunRequest struct {
	ruleRef
	Events []event.Event `json:"events"`
	// Until runs the clock on after the last event (a device silent since, a period closing).
	Until time.Time `json:"until,omitzero"`
}

func (s *Server) dryRunRule(w http.ResponseWriter, r *http.Request) {
	var req dryRunRequest
	if !decodeJSON(w, r, maxDryRunBody, &req) {
		return
	}
	rule, ok := s.resolveRule(w, r, req.ruleRef)
	if !ok {
		return
	}
	if len(req.Events) == 0 || len(req.Events) > authoring.MaxDryRunEvents {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("events: give 1 to %d sample events", authoring.MaxDryRunEvents))
		return
	}
	s.runRuleJob(w, r, "dry_run", len(req.Events), dryRunDeadline, func(ctx context.Context, job *RuleJob) (any, error) {
		return authoring.DryRun(ctx, engine.Config{Progress: job.progress}, rule, req.Events, req.Until)
	})
}

// backtestRequest is the body of POST /api/v1/rules/backtest.
type backtestRequest struct {
	ruleRef
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// backtestRule replays stored events from [since, until) through the given version and the
// current one, and compares them. It reads only the events of the caller's scope: a district
// author's backtest replays their district's events, whatever the rule.
func (s *Server) backtestRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	var req backtestRequest
	if !decodeJSON(w, r, maxRuleBody, &req) {
		return
	}
	cand, ok := s.resolveRule(w, r, req.ruleRef)
	if !ok {
		return
	}
	if req.Since.IsZero() || !req.Until.After(req.Since) || req.Until.Sub(req.Since) > maxBacktestAge {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "since and until: a range of at most 31 days, since before until")
		return
	}
	if s.store == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the event store is not open")
		return
	}
	var current *lang.Rule
	if _, cur, ok := s.catalog.Get(cand.ID); ok && canReadRule(claims, cur.District) {
		current = &cur
	}
	s.runRuleJob(w, r, "backtest", 0, backtestDeadline, func(ctx context.Context, job *RuleJob) (any, error) {
		events, truncated, err := s.backtestEvents(ctx, claims, cand, req.Since, req.Until)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		if current != nil {
			job.setEvents(2 * len(events))
		} else {
			job.setEvents(len(events))
		}
		rep, err := authoring.Backtest(ctx, engine.Config{Progress: job.progress}, cand, current, events, req.Since, req.Until)
		if err != nil {
			return nil, err
		}
		rep.Truncated = truncated
		return rep, nil
	})
}

// backtestEvents reads the stored events of the rule's types in [since, until), oldest first,
// at most maxBacktest of them (the newest when there are more).
func (s *Server) backtestEvents(ctx context.Context, c auth.Claims, r lang.Rule, since, until time.Time) ([]event.Event, bool, error) {
	types := r.Types
	// The caller's district, else the rule's: the store reads no event outside both.
	district := c.District
	if c.Role == auth.RoleAdmin || district == "" {
		district = r.District
	}
	var events []event.Event
	truncated := false
	for _, typ := range types {
		for offset := 0; ; offset += storage.MaxLimit {
			page, err := s.store.ListEvents(ctx, storage.EventFilter{Type: typ, District: district, Since: since, Until: until,
				Limit: storage.MaxLimit, Offset: offset})
			if err != nil {
				return nil, false, err
			}
			for _, ev := range page {
				if c.CanSee(ev.Area) { // the scope policy again, on every event, whatever the store did
					events = append(events, ev)
				}
			}
			if len(page) < storage.MaxLimit {
				break
			}
			if len(events) >= maxBacktest {
				truncated = true
				break
			}
		}
	}
	// Newest first from the store, one type after another: sort into event time order.
	slices.SortStableFunc(events, func(x, y event.Event) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		if x.Type != y.Type {
			if x.Type < y.Type {
				return -1
			}
			return 1
		}
		if x.ID < y.ID {
			return -1
		} else if x.ID > y.ID {
			return 1
		}
		return 0
	})
	if len(events) > maxBacktest {
		events = events[len(events)-maxBacktest:]
		truncated = true
	}
	return events, truncated, nil
}

// ruleFields answers GET /api/v1/rules/fields[?type=<event type>]: what an expression may read
// (the typed environment of that event type, or of every type) and call, for the rule
// studio's completion.
func ruleFields(w http.ResponseWriter, r *http.Request) {
	types := lang.EventTypes
	if t := r.URL.Query().Get("type"); t != "" {
		if lang.EnvFor(t) == nil {
			writeError(w, http.StatusBadRequest, CodeInvalidRequest, "type: rules listen to "+strings.Join(lang.EventTypes, ", "))
			return
		}
		types = []string{t}
	}
	fields := []lang.EnvField{}
	seen := map[string]bool{}
	for _, t := range types {
		for _, f := range lang.Fields(t) {
			if !seen[f.Path] {
				seen[f.Path] = true
				fields = append(fields, f)
			}
		}
	}
	writeJSON(w, http.StatusOK, RuleFields{Fields: fields, Functions: lang.Functions, Builtins: lang.Builtins()})
}
