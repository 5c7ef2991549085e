package rules

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/urbanbrain/urbanbrain/event"
)

// A dry run evaluates one rule, saved or not, over sample events in a private engine (its own
// state, its outputs kept, nothing sent anywhere) and says, event by event, what fired
// and why: the value of every && / || / ! part of the condition and of both sides of every
// comparison, the group key, and the state of a stateful rule after the event.

// DryRunReport is the outcome of a dry run.
type DryRunReport struct {
	RuleID  string       `json:"rule_id"`
	Version int          `json:"version"`
	Kind    string       `json:"kind,omitempty"` // for, window, absent; empty when stateless
	Steps   []DryRunStep `json:"steps"`
	// After are the signals the clock raises once the events are over, when the request
	// asked to run the clock on (a device silent after the last sample, a period closing).
	After   []DrySignal `json:"after,omitempty"`
	Fired   int         `json:"fired"`
	Cleared int         `json:"cleared"`
}

// DryRunStep is what one sample event did.
type DryRunStep struct {
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Time      time.Time `json:"time"`
	// Listens is false when the rule does not listen to the event's type; nothing else is set.
	Listens   bool        `json:"listens"`
	Matched   bool        `json:"matched"` // the when condition held
	Condition *Condition  `json:"condition,omitempty"`
	Group     string      `json:"group,omitempty"`
	Late      bool        `json:"late,omitempty"` // too late for the stateful part
	State     *StateView  `json:"state,omitempty"`
	Signals   []DrySignal `json:"signals,omitempty"`
	Errors    []string    `json:"errors,omitempty"`
}

// Condition is one part of a condition with its value on the event: a && / || chain, a !,
// or a leaf; a comparison leaf also shows the value of each side.
type Condition struct {
	Expr     string       `json:"expr"`
	Op       string       `json:"op,omitempty"` // &&, ||, !
	Value    any          `json:"value"`
	Error    string       `json:"error,omitempty"`
	Operands []Operand    `json:"operands,omitempty"`
	Parts    []*Condition `json:"parts,omitempty"`

	cmp string // a comparison's operator
}

// Operand is one side of a comparison.
type Operand struct {
	Expr  string `json:"expr"`
	Value any    `json:"value"`
}

// DrySignal is a signal the dry run would have published.
type DrySignal struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"` // fire or clear
	At             time.Time `json:"at"`
	Category       string    `json:"category"`
	Severity       string    `json:"severity"`
	Title          string    `json:"title"`
	CorrelationKey string    `json:"correlation_key"`
	Agency         string    `json:"agency,omitempty"`
	Shadow         bool      `json:"shadow,omitempty"`
	EventID        string    `json:"event_id"`
}

// StateView is a stateful rule's state for one group key.
type StateView struct {
	Kind     string     `json:"kind"`
	Group    string     `json:"group"`
	Fired    bool       `json:"fired"`               // a signal is out and not cleared
	Holding  bool       `json:"holding,omitempty"`   // for: the condition holds
	Since    *time.Time `json:"since,omitempty"`     // for: since when
	LastSeen *time.Time `json:"last_seen,omitempty"` // absent: the key's newest event
	// Window is a sliding window's aggregate now, or a tumbling window's open periods.
	Window  *WindowValues  `json:"window,omitempty"`
	Having  *bool          `json:"having,omitempty"`
	Periods []WindowValues `json:"periods,omitempty"`
}

// MaxDryRunEvents caps the sample events of one dry run.
const MaxDryRunEvents = 1000

