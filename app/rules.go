package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/rules/authoring"
	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/transport"
)

// Rules as data, wired: the city.rules topic (created compacted, one partition), the catalog
// every instance rebuilds from it on start and follows through a per-instance route, the
// rules directory seeding it, the clock that drives stateful rules, and the authoring API.

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
	ruleClockEvery = time.Second
)

// startRules makes sure city.rules exists, reads it whole into the catalog, seeds it from the
// rules directory with what it lacks, and loads the catalog's rules into the engine. It runs
// before the router, so every instance starts with the rules the topic holds.
func (a *App) startRules(ctx context.Context) error {
	if !a.cfg.Runs(CompRules) && !a.cfg.Runs(CompAPI) {
		return nil
	}
	if err := ensureCompactedTopic(ctx, a.brokers, event.TopicRules, a.log); err != nil {
		return err
	}
	n := 0
	err := transport.ReadRecords(ctx, a.brokers, event.TopicRules, a.signedOnly("rule catalog", func(rec kafka.Message) error {
		v, err := authoring.DecodeVersion(rec.Value)
		if err != nil {
			a.log.Warn("city.rules: skipping undecodable record", zap.Error(err))
			return nil
		}
		n++
		if _, err := a.catalog.Apply(v); err != nil {
			a.log.Warn("city.rules: version does not compile here; the one before stays current",
				zap.String("rule", v.RuleID), zap.Int("version", v.Version), zap.Error(err))
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("read %s: %w", event.TopicRules, err)
	}
	seeded := 0
	for _, v := range a.catalog.Seed(a.ruleSet, time.Now()) {
		if err := a.publishRuleVersion(ctx, v); err != nil {
			return fmt.Errorf("seed %s: %w", v.Key(), err)
		}
		if _, err := a.catalog.Apply(v); err != nil {
			return fmt.Errorf("seed %s: %w", v.Key(), err)
		}
		seeded++
	}
	if err := a.rules.SetRules(a.catalog.Current()); err != nil {
		return fmt.Errorf("load rules from %s: %w", event.TopicRules, err)
	}
	a.catalog.OnChange(func(current []lang.Rule) {
		if err := a.rules.SetRules(current); err != nil {
			a.log.Error("reload rules", zap.Error(err))
			return
		}
		a.log.Info("rules reloaded", zap.Int("rules", len(current)))
	})
	a.log.Info("rules loaded from "+event.TopicRules, zap.Int("versions_read", n), zap.Int("seeded", seeded),
		zap.Int("rules", len(a.catalog.Current())))
	return nil
}

// applyRuleVersion is the route handler of city.rules: every instance applies every version.
func (a *App) applyRuleVersion(_ context.Context, v authoring.RuleVersion) error {
	if _, err := a.catalog.Apply(v); err != nil {
		a.log.Warn("city.rules: version does not compile here; the one before stays current",
			zap.String("rule", v.RuleID), zap.Int("version", v.Version), zap.Error(err))
	}
	return nil
}

func (a *App) publishRuleVersion(ctx context.Context, v authoring.RuleVersion) error {
	b, err := v.Encode()
	if err != nil {
		return err
	}
	return a.Publish(ctx, event.TopicRules, v.Key(), b)
}

// runRuleClock ticks the rules engine with the wall clock, so that silence and held
// conditions are noticed on streets where no event arrives.
//
// It also owns the async rule jobs (rules_jobs.go): they run under its context, so they stop
// when the application does, and it waits for them before it returns.
func (a *App) runRuleClock(ctx context.Context) error {
	a.ruleJobs.bind(ctx)
	defer a.ruleJobs.wait()
	if !a.cfg.Runs(CompRules) {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(ruleClockEvery)
	defer t.Stop()
	var unsent event.Outputs // signals the broker did not take yet: sent again on the next tick
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			outs, err := a.rules.Tick(ctx, now)
			if err != nil {
				a.log.Warn("rules clock", zap.Error(err))
			}
			unsent = append(unsent, outs...)
			if len(unsent) == 0 {
				continue
			}
			if err := a.emit(ctx, unsent); err != nil {
				if ctx.Err() == nil {
					a.log.Warn("rules clock: signals not sent, retried on the next tick", zap.Int("signals", len(unsent)), zap.Error(err))
				}
				continue
			}
			unsent = nil
		}
	}
}

// ensureCompactedTopic creates topic (city.rules, city.accounts) with one partition and
// cleanup.policy=compact, or sets that policy on an existing topic. Compaction keeps the latest
// record of each key (a rule version has its own key, an account its username); it keeps the
// topic from being aged out by time retention. A broker that refuses the policy (some managed
// offerings) is logged, not fatal: set retention.ms=-1 on the topic by hand.
func ensureCompactedTopic(ctx context.Context, brokers []string, topic string, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := transport.Client(brokers) // the process's TLS and SASL
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return fmt.Errorf("ensure %s: metadata: %w", topic, err)
	}
	exists := slices.ContainsFunc(md.Topics, func(t kafka.Topic) bool { return t.Name == topic && t.Error == nil })
	if !exists {
		rf := min(3, len(md.Brokers))
		resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: topic, NumPartitions: 1, ReplicationFactor: rf,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
		}}})
		if err != nil {
			return fmt.Errorf("ensure %s: %w", topic, err)
		}
		if terr := resp.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("ensure %s: %w", topic, terr)
		}
	}
	policy, err := topicConfig(ctx, c, topic, "cleanup.policy")
	if err == nil && policy == "compact" {
		return nil
	}
	_, aerr := c.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "cleanup.policy", Value: "compact", ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if aerr != nil {
		log.Warn(topic+" is not compacted and the policy could not be set: keep its retention unlimited by hand",
			zap.String("cleanup.policy", policy), zap.NamedError("describe", err), zap.NamedError("alter", aerr))
	}
	return nil
}

