package engine

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/urbanbrain/urbanbrain/event"
)

// Why a signal was raised. The dry run's explainer evaluates every part of a condition; a live
// match reuses it, on the match only (a rule is evaluated on far more events than it matches),
// and keeps what an operator needs: each comparison with its sides' values, and what a
// stateful rule's state added. The explainer caches its compiled parts, so after a rule's
// first match on an event type an explanation costs a few small programs.

// maxTerms caps the comparisons an explanation lists.
const maxTerms = 16

// liveExplainer is one rule's explainer, shared by the streets evaluating the rule.
type liveExplainer struct {
	mu sync.Mutex
	ex *Explainer
}

func newLiveExplainer(r *lang.Rule) *liveExplainer { return &liveExplainer{ex: NewExplainer(r)} }

// explain is why r matched the event whose environment is env (of type typ).
func (l *liveExplainer) explain(typ string, env any) *event.Explanation {
	l.mu.Lock()
	c := l.ex.Explain(typ, env)
	l.mu.Unlock()
	x := &event.Explanation{Condition: l.ex.rule.When}
	terms(c, &x.Terms)
	return x
}

// terms flattens the comparisons of c into out, in the order written.
func terms(c *Condition, out *[]event.Term) {
	if c == nil || len(*out) >= maxTerms {
		return
	}
	if len(c.Operands) == 2 {
		holds, _ := c.Value.(bool)
		left, right := operandJSON(c.Operands[0].Value), operandJSON(c.Operands[1].Value)
		t := event.Term{Expr: c.Expr, Holds: holds,
			Left:  event.Operand{Expr: c.Operands[0].Expr, Value: left},
			Right: event.Operand{Expr: c.Operands[1].Expr, Value: right}}
		t.Text = t.Left.Expr + " " + left + " " + c.cmp + " " + t.Right.Expr
		if right != t.Right.Expr {
			t.Text += " " + right // not a literal: show its value too
		}
		*out = append(*out, t)
		return
	}
	for _, p := range c.Parts {
		terms(p, out)
	}
}

// operandJSON is an operand's value as JSON; an operand that failed shows as null.
func operandJSON(v any) string {
	switch x := v.(type) {
	case evalErr:
		return "null"
	case float64:
		// The usual operand: a metric or a threshold, without the encoder's dispatch.
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "null" // jsonSafe made these text; the encoder would refuse them
		}
		return string(appendJSONNumber(nil, x))
	}
	b, err := event.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

// explainState adds to x what a stateful rule's state says: how long a `for` condition held
// (from since to the later of at and the key's newest event), what a window held, or how long
// a device was silent.
func explainState(x *event.Explanation, l *loaded, ks *keyState, at time.Time, w lang.WindowValues) {
	r := l.rule
	switch l.kind {
	case lang.KindFor:
		since := time.Unix(0, ks.since).UTC()
		until := max(at.UnixNano(), ks.lastT)
		x.For = r.For.String()
		x.HeldSince = since
		x.Held = time.Duration(until - ks.since).String()
	case lang.KindWindow:
		x.Window = &event.WindowCount{Size: r.Window.Size.String(), Having: r.Window.Having,
			Count: w.Count, Sum: w.Sum, Avg: w.Avg, Start: w.Start, End: w.End}
	case lang.KindAbsent:
		x.LastSeen = time.Unix(0, ks.lastT).UTC()
		x.Silent = at.Sub(x.LastSeen).String()
	}
}

// appendJSONNumber appends a finite f as encoding/json writes a float64: the shortest decimal
// that reads back as f, in exponent form only below 1e-6 or from 1e21 on, with the exponent's
// digits as few as they can be (1e-7, not 1e-07). TestOperandNumbersAreEncodingJSONs holds
// it to encoding/json's bytes.
func appendJSONNumber(b []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs == 0 || abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	b = strconv.AppendFloat(b, f, 'e', -1, 64)
	// strconv writes at least two exponent digits: drop a leading zero of a negative one.
	if n := len(b); b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}
