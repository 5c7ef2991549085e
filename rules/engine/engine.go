package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/expr-lang/expr/vm"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Config configures an Engine. Zero values take the defaults.
type Config struct {
	// AllowedLateness is how far behind its street's clock (its newest event time, run on
	// by Tick while the street is idle) an event may be and still count in stateful rules
	// (default 2m): the clock minus it is the street's watermark. Later events are still
	// evaluated by stateless rules, but windows, durations and absence ignore them and count
	// them in Stats().Late — the same way every time, whatever the arrival order within the
	// bound. How old an event is by the wall clock does not matter, and an event behind the
	// watermark only because an idle street's clock ran on (not behind its newest event by
	// more than this) is an outage's backlog: it takes the clock back (EngineStats.Rewinds).
	// Silence and held conditions are acted on once the watermark has passed them: see Tick.
	AllowedLateness time.Duration
	// DisableAfter is how many failures in a row disable a rule on this instance
	// (default 100). A success in between resets the count.
	DisableAfter int
	// MaxKeys caps the group keys one stateful rule tracks (default 100,000); events of
	// further keys are ignored by that rule and counted in its stats.
	MaxKeys int
	// MaxWindowEvents caps the events one key's sliding window keeps (default 10,000); the
	// oldest are dropped first.
	MaxWindowEvents int
	// Redelivery is how many of its latest events each street remembers with the signals
	// stateful rules raised on them (default 1,024), so that an event handled again — its
	// outputs were not all acknowledged, and the partition resumed from an earlier offset —
	// gives the same outputs without being applied twice. An event older than that is
	// applied again.
	Redelivery int
	// Registerer, if set, gets the urbanbrain_rules_* metrics (see metrics.go).
	Registerer prometheus.Registerer
	// NoExplanations leaves every signal's Explanation out, for a caller that only counts
	// matches and throws the signals away (rules replay): explaining a match re-evaluates
	// each part of the condition and costs more than finding the match.
	NoExplanations bool
	// Progress, if set, is told how many events DryRun, Backtest or ReplayEvents has handled
	// so far (every few events and at the end), for a job that shows its progress. A
	// backtest counts its events twice: through the candidate, then the current version.
	Progress func(done int)
}

// ProgressEvery is how often a replay reports progress and looks at its context.
const ProgressEvery = 64

// Defaults of Config.
const (
	DefaultAllowedLateness = 2 * time.Minute
	DefaultDisableAfter    = 100
	DefaultMaxKeys         = 100_000
	DefaultMaxWindowEvents = 10_000
	DefaultRedelivery      = 1024
)