func topicConfig(ctx context.Context, c *kafka.Client, topic, name string) (string, error) {
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
	}}})
	if err != nil {
		return "", err
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return "", r.Error
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no %s", topic, name)
}

// ruleRoutes is the authoring API.
func (a *App) ruleRoutes() []httpRoute {
	need := func(h http.HandlerFunc) http.Handler { return a.need(auth.PermRules, h) }
	return []httpRoute{
		{"GET /api/v1/rules", need(a.listRules)},
		{"GET /api/v1/rules/fields", need(ruleFields)},
		{"POST /api/v1/rules", need(a.createRule)},
		{"POST /api/v1/rules/validate", need(a.validateRule)},
		{"POST /api/v1/rules/dry-run", need(a.dryRunRule)},
		{"POST /api/v1/rules/backtest", need(a.backtestRule)},
		{"GET /api/v1/rules/{id}", need(a.getRule)},
		{"PUT /api/v1/rules/{id}", need(a.updateRule)},
		{"DELETE /api/v1/rules/{id}", need(a.deleteRule)},
		{"POST /api/v1/rules/{id}/enable", need(a.enableRule)},
		{"POST /api/v1/rules/{id}/disable", need(a.disableRule)},
		{"GET /api/v1/rules/{id}/versions", need(a.ruleVersions)},
		{"GET /api/v1/rules/{id}/versions/{version}", need(a.ruleVersion)},
		{"GET /api/v1/rules/{id}/diff", need(a.ruleDiff)},
		{"GET /api/v1/rule-jobs/{id}", need(a.getRuleJob)},
		{"DELETE /api/v1/rule-jobs/{id}", need(a.cancelRuleJob)},
	}
}

// ruleView is a rule as the API shows it.
type ruleView struct {
	lang.Rule
	Kind      string            `json:"kind,omitempty"`
	Source    string            `json:"source"`
	Author    string            `json:"author"`
	Action    string            `json:"action"`
	UpdatedAt time.Time         `json:"updated_at"`
	Editable  bool              `json:"editable"`        // the caller's scope covers the rule's: they may change it
	Stats     *engine.RuleStats `json:"stats,omitempty"` // this instance's counters
}

