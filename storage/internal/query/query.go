// Package query turns the storage filters into SQL conditions and arguments, once for every
// backend. What a filter means — which columns it tests, how time bounds round, that an empty
// grid list matches nothing, how a text search compares, which stages the KPIs measure — is
// decided here; a backend supplies only its Dialect: the few expressions its SQL spells
// differently. Column names and SQL text come from this package and the Dialects, never from
// a caller: filter values only ever travel as arguments.
package query

import (
	"strings"
	"time"
)

// Dialect is what one backend's SQL spells its own way.
type Dialect struct {
	// HintCoarse keeps a coarse condition out of index choice, with SQLite's unary-plus idiom,
	// whenever a selective one is also present (see Where).
	HintCoarse bool
	// NoConditions is the clause of a Where without conditions: "" or, for ClickHouse, " WHERE 1".
	NoConditions string

	// Contains is the condition that the text expr, ASCII-lowered and, when masked, as
	// storage.SearchMask leaves it, holds needle (already ASCII-lowered).
	Contains func(expr string, masked bool, needle string) (string, []any)
	// AnyReport is the condition that cond holds for the summary of any of an incident's
	// reports; ReportSummary is the summary's expression within cond.
	AnyReport     func(cond string) string
	ReportSummary string
	// HotlineContent and HotlineAddress are the expressions of a hotline ticket's text.
	HotlineContent, HotlineAddress string
	// HasLocation is the condition that an event has a location (lon and lat).
	HasLocation string
	// EventPartition adds bounds on the events' partition column for [since, until), or is nil.
	EventPartition func(w *Where, since, until time.Time)

	// FirstReached is an expression, with one placeholder for the status, of the first time
	// an incident reached that status; Reached the condition that such a column holds a time.
	FirstReached string
	Reached      func(col string) string
	// CountIf and SumIf are the conditional aggregates.
	CountIf func(cond string) string
	SumIf   func(expr, cond string) string
	// SeverityLimit is an Int64 expression of n (severity, limit in ms) placeholder pairs: the
	// limit for the row's severity, -1 for any other.
	SeverityLimit func(n int) string

	// Incidents is the incidents table as a read sees each incident's newest version.
	IncidentsTable string
	// CountAll is the argument of count() that counts rows: "*" or "".
	CountAll string
	// Int casts an integer aggregate to a signed 64-bit integer, the type every scan expects.
	Int func(expr string) string
	// Milestones is a subquery with a row per incident w keeps: the incident columns cols,
	// t_created and the MilestoneCols, given the FirstReachedCols and their arguments; and
	// the subquery's arguments in the order of their placeholders.
	Milestones func(cols, firstReached []string, firstArgs []any, w *Where) (string, []any)
}

// Kind tells how useful a condition is as the start of an index search.
type Kind int

const (
	Selective Kind = iota // few rows per value: a good index to start from
	Coarse                // few distinct values: a poor one
	TimeRange             // a range on the sort column, which every index carries
	Computed              // an expression no index serves (text, distance)
)

// Where is a conjunction of conditions with positional arguments, in the order of their
// placeholders.
type Where struct {
	d     *Dialect
	terms []term
	Args  []any
}

type term struct {
	col, cond string // cond follows the column: " = ?"
	kind      Kind
}

// New is an empty conjunction in d's dialect.
func (d *Dialect) New() *Where { return &Where{d: d} }

// Add adds the condition col+cond with its arguments.
func (w *Where) Add(kind Kind, col, cond string, args ...any) {
	w.terms = append(w.terms, term{col: col, cond: cond, kind: kind})
	w.Args = append(w.Args, args...)
}

// Eq filters a selective column (district, street, grid, worker, device, category) to v.
func (w *Where) Eq(col, v string) { w.eq(Selective, col, v) }

// EqCoarse filters a coarse column (type, severity) to v.
func (w *Where) EqCoarse(col, v string) { w.eq(Coarse, col, v) }

func (w *Where) eq(kind Kind, col, v string) {
	if v != "" {
		w.Add(kind, col, " = ?", v)
	}
}

// AnyOf filters col to the values; a nil list does not filter, an empty one matches nothing.
func (w *Where) AnyOf(kind Kind, col string, vs []string) {
	switch {
	case vs == nil:
	case len(vs) == 0:
		w.Add(Computed, "", "0 = 1")
	default:
		args := make([]any, len(vs))
		for i, v := range vs {
			args[i] = v
		}
		w.Add(kind, col, " IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vs)), ", ")+")", args...)
	}
}

// Between bounds a millisecond column to [since, until); a zero bound is open. Stored times
// are whole milliseconds, so both bounds round up: t >= 10.5ms and t < 10.5ms mean t >= 11
// and t < 11.
func (w *Where) Between(col string, since, until time.Time) {
	if !since.IsZero() {
		w.Add(TimeRange, col, " >= ?", CeilMillis(since))
	}
	if !until.IsZero() {
		w.Add(TimeRange, col, " < ?", CeilMillis(until))
	}
}

// CeilMillis is t in Unix milliseconds, rounded up.
func CeilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

// HasSelective reports whether a selective condition is present.
func (w *Where) HasSelective() bool {
	for _, t := range w.terms {
		if t.kind == Selective {
			return true
		}
	}
	return false
}

// SQL is the WHERE clause, with a leading space.
func (w *Where) SQL() string {
	if len(w.terms) == 0 {
		return w.d.NoConditions
	}
	hint := w.d.HintCoarse && w.HasSelective()
	conds := make([]string, len(w.terms))
	for i, t := range w.terms {
		if t.kind == Coarse && hint {
			conds[i] = "+" + t.col + t.cond
		} else {
			conds[i] = t.col + t.cond
		}
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// ArgsWith is the arguments followed by extra ones, in a fresh slice.
func (w *Where) ArgsWith(extra ...any) []any {
	return append(append(make([]any, 0, len(w.Args)+len(extra)), w.Args...), extra...)
}
