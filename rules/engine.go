package rules

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Publisher sends one record to a topic; key picks the partition (the street code).
type Publisher interface {
	Publish(ctx context.Context, topic, key string, value []byte) error
}

// Config configures an Engine.
type Config struct {
	// Topic is where signals go. Default event.TopicSignals.
	Topic string
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = event.TopicSignals
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Topic == "" {
		errs = append(errs, errors.New("rules: topic is empty"))
	}
	return errors.Join(errs...)
}

// Engine evaluates the rules on each event and publishes a Signal for every match. It holds no
// per-event state, so HandleEvent is safe to call from several partitions at once.
type Engine struct {
	cfg   Config
	pub   Publisher
	log   *zap.Logger
	rules []Rule
	// byType indexes the enabled rules by the event types they listen to, in load order.
	// Equality indexing (sensor.kind == "gas") comes with the next issue.
	byType  map[string][]entry
	stats   map[string]*counters
	scratch sync.Pool // *scratch
}

type entry struct {
	rule *Rule
	prog *programs
}

type counters struct {
	matched atomic.Uint64
	failed  atomic.Uint64
}

// RuleStats counts what a rule has done since the engine started.
type RuleStats struct {
	RuleID  string `json:"rule_id"`
	Matched uint64 `json:"matched"` // signals published
	Failed  uint64 `json:"failed"`  // events on which the rule failed at run time
}