func (a *App) viewRule(c auth.Claims, v authoring.RuleVersion, r lang.Rule, stats map[string]engine.RuleStats) ruleView {
	out := ruleView{Rule: r, Kind: r.Kind(), Source: v.Source, Author: v.Author, Action: v.Action, UpdatedAt: v.At,
		Editable: canWriteRule(c, r.District)}
	if s, ok := stats[r.ID]; ok {
		out.Stats = &s
	}
	return out
}

func (a *App) ruleStats() map[string]engine.RuleStats {
	out := map[string]engine.RuleStats{}
	for _, s := range a.rules.Stats() {
		out[s.RuleID] = s
	}
	return out
}

// listRules answers GET /api/v1/rules: the rules the caller may read (see rules_scope.go).
func (a *App) listRules(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	stats := a.ruleStats()
	list := []ruleView{}
	for _, rule := range a.catalog.Current() {
		if !canReadRule(claims, rule.District) {
			continue
		}
		v, _, _ := a.catalog.Get(rule.ID)
		list = append(list, a.viewRule(claims, v, rule, stats))
	}
	broken := map[string]string{}
	for k, err := range a.catalog.VersionErrors() {
		id, _, _ := strings.Cut(k, "@")
		if d, ok := a.ruleDistrict(id); ok && !canReadRule(claims, d) {
			continue
		}
		broken[k] = err.Error()
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": list, "count": len(list), "version_errors": broken,
		"engine": a.rules.EngineStats()})
}

// getRule answers GET /api/v1/rules/{id}.
func (a *App) getRule(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	claims, _ := auth.FromContext(r.Context())
	v, rule, ok := a.catalog.Get(id)
	if !ok || !canReadRule(claims, rule.District) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return
	}
	writeJSON(w, http.StatusOK, a.viewRule(claims, v, rule, a.ruleStats()))
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

// ruleError is one positioned problem with a rule, for an editor to mark.
type ruleError struct {
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

func ruleErrors(err error) []ruleError {
	var out []ruleError
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
			out = append(out, ruleError{Field: ce.Field, EventType: ce.EventType, Message: ce.Msg, Line: ce.Line, Column: ce.Column,
				FileLine: ce.Pos.Line, FileColumn: ce.Pos.Column, Snippet: ce.Snippet, Text: ce.Error()})
		case errors.As(err, &ve):
			out = append(out, ruleError{Field: ve.Field, Message: ve.Msg, FileLine: ve.Pos.Line, FileColumn: ve.Pos.Column, Text: ve.Error()})
		default:
			out = append(out, ruleError{Message: err.Error(), Text: err.Error()})
		}
	}
	walk(err)
	return out
}

// writeRuleError maps an authoring error to the catalogue of codes.
func (a *App) writeRuleError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, authoring.ErrRuleNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, authoring.ErrRuleExists):
		writeError(w, http.StatusConflict, CodeRuleExists, err.Error())
	case errors.Is(err, authoring.ErrVersionConflict):
		writeError(w, http.StatusConflict, CodeVersionConflict, err.Error())
	default:
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"code": CodeInvalidRule, "error": err.Error(), "errors": ruleErrors(err)})
	}
}

// validateRule answers POST /api/v1/rules/validate: the rule compiles, or every problem with
// its position.
func (a *App) validateRule(w http.ResponseWriter, r *http.Request) {
	text, ok := readRuleText(w, r)
	if !ok {
		return
	}
	rs, err := lang.Parse("body", text)
	if err == nil && len(rs) != 1 {
		err = fmt.Errorf("%w; it holds %d", authoring.ErrNotOneRule, len(rs))
	}
	if err != nil {
		a.writeRuleError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": true, "rule": rs[0], "kind": rs[0].Kind()})
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

func (a *App) createRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	text, ok := readRuleText(w, r)
	if !ok || !a.writableText(w, r, text) {
		return
	}
	v, err := a.catalog.Create(text, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		a.writeRuleError(w, err)
		return
	}
	a.saveRuleVersion(w, r, v, http.StatusCreated)
}

func (a *App) updateRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	base, ok := baseVersion(w, r)
	if !ok {
		return
	}
	text, ok := readRuleText(w, r)
	if !ok || !a.writableRule(w, r, r.PathValue("id")) || !a.writableText(w, r, text) {
		return
	}
	v, err := a.catalog.Update(r.PathValue("id"), text, base, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		a.writeRuleError(w, err)
		return
	}
	a.saveRuleVersion(w, r, v, http.StatusOK)
}