// DryRun runs r over events, in the order given. until, when later than the last event, runs
// the clock on to it afterwards. r runs even when disabled; cfg is as for New.
func DryRun(ctx context.Context, cfg Config, r Rule, events []event.Event, until time.Time) (DryRunReport, error) {
	if len(events) > MaxDryRunEvents {
		return DryRunReport{}, fmt.Errorf("dry run: %d events, at most %d", len(events), MaxDryRunEvents)
	}
	r.Enabled = true
	cfg.Registerer = nil
	eng, err := New(cfg, []Rule{r}, nil)
	if err != nil {
		return DryRunReport{}, err
	}
	rep := DryRunReport{RuleID: r.ID, Version: r.Version, Kind: r.Kind(), Steps: make([]DryRunStep, 0, len(events))}
	ex := newExplainer(&r)
	take := func(outs event.Outputs) []DrySignal {
		var out []DrySignal
		for _, sig := range signalsOf(outs) {
			kind := "fire"
			if sig.Clear {
				kind = "clear"
				rep.Cleared++
			} else {
				rep.Fired++
			}
			out = append(out, DrySignal{ID: sig.ID, Kind: kind, At: sig.At, Category: sig.Category, Severity: sig.Severity,
				Title: sig.Title, CorrelationKey: sig.CorrelationKey, Agency: sig.Agency, Shadow: sig.Shadow, EventID: sig.Event.ID})
		}
		return out
	}
	// The clock starts at the first event, as a live engine's would be ticking when it came:
	// then until runs each street's clock on from its newest event (see Engine.Tick).
	if len(events) > 0 {
		first := events[0].Time
		for _, ev := range events[1:] {
			if ev.Time.Before(first) {
				first = ev.Time
			}
		}
		if _, err := eng.Tick(ctx, first); err != nil {
			return rep, err
		}
	}
	for i, ev := range events {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if cfg.Progress != nil {
			cfg.Progress(i)
		}
		step := DryRunStep{EventID: ev.ID, EventType: ev.Type, Time: ev.Time, Listens: listens(&r, ev.Type)}
		if !step.Listens {
			rep.Steps = append(rep.Steps, step)
			continue
		}
		if st := eng.set.Load().byID[r.ID].stats(); st.Quarantined {
			// Over its cost budget (or failing on every event): neither the engine nor the
			// explanation runs it again, so a costly rule costs a dry run once.
			step.Errors = append(step.Errors, "quarantined: "+st.QuarantineReason)
			rep.Steps = append(rep.Steps, step)
			continue
		}
		env, err := envOf(ev)
		if err != nil {
			step.Errors = append(step.Errors, err.Error())
			rep.Steps = append(rep.Steps, step)
			continue
		}
		step.Condition = ex.explain(ev.Type, env)
		step.Matched, _ = step.Condition.Value.(bool)
		if p := r.c.byType[ev.Type]; p.groupBy != nil {
			m := newVM()
			if out, err := run(&m, p.groupBy, env); err == nil {
				step.Group, _ = out.(string)
			}
		}
		before := eng.set.Load().byID[r.ID].stats()
		late := eng.late.Load()
		outs, err := eng.HandleEvent(ctx, ev)
		if err != nil {
			return rep, err
		}
		after := eng.set.Load().byID[r.ID].stats()
		if after.Failed > before.Failed {
			step.Errors = append(step.Errors, after.LastError)
		}
		step.Late = eng.late.Load() > late
		if r.Kind() != "" {
			step.State = eng.inspect(r.ID, ev.Area.Key(), step.Group)
		}
		step.Signals = take(outs)
		rep.Steps = append(rep.Steps, step)
	}
	if !until.IsZero() {
		outs, err := eng.Tick(ctx, until)
		if err != nil {
			return rep, err
		}
		rep.After = take(outs)
	}
	return rep, nil
}

// inspect describes one key's state, or returns nil if it has none.
func (e *Engine) inspect(ruleID, streetKey, group string) *StateView {
	set := e.set.Load()
	l := set.byID[ruleID]
	st := e.streets.lookup(streetKey)
	if l == nil || st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	rs := st.rules[ruleID]
	if rs == nil {
		return &StateView{Kind: l.kind, Group: group}
	}
	ks := rs.keys[group]
	if ks == nil {
		return &StateView{Kind: l.kind, Group: group}
	}
	v := &StateView{Kind: l.kind, Group: group, Fired: ks.fired}
	at := func(ns int64) *time.Time {
		t := time.Unix(0, ns).UTC()
		return &t
	}
	switch l.kind {
	case KindFor:
		v.Holding = ks.holding
		if ks.holding {
			v.Since = at(ks.since)
		}
	case KindAbsent:
		v.LastSeen = at(ks.lastT)
	case KindWindow:
		if l.rule.Window.Kind == Tumbling {
			for _, b := range ks.buckets {
				w := WindowValues{Count: b.count, Sum: b.sum, Min: b.min, Max: b.max,
					Start: time.Unix(0, b.start).UTC(), End: time.Unix(0, b.end).UTC()}
				if b.count > 0 {
					w.Avg = b.sum / float64(b.count)
				}
				v.Periods = append(v.Periods, w)
			}
			break
		}
		w := ks.windowValues(true)
		v.Window = &w
		s := &scratch{vm: newVM()}
		if h, err := e.having(l, w, s); err == nil {
			v.Having = &h
		}
	}
	return v
}