// New builds an engine over rules made by Load or Parse.
func New(cfg Config, rules []Rule, pub Publisher, log *zap.Logger) (*Engine, error) {
	cfg.setDefaults()
	errs := []error{cfg.Validate()}
	if pub == nil {
		errs = append(errs, errors.New("rules: publisher is nil"))
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{
		cfg:     cfg,
		pub:     pub,
		log:     log,
		rules:   slices.Clone(rules),
		byType:  make(map[string][]entry),
		stats:   make(map[string]*counters, len(rules)),
		scratch: sync.Pool{New: func() any { return new(scratch) }},
	}
	for i := range e.rules {
		r := &e.rules[i]
		if r.c == nil {
			errs = append(errs, fmt.Errorf("rules: rule %q was not compiled (make rules with Load or Parse)", r.ID))
			continue
		}
		if _, dup := e.stats[r.ID]; dup {
			errs = append(errs, fmt.Errorf("rules: duplicate rule id %q", r.ID))
			continue
		}
		e.stats[r.ID] = new(counters)
		if !r.Enabled {
			continue
		}
		for _, t := range r.Types {
			e.byType[t] = append(e.byType[t], entry{rule: r, prog: r.c.byType[t]})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

// Rules returns the engine's rules, enabled or not, in load order.
func (e *Engine) Rules() []Rule { return slices.Clone(e.rules) }

// Stats returns each rule's counters, in load order.
func (e *Engine) Stats() []RuleStats {
	out := make([]RuleStats, 0, len(e.rules))
	for _, r := range e.rules {
		c := e.stats[r.ID]
		out = append(out, RuleStats{RuleID: r.ID, Matched: c.matched.Load(), Failed: c.failed.Load()})
	}
	return out
}

// HandleEvent evaluates ev and publishes one signal per matching rule to the signals topic,
// keyed by the event's street. A rule that fails on ev is logged, counted and skipped; only a
// failed Publish is returned, so the event is redelivered and, signal ids being derived from
// rule and event, the signals already sent are sent again under the same ids.
func (e *Engine) HandleEvent(ctx context.Context, ev event.Event) error {
	sigs, errs := e.Evaluate(ev)
	for _, err := range errs {
		e.recordFailure(ev, err)
	}
	key := ev.Area.Key()
	for _, sig := range sigs {
		b, err := event.Encode(event.TypeSignal, sig.ID, sig.At, sig)
		if err != nil {
			// Only data that cannot be JSON (a NaN metric) gets here; retrying cannot help.
			e.recordFailure(ev, &EvalError{RuleID: sig.RuleID, RuleVersion: sig.RuleVersion,
				EventID: ev.ID, Field: "signal", Err: err})
			continue
		}
		if err := e.pub.Publish(ctx, e.cfg.Topic, key, b); err != nil {
			return fmt.Errorf("rules: publish signal %s: %w", sig.ID, err)
		}
		if c := e.stats[sig.RuleID]; c != nil {
			c.matched.Add(1)
		}
	}
	return nil
}

// recordFailure counts a rule's failure and logs it. A rule that fails on every event would
// flood the log, so only the 1st, 2nd, 4th, 8th … failure of each rule is written.
func (e *Engine) recordFailure(ev event.Event, err error) {
	var ee *EvalError
	if !errors.As(err, &ee) {
		e.log.Warn("event not evaluated", zap.String("event_id", ev.ID),
			zap.String("event_type", ev.Type), zap.Error(err))
		return
	}
	c := e.stats[ee.RuleID]
	if c == nil {
		return
	}
	n := c.failed.Add(1)
	if bits.OnesCount64(n) == 1 {
		e.log.Warn("rule failed on event", zap.String("rule_id", ee.RuleID),
			zap.Int("rule_version", ee.RuleVersion), zap.String("event_id", ev.ID),
			zap.String("field", ee.Field), zap.Uint64("failures", n), zap.Error(ee.Err))
	}
}

// Evaluate runs every enabled rule for ev's type and returns the signals of the rules that
// match, in load order, and an error for each rule that failed on ev (*EvalError) or for an
// event that cannot be evaluated at all. It has no side effects, so a dry run can reuse it.
func (e *Engine) Evaluate(ev event.Event) ([]event.Signal, []error) {
	entries := e.byType[ev.Type]
	if len(entries) == 0 {
		return nil, nil
	}
	s := e.scratch.Get().(*scratch)
	defer func() {
		s.clear()
		e.scratch.Put(s)
	}()
	env, err := s.env(ev)
	if err != nil {
		return nil, []error{err}
	}
	m := &s.vm

	var sigs []event.Signal
	var errs []error
	for _, en := range entries {
		sig, ok, err := fire(m, en.rule, en.prog, env, ev)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			sigs = append(sigs, sig)
		}
	}
	return sigs, errs
}

// fire evaluates one rule on one event and builds its signal if the rule matches.
func fire(m *vm.VM, r *Rule, p *programs, env any, ev event.Event) (event.Signal, bool, error) {
	fail := func(field string, err error) (event.Signal, bool, error) {
		return event.Signal{}, false, &EvalError{RuleID: r.ID, RuleVersion: r.Version, EventID: ev.ID, Field: field, Err: err}
	}
	out, err := m.Run(p.when, env)
	if err != nil {
		return fail("when", err)
	}
	if match, _ := out.(bool); !match {
		return event.Signal{}, false, nil
	}
	sig := event.Signal{
		ID:          r.ID + ":" + ev.ID,
		RuleID:      r.ID,
		RuleVersion: r.Version,
		Shadow:      r.Raise.Shadow,
		At:          ev.Time,
		Event:       ev,
	}
	if sig.Category, err = p.category.eval(m, env); err != nil {
		return fail("raise.category", err)
	}
	if msg := checkCategory(sig.Category); msg != "" {
		return fail("raise.category", errors.New(msg))
	}
	if sig.Severity, err = p.severity.eval(m, env); err != nil {
		return fail("raise.severity", err)
	}
	if !validSeverity(sig.Severity) {
		return fail("raise.severity", fmt.Errorf("%q is not one of red, orange, yellow, blue", sig.Severity))
	}
	if sig.Title, err = p.title.eval(m, env); err != nil {
		return fail("raise.title", err)
	}
	if sig.CorrelationKey, err = p.correlationKey.eval(m, env); err != nil {
		return fail("raise.correlation_key", err)
	}
	if sig.CorrelationKey == "" {
		// No key (or one that rendered empty) merges nothing: the signal stands alone.
		sig.CorrelationKey = sig.ID
	}
	if sig.Agency, err = p.agency.eval(m, env); err != nil {
		return fail("raise.agency", err)
	}
	return sig, true, nil
}
