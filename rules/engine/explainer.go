package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

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

// StateView is a stateful rule's state for one group key.
type StateView struct {
	Kind     string     `json:"kind"`
	Group    string     `json:"group"`
	Fired    bool       `json:"fired"`               // a signal is out and not cleared
	Holding  bool       `json:"holding,omitempty"`   // for: the condition holds
	Since    *time.Time `json:"since,omitempty"`     // for: since when
	LastSeen *time.Time `json:"last_seen,omitempty"` // absent: the key's newest event
	// Window is a sliding window's aggregate now, or a tumbling window's open periods.
	Window  *lang.WindowValues  `json:"window,omitempty"`
	Having  *bool               `json:"having,omitempty"`
	Periods []lang.WindowValues `json:"periods,omitempty"`
}

// Inspect describes one key's state, or returns nil if it has none.
func (e *Engine) Inspect(ruleID, streetKey, group string) *StateView {
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
	case lang.KindFor:
		v.Holding = ks.holding
		if ks.holding {
			v.Since = at(ks.since)
		}
	case lang.KindAbsent:
		v.LastSeen = at(ks.lastT)
	case lang.KindWindow:
		if l.rule.Window.Kind == lang.Tumbling {
			for _, b := range ks.buckets {
				w := lang.WindowValues{Count: b.count, Sum: b.sum, Min: b.min, Max: b.max,
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
		s := &scratch{Scratch: lang.Scratch{VM: lang.NewVM()}}
		if h, err := e.having(l, w, s); err == nil {
			v.Having = &h
		}
	}
	return v
}

// Explainer evaluates the parts of one rule's condition; it compiles each part once per
// event type.
type Explainer struct {
	rule  *lang.Rule
	root  ast.Node
	progs map[progKey]*vm.Program
	errs  map[progKey]error
	texts map[ast.Node]string // each part's source text, written once: the tree never changes
	vm    vm.VM
}

// maxExplainParts caps the parts shown, so a huge condition gives a bounded answer.
const maxExplainParts = 64

func NewExplainer(r *lang.Rule) *Explainer {
	ex := &Explainer{rule: r, progs: map[progKey]*vm.Program{}, errs: map[progKey]error{}, texts: map[ast.Node]string{}, vm: lang.NewVM()}
	if tree, err := lang.ParseSafe(r.When); err == nil {
		ex.root = tree.Node
	}
	return ex
}

func (ex *Explainer) Explain(typ string, env any) *Condition {
	if ex.root == nil {
		return &Condition{Expr: ex.rule.When, Value: ex.eval(typ, ex.rule.When, env)}
	}
	budget := maxExplainParts
	return ex.node(typ, ex.root, env, ex.rule.When, &budget)
}

func (ex *Explainer) node(typ string, n ast.Node, env any, text string, budget *int) *Condition {
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
				c.Parts = append(c.Parts, ex.node(typ, part, env, ex.text(part), budget))
			}
			return c
		case "==", "!=", "<", ">", "<=", ">=", "in", "contains", "startsWith", "endsWith", "matches":
			c.cmp = x.Operator
			for _, side := range []ast.Node{x.Left, x.Right} {
				s := ex.text(side)
				c.Operands = append(c.Operands, Operand{Expr: s, Value: ex.eval(typ, s, env)})
			}
		}
	case *ast.UnaryNode:
		if x.Operator == "!" || x.Operator == "not" {
			c.Op = "!"
			c.Parts = []*Condition{ex.node(typ, x.Node, env, ex.text(x.Node), budget)}
		}
	}
	return c
}

// text is n's source text, as expr prints it: the key of its compiled program and what the
// explanation shows.
func (ex *Explainer) text(n ast.Node) string {
	s, ok := ex.texts[n]
	if !ok {
		s = n.String()
		ex.texts[n] = s
	}
	return s
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

func (ex *Explainer) evalCond(typ, text string, env any, c *Condition) any {
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

// progKey names a compiled part of a condition: the event type it was compiled for and its
// text.
type progKey struct{ typ, text string }

func (ex *Explainer) eval(typ, text string, env any) any {
	key := progKey{typ, text}
	p, ok := ex.progs[key]
	if !ok {
		if err, bad := ex.errs[key]; bad {
			return evalErr(err.Error())
		}
		opts := append([]expr.Option{expr.Env(lang.EnvFor(typ))}, lang.BaseOptions...)
		prog, err := lang.CompileSafe(text, opts)
		if err != nil {
			ex.errs[key] = err
			return evalErr(err.Error())
		}
		ex.progs[key], p = prog, prog
	}
	out, err := lang.Run(&ex.vm, p, env)
	if err != nil {
		return evalErr(lang.KindOf(err)) // its kind, never the value it failed on
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