func (c *Config) setDefaults() {
	if c.AllowedLateness == 0 {
		c.AllowedLateness = DefaultAllowedLateness
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = DefaultDisableAfter
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.MaxWindowEvents == 0 {
		c.MaxWindowEvents = DefaultMaxWindowEvents
	}
	if c.Redelivery == 0 {
		c.Redelivery = DefaultRedelivery
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.AllowedLateness < 0 {
		errs = append(errs, errors.New("rules: AllowedLateness must not be negative"))
	}
	if c.DisableAfter < 1 {
		errs = append(errs, errors.New("rules: DisableAfter must be at least 1"))
	}
	if c.MaxKeys < 1 || c.MaxWindowEvents < 1 || c.Redelivery < 1 {
		errs = append(errs, errors.New("rules: MaxKeys, MaxWindowEvents and Redelivery must be at least 1"))
	}
	return errors.Join(errs...)
}

// Engine evaluates the rules on each event and returns a Signal for every match, as an
// event.Output for the caller to write (the routes file picks the topic).
//
// Its rule set is swapped atomically by SetRules while events flow; stateful rules keep their
// state in the engine, per street (the partition key) and group key, and are driven by event
// time: each event moves its street's clock, and Tick runs idle streets' clocks on at the pace
// of the wall clock so that silence can be noticed. HandleEvent and Tick are safe to call concurrently;
// each street's state has one writer at a time.
type Engine struct {
	cfg Config
	log *zap.Logger

	mu       sync.Mutex // serialises SetRules
	set      atomic.Pointer[ruleSet]
	counters map[string]*counters // by rule id, across versions; guarded by mu

	streets  streetMap
	lastTick atomic.Int64 // unix ns of the latest Tick: when a street's newest event arrived, at the earliest
	late     atomic.Uint64
	rewound  atomic.Uint64 // times a backlog took a street's run-on clock back (state.go, rewind)
	reloads  atomic.Uint64
	scratch  sync.Pool // *scratch
}

// counters are what one rule id has done since the engine started.
type counters struct {
	evaluated   atomic.Uint64
	matched     atomic.Uint64
	cleared     atomic.Uint64
	failed      atomic.Uint64
	overflow    atomic.Uint64 // events ignored because the rule tracks MaxKeys keys
	keys        atomic.Int64  // group keys with state
	streak      atomic.Uint64 // failures in a row
	quarantined atomic.Bool
	lastErr     atomic.Pointer[string]
	reason      atomic.Pointer[string] // why it was quarantined
	version     atomic.Int64           // the version the streak and quarantine belong to
}

// RuleStats counts what a rule has done since the engine started.
type RuleStats struct {
	RuleID      string `json:"rule_id"`
	Version     int    `json:"version"`
	Enabled     bool   `json:"enabled"`
	Evaluated   uint64 `json:"evaluated"`          // events the rule was evaluated on
	Matched     uint64 `json:"matched"`            // signals raised
	Cleared     uint64 `json:"cleared,omitempty"`  // clear signals raised
	Failed      uint64 `json:"failed"`             // events on which the rule failed at run time
	Keys        int64  `json:"keys,omitempty"`     // group keys with state (stateful rules)
	Overflow    uint64 `json:"overflow,omitempty"` // events ignored: MaxKeys reached
	Quarantined bool   `json:"quarantined,omitempty"`
	// QuarantineReason says why the rule was disabled on this instance: over its cost budget
	// on one event, or failing on DisableAfter events in a row.
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// LastError is the latest run-time failure, by kind, field and position (never a value
	// of the event); when Quarantined, the one that disabled it.
	LastError string `json:"last_error,omitempty"`
}

// ruleSet is an immutable generation of rules with its index.
type ruleSet struct {
	gen      uint64
	rules    []*loaded
	byID     map[string]*loaded
	index    [3]*typeIndex // by typeSlot
	stateful []*loaded     // enabled stateful rules, in order
}

// indexOf returns the index of an event type, nil when no rule listens to it.
func (s *ruleSet) indexOf(t string) *typeIndex {
	if i := typeSlot(t); i >= 0 {
		return s.index[i]
	}
	return nil
}

// typeSlot numbers the event types rules listen to (a switch: cheaper than hashing the name).
func typeSlot(t string) int {
	switch t {
	case event.TypeSensorReading:
		return 0
	case event.TypeHotlineTicket:
		return 1
	case event.TypeVideoDetection:
		return 2
	}
	return -1
}

// scratch is a Scratch with the engine's candidate rules of the event being evaluated.
type scratch struct {
	lang.Scratch
	cands    []*loaded
	stateful []*loaded
	rebuild  bool // Rebuild: what stateful rules raise is not explained
}

// clear readies a pooled scratch for the next event.
func (s *scratch) clear() {
	s.cands, s.stateful, s.rebuild = s.cands[:0], s.stateful[:0], false
	s.Scratch.Clear()
}

// loaded is one rule of a set.
type loaded struct {
	rule  *lang.Rule
	order int
	kind  string
	c     *counters
	// needMinMax: a sliding window whose having or raise reads min or max, which needs a scan.
	needMinMax bool
	explain    *liveExplainer // why it matched, computed for a match only
}

// New builds an engine over rules made by Load or Parse.
func New(cfg Config, rules []lang.Rule, log *zap.Logger) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{cfg: cfg, log: log, counters: make(map[string]*counters)}
	e.streets.init()
	e.scratch.New = func() any { return &scratch{Scratch: lang.Scratch{VM: lang.NewVM()}} }
	if err := e.SetRules(rules); err != nil {
		return nil, err
	}
	e.reloads.Store(0)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(collector{e}); err != nil {
			return nil, fmt.Errorf("rules: register metrics: %w", err)
		}
	}
	return e, nil
}