// explainer evaluates the parts of one rule's condition; it compiles each part once per
// event type.
type explainer struct {
	rule  *Rule
	root  ast.Node
	progs map[string]*vm.Program // by event type and text
	errs  map[string]error
	vm    vm.VM
}

// maxExplainParts caps the parts shown, so a huge condition gives a bounded answer.
const maxExplainParts = 64

func newExplainer(r *Rule) *explainer {
	ex := &explainer{rule: r, progs: map[string]*vm.Program{}, errs: map[string]error{}, vm: newVM()}
	if tree, err := parseSafe(r.When); err == nil {
		ex.root = tree.Node
	}
	return ex
}

func (ex *explainer) explain(typ string, env any) *Condition {
	if ex.root == nil {
		return &Condition{Expr: ex.rule.When, Value: ex.eval(typ, ex.rule.When, env)}
	}
	budget := maxExplainParts
	return ex.node(typ, ex.root, env, ex.rule.When, &budget)
}

func (ex *explainer) node(typ string, n ast.Node, env any, text string, budget *int) *Condition {
	*budget--
	c := &Condition{Expr: text}
	val := ex.evalCond(typ, text, env, c)
	c.Value = val
	if *budget <= 0 {
		return c
	}
	switch x := n.(type) {
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			op := "&&"
			if x.Operator == "||" || x.Operator == "or" {
				op = "||"
			}
			c.Op = op
			for _, part := range chain(x, op) {
				c.Parts = append(c.Parts, ex.node(typ, part, env, part.String(), budget))
			}
			return c
		case "==", "!=", "<", ">", "<=", ">=", "in", "contains", "startsWith", "endsWith", "matches":
			c.cmp = x.Operator
			for _, side := range []ast.Node{x.Left, x.Right} {
				s := side.String()
				c.Operands = append(c.Operands, Operand{Expr: s, Value: ex.eval(typ, s, env)})
			}
		}
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			c.Op = "!"
			c.Parts = []*Condition{ex.node(typ, x.Node, env, x.Node.String(), budget)}
		}
	}
	return c
}

// chain flattens a && b && c (or ||) into its operands.
func chain(n ast.Node, op string) []ast.Node {
	b, ok := n.(*ast.BinaryNode)
	if ok {
		o := b.Operator
		if o == "and" {
			o = "&&"
		} else if o == "or" {
			o = "||"
		}
		if o == op {
			return append(chain(b.Left, op), chain(b.Right, op)...)
		}
	}
	return []ast.Node{n}
}

func (ex *explainer) evalCond(typ, text string, env any, c *Condition) any {
	v := ex.eval(typ, text, env)
	if e, ok := v.(evalErr); ok {
		c.Error = string(e)
		return nil
	}
	return v
}

// evalErr marks an evaluation error among values.
type evalErr string

func (e evalErr) MarshalJSON() ([]byte, error) { return []byte(`null`), nil }

func (ex *explainer) eval(typ, text string, env any) any {
	key := typ + "\x00" + text
	p, ok := ex.progs[key]
	if !ok {
		if err, bad := ex.errs[key]; bad {
			return evalErr(err.Error())
		}
		opts := append([]expr.Option{expr.Env(EnvFor(typ))}, baseOptions...)
		prog, err := compileSafe(text, opts)
		if err != nil {
			ex.errs[key] = err
			return evalErr(err.Error())
		}
		ex.progs[key], p = prog, prog
	}
	out, err := run(&ex.vm, p, env)
	if err != nil {
		return evalErr(kindOf(err)) // its kind, never the value it failed on
	}
	return jsonSafe(out)
}

// jsonSafe replaces what JSON cannot carry (NaN, ±Inf) with text.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case map[string]float64:
		out := make(map[string]any, len(x))
		for k, f := range x {
			out[k] = jsonSafe(f)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonSafe(e)
		}
		return out
	case *float64:
		if x == nil {
			return nil
		}
		return jsonSafe(*x)
	}
	return v
}