func (a *App) deleteRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	base, ok := baseVersion(w, r)
	if !ok || !a.writableRule(w, r, r.PathValue("id")) {
		return
	}
	v, err := a.catalog.Delete(r.PathValue("id"), base, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		a.writeRuleError(w, err)
		return
	}
	a.saveRuleVersion(w, r, v, http.StatusOK)
}

func (a *App) enableRule(w http.ResponseWriter, r *http.Request)  { a.setRuleEnabled(w, r, true) }
func (a *App) disableRule(w http.ResponseWriter, r *http.Request) { a.setRuleEnabled(w, r, false) }

func (a *App) setRuleEnabled(w http.ResponseWriter, r *http.Request, enabled bool) {
	claims, _ := auth.FromContext(r.Context())
	base, ok := baseVersion(w, r)
	if !ok || !a.writableRule(w, r, r.PathValue("id")) {
		return
	}
	v, changed, err := a.catalog.SetEnabled(r.PathValue("id"), enabled, base, claims.Subject, r.URL.Query().Get("comment"), time.Now())
	if err != nil {
		a.writeRuleError(w, err)
		return
	}
	if !changed {
		writeJSON(w, http.StatusOK, map[string]any{"version": v, "applied": true, "unchanged": true})
		return
	}
	a.saveRuleVersion(w, r, v, http.StatusOK)
}

// saveRuleVersion publishes a version to city.rules and answers once this instance has read
// it back and loaded it (every other instance does the same from the topic).
func (a *App) saveRuleVersion(w http.ResponseWriter, r *http.Request, v authoring.RuleVersion, status int) {
	if err := a.publishRuleVersion(r.Context(), v); err != nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "rule version not sent: "+err.Error())
		return
	}
	a.log.Info("rule version saved", zap.String("rule", v.RuleID), zap.Int("version", v.Version),
		zap.String("action", v.Action), zap.String("author", v.Author))
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.CommandTimeout)
	defer cancel()
	if err := a.catalog.Wait(ctx, v.RuleID, v.Version); err != nil {
		writeJSON(w, http.StatusAccepted, map[string]any{"code": CodeTimeout, "version": v, "applied": false,
			"error": "saved, but not read back from " + event.TopicRules + " within " + a.cfg.CommandTimeout.String()})
		return
	}
	writeJSON(w, status, map[string]any{"version": v, "applied": true})
}

// ruleVersions answers GET /api/v1/rules/{id}/versions: the history, oldest first, without
// the sources (GET …/versions/{version} has one).
func (a *App) ruleVersions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.readableRule(w, r, id) {
		return
	}
	hist := a.catalog.History(id)
	if len(hist) == 0 {
		writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+id)
		return
	}
	type entry struct {
		Version int       `json:"version"`
		Action  string    `json:"action"`
		Author  string    `json:"author"`
		At      time.Time `json:"at"`
		Comment string    `json:"comment,omitempty"`
		Deleted bool      `json:"deleted,omitempty"`
	}
	out := make([]entry, 0, len(hist))
	for _, v := range hist {
		out = append(out, entry{v.Version, v.Action, v.Author, v.At, v.Comment, v.Deleted})
	}
	writeJSON(w, http.StatusOK, map[string]any{"rule_id": id, "versions": out})
}