// SetRules replaces the engine's rules, as one atomic step: an event is evaluated entirely
// under the old set or entirely under the new one. The state of a stateful rule is kept when
// the new version has the same kind, group key and window shape (see fingerprint); otherwise,
// or when the rule is gone or disabled, it is dropped. A new version also lifts a quarantine.
func (e *Engine) SetRules(rules []lang.Rule) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	seen := make(map[string]bool, len(rules))
	set := &ruleSet{byID: make(map[string]*loaded, len(rules))}
	if old := e.set.Load(); old != nil {
		set.gen = old.gen + 1
	}
	for i := range rules {
		r := rules[i] // a copy: the caller's slice may change
		if r.Compiled() == nil {
			errs = append(errs, fmt.Errorf("rules: rule %q was not compiled (make rules with Load or Parse)", r.ID))
			continue
		}
		if seen[r.ID] {
			errs = append(errs, fmt.Errorf("rules: duplicate rule id %q", r.ID))
			continue
		}
		seen[r.ID] = true
		c := e.counters[r.ID]
		if c == nil {
			c = new(counters)
			e.counters[r.ID] = c
		}
		if c.version.Load() != int64(r.Version) {
			c.version.Store(int64(r.Version))
			c.streak.Store(0)
			c.quarantined.Store(false)
			c.reason.Store(nil)
		}
		l := &loaded{rule: &r, order: len(set.rules), kind: r.Kind(), c: c, explain: newLiveExplainer(&r)}
		if r.Window != nil && r.Window.Kind == lang.Sliding {
			_, a := lang.FindIdent(r.Window.Having, "min")
			_, b := lang.FindIdent(r.Window.Having, "max")
			raise := r.Raise.Title + r.Raise.CorrelationKey + r.Raise.Category + r.Raise.Severity + r.Raise.Agency
			l.needMinMax = a || b || strings.Contains(raise, "window.min") || strings.Contains(raise, "window.max")
		}
		set.rules = append(set.rules, l)
		set.byID[r.ID] = l
		if r.Enabled && l.kind != "" {
			set.stateful = append(set.stateful, l)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	set.index = buildIndex(set.rules)
	e.set.Store(set)
	e.reloads.Add(1)
	return nil
}

// Rules returns the engine's rules, enabled or not, in order.
func (e *Engine) Rules() []lang.Rule {
	set := e.set.Load()
	out := make([]lang.Rule, 0, len(set.rules))
	for _, l := range set.rules {
		out = append(out, *l.rule)
	}
	return out
}

// Rule returns the loaded rule with the given id.
func (e *Engine) Rule(id string) (lang.Rule, bool) {
	l, ok := e.set.Load().byID[id]
	if !ok {
		return lang.Rule{}, false
	}
	return *l.rule, true
}

// Stats returns each loaded rule's counters, in order.
func (e *Engine) Stats() []RuleStats {
	set := e.set.Load()
	out := make([]RuleStats, 0, len(set.rules))
	for _, l := range set.rules {
		out = append(out, l.stats())
	}
	return out
}

// EngineStats are the engine's own counters.
type EngineStats struct {
	Rules int    `json:"rules"`
	Late  uint64 `json:"late"` // events too late for stateful rules
	// Rewinds counts the times an outage's backlog took back the run-on of its street's
	// clock: the street had been quiet longer than the allowed lateness, and an event from
	// its quiet arrived (state.go, rewind).
	Rewinds uint64 `json:"rewinds"`
	Reloads uint64 `json:"reloads"` // SetRules calls after New
	Streets int    `json:"streets"` // streets with state
}

// StatsOf returns the counters of the loaded rule id, which must be loaded.
func (e *Engine) StatsOf(id string) RuleStats { return e.set.Load().byID[id].stats() }

// Config returns the engine's configuration, defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// EngineStats returns the engine's own counters.
func (e *Engine) EngineStats() EngineStats {
	return EngineStats{Rules: len(e.set.Load().rules), Late: e.late.Load(), Rewinds: e.rewound.Load(), Reloads: e.reloads.Load(), Streets: e.streets.len()}
}

func (l *loaded) stats() RuleStats {
	c := l.c
	s := RuleStats{RuleID: l.rule.ID, Version: l.rule.Version, Enabled: l.rule.Enabled,
		Evaluated: c.evaluated.Load(), Matched: c.matched.Load(), Cleared: c.cleared.Load(), Failed: c.failed.Load(),
		Keys: c.keys.Load(), Overflow: c.overflow.Load(), Quarantined: c.quarantined.Load()}
	if p := c.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	if p := c.reason.Load(); p != nil && s.Quarantined {
		s.QuarantineReason = *p
	}
	return s
}

// HandleEvent evaluates ev and returns the signals it causes, in order, as outputs keyed by
// the event's street: matches of stateless rules, then what stateful rules of the street do
// now that its clock has moved (fire, clear). Each output's Data is an event.Signal.
//
// A rule that fails on ev is logged, counted and skipped; the error is always nil (it is
// there for the stage runner's handler signature). Signal ids are derived from rule and
// event, so an event handled again yields the same signals under the same ids; stateful
// rules recognise an event they have applied already (see Config.Redelivery) and give the
// signals they raised on it again instead of applying it twice.
func (e *Engine) HandleEvent(_ context.Context, in event.Event) (event.Outputs, error) {
	return e.handle(in, false), nil
}

// Rebuild applies ev to the state of its street's stateful rules as HandleEvent does, and
// does nothing else: stateless rules are not evaluated, and what the stateful rules raise is
// neither explained nor returned. A new owner of a partition hands it the partition's recent
// events (see Horizon), whose signals the previous owner has raised already.
func (e *Engine) Rebuild(_ context.Context, in event.Event) {
	e.handle(in, true)
}

func (e *Engine) handle(in event.Event, rebuild bool) event.Outputs {
	ev := &in
	if err := checkPayload(ev); err != nil {
		e.log.Warn("event not evaluated", zap.String("event_id", ev.ID), zap.String("event_type", ev.Type), zap.Error(err))
		return nil
	}
	set := e.set.Load()
	ti := set.indexOf(ev.Type)
	if ti == nil && len(set.stateful) == 0 && e.streets.len() == 0 {
		return nil
	}
	s := e.scratch.Get().(*scratch)
	defer e.release(s)
	s.rebuild = rebuild
	cands := s.cands[:0]
	if ti != nil {
		cands = ti.candidates(ev, cands)
	}
	if rebuild {
		cands = slices.DeleteFunc(cands, func(l *loaded) bool { return l.kind == "" })
	}
	s.cands = cands
	var env any
	if len(cands) > 0 {
		var err error
		if env, err = s.Env(ev); err != nil {
			e.log.Warn("event not evaluated", zap.String("event_id", ev.ID), zap.String("event_type", ev.Type), zap.Error(err))
			return nil
		}
	}
	var outs event.Outputs
	stateful := s.stateful[:0]
	for _, l := range cands {
		if l.c.quarantined.Load() {
			continue
		}
		if l.kind != "" {
			stateful = append(stateful, l)
			continue
		}
		l.c.evaluated.Add(1)
		p := l.rule.Compiled().ByType[ev.Type]
		match, err := when(&s.VM, l.rule, p, env, ev)
		if err != nil {
			e.recordFailure(l, ev, err)
			continue
		}
		e.recordSuccess(l)
		if !match {
			continue
		}
		id := l.rule.ID + ":" + ev.ID
		sig, err := build(&s.Scratch, l.rule, p, env, ev, id, id, ev.Time)
		if err != nil {
			e.recordFailure(l, ev, err)
			continue
		}
		if !e.cfg.NoExplanations {
			sig.Explanation = l.explain.explain(ev.Type, env)
		}
		outs = e.output(set, outs, &sig)
	}
	s.stateful = stateful
	if len(set.stateful) == 0 && e.streets.len() == 0 {
		return outs
	}
	return e.handleStreet(set, ev, env, stateful, s, outs)
}

func (e *Engine) release(s *scratch) {
	s.clear()
	e.scratch.Put(s)
}

// output appends one signal to outs as an output keyed by its event's street, and counts it.
func (e *Engine) output(set *ruleSet, outs event.Outputs, sig *event.Signal) event.Outputs {
	if !finite(&sig.Event) {
		// JSON has no NaN or infinity, so no writer could encode this signal, and handling
		// the event again cannot help: it is the rule's failure on that event.
		if l := set.byID[sig.RuleID]; l != nil {
			e.recordFailure(l, &sig.Event, &lang.EvalError{RuleID: sig.RuleID, RuleVersion: sig.RuleVersion,
				EventID: sig.Event.ID, Field: "signal", Err: errNotFinite})
		}
		return outs
	}
	if c := e.countersOf(set, sig.RuleID); c != nil {
		if sig.Clear {
			c.cleared.Add(1)
		} else {
			c.matched.Add(1)
		}
	}
	return append(outs, signalOutput(sig))
}

func signalOutput(sig *event.Signal) event.Output {
	return event.Output{Key: sig.Event.Area.Key(), ID: sig.ID, Time: sig.At, Data: *sig}
}

var errNotFinite = lang.PublicErrorf("the event holds a number JSON cannot carry (NaN or infinity)")

// finite reports whether every number of ev can be written as JSON.
func finite(ev *event.Event) bool {
	ok := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	if p := ev.Location; p != nil && !(ok(p.Lon) && ok(p.Lat)) {
		return false
	}
	if r := ev.Sensor; r != nil {
		for _, v := range r.Metrics {
			if !ok(v) {
				return false
			}
		}
		if r.Battery != nil && !ok(*r.Battery) {
			return false
		}
	}
	if v := ev.Video; v != nil && !ok(v.Confidence) {
		return false
	}
	return true
}

func (e *Engine) countersOf(set *ruleSet, id string) *counters {
	if l := set.byID[id]; l != nil {
		return l.c
	}
	return nil
}

func (e *Engine) recordSuccess(l *loaded) {
	if l.c.streak.Load() != 0 {
		l.c.streak.Store(0)
	}
}

// recordFailure counts a rule's failure, logs it sparingly (the 1st, 2nd, 4th, 8th …
// failure of each rule) and disables the rule on this instance (quarantine) once it has
// failed DisableAfter times in a row, or at once when the sandbox stopped it for its cost:
// a rule over its cost budget on one event is one that can stall a partition, and its author
// must look at it. The error kept, shown and logged says what failed and how, with no value
// of the event (see publicMessage).
func (e *Engine) recordFailure(l *loaded, ev *event.Event, err error) {
	c := l.c
	n := c.failed.Add(1)
	msg := lang.PublicMessage(err)
	c.lastErr.Store(&msg)
	streak := c.streak.Add(1)
	if bits.OnesCount64(n) == 1 {
		field := ""
		if ee := (*lang.EvalError)(nil); errors.As(err, &ee) {
			field = ee.Field
		}
		e.log.Warn("rule failed on event", zap.String("rule_id", l.rule.ID),
			zap.Int("rule_version", l.rule.Version), zap.String("event_id", ev.ID),
			zap.String("field", field), zap.Uint64("failures", n), zap.String("error", msg))
	}
	var reason string
	switch {
	case lang.OverBudget(err):
		reason = "over its cost budget: " + msg
	case streak >= uint64(e.cfg.DisableAfter):
		reason = fmt.Sprintf("failed on %d events in a row; the last: %s", streak, msg)
	default:
		return
	}
	if c.quarantined.CompareAndSwap(false, true) {
		c.reason.Store(&reason)
		e.log.Error("rule quarantined on this instance; load a new version to enable it again",
			zap.String("rule_id", l.rule.ID), zap.Int("rule_version", l.rule.Version), zap.String("reason", reason))
	}
}

// Evaluate runs the enabled stateless rules for ev's type and returns the signals of the
// rules that match, in order, and an error for each rule that failed on ev (*EvalError) or
// for an event that cannot be evaluated at all. It has no side effects and ignores stateful
// rules, whose answer depends on other events: HandleEvent runs those.
func (e *Engine) Evaluate(in event.Event) ([]event.Signal, []error) {
	set := e.set.Load()
	ti := set.indexOf(in.Type)
	if ti == nil {
		return nil, nil
	}
	ev := &in
	if err := checkPayload(ev); err != nil {
		return nil, []error{err}
	}
	s := e.scratch.Get().(*scratch)
	defer e.release(s)
	cands := ti.candidates(ev, s.cands[:0])
	s.cands = cands
	if len(cands) == 0 {
		return nil, nil
	}
	env, err := s.Env(ev)
	if err != nil {
		return nil, []error{err}
	}
	var sigs []event.Signal
	var errs []error
	for _, l := range cands {
		if l.kind != "" || l.c.quarantined.Load() {
			continue
		}
		p := l.rule.Compiled().ByType[ev.Type]
		match, err := when(&s.VM, l.rule, p, env, ev)
		if err == nil && match {
			id := l.rule.ID + ":" + ev.ID
			var sig event.Signal
			if sig, err = build(&s.Scratch, l.rule, p, env, ev, id, id, ev.Time); err == nil {
				if !e.cfg.NoExplanations {
					sig.Explanation = l.explain.explain(ev.Type, env)
				}
				sigs = append(sigs, sig)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return sigs, errs
}

// when evaluates a rule's condition on one event.
func when(m *vm.VM, r *lang.Rule, p *lang.Programs, env any, ev *event.Event) (bool, error) {
	out, err := lang.Run(m, p.When, env)
	if err != nil {
		return false, &lang.EvalError{RuleID: r.ID, RuleVersion: r.Version, EventID: ev.ID, Field: "when", Err: err}
	}
	match, _ := out.(bool)
	return match, nil
}

// build renders a rule's raise fields for one event into a signal.
// defaultKey is the correlation key when the rule names none or it renders empty.
func build(s *lang.Scratch, r *lang.Rule, p *lang.Programs, env any, ev *event.Event, id, defaultKey string, at time.Time) (event.Signal, error) {
	fail := func(field string, err error) (event.Signal, error) {
		return event.Signal{}, &lang.EvalError{RuleID: r.ID, RuleVersion: r.Version, EventID: ev.ID, Field: field, Err: err}
	}
	sig := event.Signal{
		ID:          id,
		RuleID:      r.ID,
		RuleVersion: r.Version,
		Shadow:      r.Raise.Shadow,
		Alert:       r.Raise.Alert,
		At:          at,
		Event:       *ev,
	}
	var err error
	if sig.Category, err = p.Category.Eval(s, env, ev); err != nil {
		return fail("raise.category", err)
	}
	if msg := lang.CheckCategory(sig.Category); msg != "" {
		return fail("raise.category", lang.PublicErrorf("the category is not a code: letters, digits, '-', '_' and '.', 1 to 32 bytes"))
	}
	if sig.Severity, err = p.Severity.Eval(s, env, ev); err != nil {
		return fail("raise.severity", err)
	}
	if !lang.ValidSeverity(sig.Severity) {
		return fail("raise.severity", lang.PublicErrorf("the severity is not one of red, orange, yellow, blue"))
	}
	if sig.Title, err = p.Title.Eval(s, env, ev); err != nil {
		return fail("raise.title", err)
	}
	sig.Title = cut(sig.Title, lang.MaxTextBytes)
	if sig.CorrelationKey, err = p.CorrelationKey.Eval(s, env, ev); err != nil {
		return fail("raise.correlation_key", err)
	}
	if len(sig.CorrelationKey) > lang.MaxKeyBytes {
		return fail("raise.correlation_key", lang.PublicErrorf("key is %d bytes, more than %d", len(sig.CorrelationKey), lang.MaxKeyBytes))
	}
	if sig.CorrelationKey == "" {
		// No key (or one that rendered empty): a stateless match stands alone; a stateful
		// rule's signals share their group's key, so a clear finds what it clears.
		sig.CorrelationKey = defaultKey
	}
	if sig.Agency, err = p.Agency.Eval(s, env, ev); err != nil {
		return fail("raise.agency", err)
	}
	sig.Agency = cut(sig.Agency, lang.MaxTextBytes)
	return sig, nil
}

// checkPayload reports an event whose payload does not match its type. Ingest never lets one
// through, so it is reported rather than evaluated against zero values (or, through the
// index, silently matched by nothing).
func checkPayload(ev *event.Event) error {
	var ok bool
	switch ev.Type {
	case event.TypeSensorReading:
		ok = ev.Sensor != nil
	case event.TypeHotlineTicket:
		ok = ev.Hotline != nil
	case event.TypeVideoDetection:
		ok = ev.Video != nil
	default:
		return nil // a type no rule listens to: nothing to do
	}
	if !ok {
		return fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, lang.ErrNoPayload)
	}
	return nil
}

// cut shortens s to at most n bytes on a rune boundary, marking the cut with "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// sortedByOrder sorts candidate rules into set order (they come from several index buckets).
func sortedByOrder(ls []*loaded) {
	slices.SortFunc(ls, func(a, b *loaded) int { return a.order - b.order })
}
