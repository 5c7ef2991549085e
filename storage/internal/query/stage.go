package query

import (
	"slices"
	"strings"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
)

// Milestones are the statuses whose first times the stage KPIs need: every From and To of
// storage.Stages, in order of first use.
var Milestones = milestones()

func milestones() []event.Status {
	var out []event.Status
	for _, st := range storage.Stages {
		for _, s := range []event.Status{st.From, st.To} {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// StageCol names the milestone column of a status; the empty status is the creation.
func StageCol(st event.Status) string {
	if st == "" {
		return "t_created"
	}
	return "t_" + string(st)
}

// MilestoneCols are the StageCol of every Milestone.
func MilestoneCols() []string {
	out := make([]string, len(Milestones))
	for i, st := range Milestones {
		out[i] = StageCol(st)
	}
	return out
}

// FirstReachedCols is a select column per Milestone, named by StageCol: the first time the
// incident reached it. Its arguments are the statuses.
func (d *Dialect) FirstReachedCols() ([]string, []any) {
	cols := make([]string, len(Milestones))
	args := make([]any, len(Milestones))
	for i, st := range Milestones {
		cols[i] = d.FirstReached + " AS " + StageCol(st)
		args[i] = string(st)
	}
	return cols, args
}

// StageSums are the aggregate columns of storage.StageSums over rows that hold a severity
// column and the milestone columns: per stage of storage.Stages, in order, how many completed
// it, the sum of their times in ms, and how many of them met their severity's limit. The
// arguments are in the order of their placeholders.
func (d *Dialect) StageSums(limits storage.StageLimits) ([]string, []any) {
	var cols []string
	var args []any
	for _, st := range storage.Stages {
		t := d.stageTerms(st, limits)
		cols = append(cols,
			d.CountIf(t.done),
			d.SumIf(t.dur, t.done),
			d.CountIf(t.done+" AND "+t.lim+" >= 0 AND "+t.dur+" <= "+t.lim))
		args = append(append(args, t.limArgs...), t.limArgs...) // lim appears twice
	}
	return cols, args
}

// Late is the condition, over the same rows as StageSums, that an incident took longer than
// its severity's limit over any stage it completed: the incidents that count against the
// on-time rate. The arguments are in the order of their placeholders.
func (d *Dialect) Late(limits storage.StageLimits) (string, []any) {
	var conds []string
	var args []any
	for _, st := range storage.Stages {
		t := d.stageTerms(st, limits)
		if len(t.limArgs) == 0 {
			continue // no limit, never late
		}
		conds = append(conds, "("+t.done+" AND "+t.lim+" >= 0 AND "+t.dur+" > "+t.lim+")")
		args = append(append(args, t.limArgs...), t.limArgs...)
	}
	if len(conds) == 0 {
		return "1 = 0", nil
	}
	return "(" + strings.Join(conds, " OR ") + ")", args
}

// stageTerms are the expressions of one stage over the milestone columns: whether an incident
// completed it, how long it took, and its severity's limit (with the limit's arguments).
type stageTerms struct {
	done, dur, lim string
	limArgs        []any
}

func (d *Dialect) stageTerms(st storage.Stage, limits storage.StageLimits) stageTerms {
	from, to := StageCol(st.From), StageCol(st.To)
	t := stageTerms{
		done: d.Reached(to) + " AND " + d.Reached(from),
		dur:  "(" + to + " - " + from + ")",
	}
	sevs := limits.Severities(st.Name)
	t.lim = d.SeverityLimit(len(sevs))
	for _, sev := range sevs {
		t.limArgs = append(t.limArgs, sev, limits.LimitMs(st.Name, sev))
	}
	return t
}