func (a *App) ruleVersion(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.readableRule(w, r, id) {
		return
	}
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "version: not a number")
		return
	}
	v, ok := a.catalog.Version(id, n)
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no version %d of rule %s", n, id))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// ruleDiff answers GET /api/v1/rules/{id}/diff?from=&to= (default: the newest version against
// the one before).
func (a *App) ruleDiff(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !a.readableRule(w, r, id) {
		return
	}
	head, ok := a.catalog.Head(id)
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
	va, okA := a.catalog.Version(id, from)
	vb, okB := a.catalog.Version(id, to)
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
func (a *App) resolveRule(w http.ResponseWriter, r *http.Request, ref ruleRef) (lang.Rule, bool) {
	rule, ok := a.resolveRuleRef(w, ref)
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

func (a *App) resolveRuleRef(w http.ResponseWriter, ref ruleRef) (lang.Rule, bool) {
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
			a.writeRuleError(w, err)
			return lang.Rule{}, false
		}
		return rs[0], true
	case ref.RuleID != "":
		if ref.Version == 0 {
			if _, r, ok := a.catalog.Get(ref.RuleID); ok {
				return r, true
			}
			writeError(w, http.StatusNotFound, CodeNotFound, "no rule "+ref.RuleID)
			return lang.Rule{}, false
		}
		v, ok := a.catalog.Version(ref.RuleID, ref.Version)
		if !ok || v.Deleted {
			writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no version %d of rule %s", ref.Version, ref.RuleID))
			return lang.Rule{}, false
		}
		r, err := v.Rule()
		if err != nil {
			a.writeRuleError(w, err)
			return lang.Rule{}, false
		}
		return r, true
	default:
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "give the rule: source (its text) or rule_id (and version)")
	}
	return lang.Rule{}, false
}

func decodeRuleRequest(w http.ResponseWriter, r *http.Request, limit int64, out any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
		return false
	}
	return true
}

// dryRunRequest is the body of POST /api/v1/rules/dry-run.
type dryRunRequest struct {
	ruleRef
	Events []event.Event `json:"events"`
	// Until runs the clock on after the last event (a device silent since, a period closing).
	Until time.Time `json:"until,omitzero"`
}

func (a *App) dryRunRule(w http.ResponseWriter, r *http.Request) {
	var req dryRunRequest
	if !decodeRuleRequest(w, r, maxDryRunBody, &req) {
		return
	}
	rule, ok := a.resolveRule(w, r, req.ruleRef)
	if !ok {
		return
	}
	if len(req.Events) == 0 || len(req.Events) > authoring.MaxDryRunEvents {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("events: give 1 to %d sample events", authoring.MaxDryRunEvents))
		return
	}
	a.runRuleJob(w, r, "dry_run", len(req.Events), dryRunDeadline, func(ctx context.Context, job *ruleJob) (any, error) {
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
func (a *App) backtestRule(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	var req backtestRequest
	if !decodeRuleRequest(w, r, maxRuleBody, &req) {
		return
	}
	cand, ok := a.resolveRule(w, r, req.ruleRef)
	if !ok {
		return
	}
	if req.Since.IsZero() || !req.Until.After(req.Since) || req.Until.Sub(req.Since) > maxBacktestAge {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "since and until: a range of at most 31 days, since before until")
		return
	}
	if a.store == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the event store is not open")
		return
	}
	var current *lang.Rule
	if _, cur, ok := a.catalog.Get(cand.ID); ok && canReadRule(claims, cur.District) {
		current = &cur
	}
	a.runRuleJob(w, r, "backtest", 0, backtestDeadline, func(ctx context.Context, job *ruleJob) (any, error) {
		events, truncated, err := a.backtestEvents(ctx, claims, cand, req.Since, req.Until)
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
func (a *App) backtestEvents(ctx context.Context, c auth.Claims, r lang.Rule, since, until time.Time) ([]event.Event, bool, error) {
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
			page, err := a.store.ListEvents(ctx, storage.EventFilter{Type: typ, District: district, Since: since, Until: until,
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
	writeJSON(w, http.StatusOK, map[string]any{"fields": fields, "functions": lang.Functions, "builtins": lang.Builtins()})
}
