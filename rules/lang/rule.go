package lang

import (
	"fmt"
	"strings"
)

// Rule is one rule as its author wrote it, plus the programs compiled from it. Rules are made
// only by Parse and Load, which compile every expression once; the zero Rule cannot run.
//
// A Rule is immutable after loading and safe to share between goroutines.
type Rule struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Version     int    `json:"version"`
	Enabled     bool   `json:"enabled"`
	// District is the rule's scope: empty for a city rule (全市), or a district code (区) for
	// a district rule, which is offered only the events of that district. Writing a rule
	// needs a token whose scope covers it: a district-scoped author writes only the rules
	// of their own district.
	District string   `json:"district,omitempty"`
	Types    []string `json:"types"`
	When     string   `json:"when"`
	Raise    Raise    `json:"raise"`

	// The stateful parts: at most one of For (the condition must hold that long), Window (an
	// aggregate over a sliding or tumbling window) and Absent (no matching event for that
	// long). Their state is kept per GroupBy key (default: the sensor's device or the camera)
	// within the event's street, on event time; see Config.AllowedLateness.
	GroupBy string   `json:"group_by,omitempty"`
	For     Duration `json:"for,omitempty"`
	Window  *Window  `json:"window,omitempty"`
	Absent  Duration `json:"absent,omitempty"`

	// Origin is where the rule was read from.
	Origin Position `json:"-"`
	// Source is the rule's own text as YAML (comments kept), the form versions are stored
	// and compared in.
	Source string `json:"-"`

	c *Compiled
}

// Window is a rule's aggregate over recent matching events of one group key.
//
// A sliding window is checked on every matching event and whenever time moves on, over the
// events of the last Size; it fires when Having becomes true and clears when it stops being
// true. A tumbling window cuts time into fixed periods of Size (aligned to Beijing midnight)
// and is checked once, when its period closes, firing if Having holds for the whole period.
type Window struct {
	Kind   string   `json:"kind"`         // sliding (default) or tumbling
	Size   Duration `json:"size"`         // 1m … 7d
	Of     string   `json:"of,omitempty"` // the number aggregated; without it only count is known
	Having string   `json:"having"`       // boolean over count, sum, avg, min, max: "count >= 3"
}

// Window kinds.
const (
	Sliding  = "sliding"
	Tumbling = "tumbling"
)

// Kind says which stateful part a rule has: "" (none), "for", "window" or "absent".
func (r *Rule) Kind() string {
	switch {
	case r.For > 0:
		return KindFor
	case r.Window != nil:
		return KindWindow
	case r.Absent > 0:
		return KindAbsent
	}
	return ""
}

// Kinds of stateful rule.
const (
	KindFor    = "for"
	KindWindow = "window"
	KindAbsent = "absent"
)

// Raise says what a matching rule raises. Each text field is either a template — literal
// text with {{ expr }} placeholders, or no placeholder at all for a constant — or, when it
// starts with "=", one expression whose value is the field.
type Raise struct {
	Category       string `json:"category"`                  // category code ("0104")
	Severity       string `json:"severity"`                  // red, orange, yellow, blue
	Title          string `json:"title,omitempty"`           // default: the rule's name
	CorrelationKey string `json:"correlation_key,omitempty"` // default: "<rule id>:<event id>"
	Agency         string `json:"agency,omitempty"`          // routing hint: agency code
	Shadow         bool   `json:"shadow,omitempty"`          // record only, never raise an incident
	Alert          bool   `json:"alert,omitempty"`           // publish a CAP alert for the incident (预警)
}

// Position is a place in a rule file. Line and Column count from 1; zero means unknown.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// ValidationError is a rule that is malformed apart from its expressions: a missing or unknown
// field, a bad id or severity, a duplicate id.
type ValidationError struct {
	Pos    Position
	RuleID string // empty when the rule has no usable id
	Field  string // "id", "types", "raise.severity", ...
	Msg    string
}

func (e *ValidationError) Error() string {
	return prefix(e.Pos, e.RuleID, e.Field) + e.Msg
}

// CompileError is an expression or template that does not compile. Line, Column and Snippet
// point into the field's own text, so an editor showing that field can mark the spot; Pos is
// the same spot in the file where it can be known exactly (one-line values and literal "|"
// blocks) and the start of the value otherwise. Err is expr's *file.Error when expr raised it.
type CompileError struct {
	Pos       Position
	RuleID    string
	Field     string // "when", "raise.title", ...
	EventType string // set when the rule listens to several types and the field fails for this one
	Line      int
	Column    int
	Snippet   string
	Msg       string
	Err       error
}

func (e *CompileError) Error() string {
	var b strings.Builder
	b.WriteString(prefix(e.Pos, e.RuleID, e.Field))
	if e.EventType != "" {
		fmt.Fprintf(&b, "(for %s) ", e.EventType)
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (%d:%d)", e.Line, e.Column)
	}
	b.WriteString(e.Snippet)
	return b.String()
}

func (e *CompileError) Unwrap() error { return e.Err }

// EvalError is a rule that failed on one event at run time (a type mismatch on odd data, an
// integer division by zero, a severity expression that gave "purple"). The rule is skipped for
// that event; the other rules still run.
type EvalError struct {
	RuleID      string
	RuleVersion int
	EventID     string
	Field       string
	Err         error
}

// Error says which rule, event and field failed and how, never with a value of the event:
// run-time messages are reduced to their kind and position (see publicMessage), because this
// text reaches rule authors and logs.
func (e *EvalError) Error() string {
	return fmt.Sprintf("rule %s v%d on event %s: %s: %s", e.RuleID, e.RuleVersion, e.EventID, e.Field, KindOf(e.Err))
}

func (e *EvalError) Unwrap() error { return e.Err }

func prefix(pos Position, ruleID, field string) string {
	var b strings.Builder
	if s := pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if ruleID != "" {
		fmt.Fprintf(&b, "rule %s: ", ruleID)
	}
	if field != "" {
		b.WriteString(field)
		b.WriteString(": ")
	}
	return b.String()
}

// Compiled is the programs compiled from the rule, nil for a Rule not made by Parse or Load.
func (r *Rule) Compiled() *Compiled { return r.c }
