package engine

import (
	"cmp"
	"slices"
	"sort"

	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/urbanbrain/urbanbrain/event"
)

// The index: an event is offered only to the rules that could match it. Rules are filed by
// the event types they listen to and, within a type, by one equality conjunct of their
// condition (sensor.kind == "gas", video.algorithm in ["smoke", "fire"]): the one on the
// field with the most distinct values among the type's rules, which splits them finest. A
// rule without such a conjunct is offered every event of its types.
//
// Within each of those lists, stateless rules with a conjunct comparing a number to a
// constant (sensor.metrics.level_cm > 80, video.confidence >= 0.8) are filed by it too:
// per field, the lower bounds sorted by threshold and the upper bounds likewise, so that one
// binary search finds the rules whose bound the event's value satisfies, however many rules
// differ only in their thresholds. (A stateful rule needs every event of its kind, the
// ones on which its condition is false too, so it is never filed by a bound.)
//
// The full condition is always evaluated, so the index can only save work, never change an
// answer: every rule it leaves out has a conjunct that is false on the event.

type typeIndex struct {
	open   *ruleList     // rules with no usable equality conjunct
	fields []*fieldIndex // one per field some rule is filed under
}

type fieldIndex struct {
	get     lang.Field
	byValue map[string]*ruleList
}

// ruleList is the rules of one list of the index: those offered every event that reaches it,
// and those filed by a bound.
type ruleList struct {
	all    []*loaded
	ranges []*rangeIndex
}

// rangeIndex files rules by their bound on one number. lower holds the lower bounds in
// ascending order of threshold (>= before > on a tie), so the bounds an event's value
// satisfies are a prefix; upper holds the upper bounds in descending order (<= before <),
// likewise.
type rangeIndex struct {
	num          lang.Number
	lower, upper []lang.Bound
	lowerRules   []*loaded
	upperRules   []*loaded
}

// buildIndex files the enabled rules of a set.
func buildIndex(rules []*loaded) [3]*typeIndex {
	var out [3]*typeIndex
	for _, t := range lang.EventTypes {
		var rs []*loaded
		for _, l := range rules {
			if l.rule.Enabled && Listens(l.rule, t) {
				rs = append(rs, l)
			}
		}
		if len(rs) == 0 {
			continue
		}
		// How finely each field splits this type's rules.
		distinct := make(map[string]map[string]bool)
		for _, l := range rs {
			for _, f := range l.rule.Compiled().Filters {
				if distinct[f.Field] == nil {
					distinct[f.Field] = make(map[string]bool)
				}
				for _, v := range f.Values {
					distinct[f.Field][v] = true
				}
			}
		}
		var open []*loaded
		lists := make(map[string]map[string][]*loaded)
		ti := &typeIndex{}
		byField := make(map[string]*fieldIndex)
		for _, l := range rs {
			var best *lang.Filter
			for i := range l.rule.Compiled().Filters {
				f := &l.rule.Compiled().Filters[i]
				if best == nil || len(distinct[f.Field]) > len(distinct[best.Field]) {
					best = f
				}
			}
			if best == nil {
				open = append(open, l)
				continue
			}
			fi := byField[best.Field]
			if fi == nil {
				fi = &fieldIndex{get: best.Get, byValue: make(map[string]*ruleList)}
				byField[best.Field] = fi
				lists[best.Field] = make(map[string][]*loaded)
				ti.fields = append(ti.fields, fi)
			}
			for _, v := range best.Values {
				lists[best.Field][v] = append(lists[best.Field][v], l)
			}
		}
		if len(open) > 0 {
			ti.open = newRuleList(open)
		}
		for field, fi := range byField {
			for v, ls := range lists[field] {
				fi.byValue[v] = newRuleList(ls)
			}
		}
		out[typeSlot(t)] = ti
	}
	return out
}

// newRuleList files a list of rules, in set order, by their bounds.
func newRuleList(ls []*loaded) *ruleList {
	// Each stateless rule with bounds is filed by one of them: the one on the number the
	// most rules of the list have a bound on, so that they share one binary search.
	uses := make(map[string]int)
	for _, l := range ls {
		if l.kind != "" {
			continue
		}
		seen := map[string]bool{}
		for _, b := range l.rule.Compiled().Bounds {
			if !seen[b.Num.Field] {
				seen[b.Num.Field] = true
				uses[b.Num.Field]++
			}
		}
	}
	bk := &ruleList{}
	byNum := make(map[string]*rangeIndex)
	for _, l := range ls {
		var best *lang.Bound
		if l.kind == "" {
			for i := range l.rule.Compiled().Bounds {
				b := &l.rule.Compiled().Bounds[i]
				if best == nil || uses[b.Num.Field] > uses[best.Num.Field] {
					best = b
				}
			}
		}
		if best == nil {
			bk.all = append(bk.all, l)
			continue
		}
		ri := byNum[best.Num.Field]
		if ri == nil {
			ri = &rangeIndex{num: best.Num}
			byNum[best.Num.Field] = ri
			bk.ranges = append(bk.ranges, ri)
		}
		if best.Lower {
			ri.lower = append(ri.lower, *best)
			ri.lowerRules = append(ri.lowerRules, l)
		} else {
			ri.upper = append(ri.upper, *best)
			ri.upperRules = append(ri.upperRules, l)
		}
	}
	for _, ri := range bk.ranges {
		ri.sort()
	}
	return bk
}

// sort orders the bounds so that those an event's value satisfies come first.
func (ri *rangeIndex) sort() {
	order := func(bs []lang.Bound, rs []*loaded, less func(a, b lang.Bound) int) {
		idx := make([]int, len(bs))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(i, j int) bool { return less(bs[idx[i]], bs[idx[j]]) < 0 })
		nb, nr := make([]lang.Bound, len(bs)), make([]*loaded, len(rs))
		for i, k := range idx {
			nb[i], nr[i] = bs[k], rs[k]
		}
		copy(bs, nb)
		copy(rs, nr)
	}
	strictLast := func(a, b lang.Bound) int {
		switch {
		case a.Strict == b.Strict:
			return 0
		case a.Strict:
			return 1
		}
		return -1
	}
	// A NaN threshold admits nothing: last in either order.
	nanLast := func(a, b lang.Bound) (int, bool) {
		an, bn := a.N != a.N, b.N != b.N
		switch {
		case an && bn:
			return 0, true
		case an:
			return 1, true
		case bn:
			return -1, true
		}
		return 0, false
	}
	order(ri.lower, ri.lowerRules, func(a, b lang.Bound) int {
		if c, ok := nanLast(a, b); ok {
			return c
		}
		return cmp.Or(cmp.Compare(a.N, b.N), strictLast(a, b))
	})
	order(ri.upper, ri.upperRules, func(a, b lang.Bound) int {
		if c, ok := nanLast(a, b); ok {
			return c
		}
		return cmp.Or(cmp.Compare(b.N, a.N), strictLast(a, b))
	})
}

func Listens(r *lang.Rule, t string) bool {
	return slices.Contains(r.Types, t)
}

// candidates appends the rules that could match ev to out, in set order.
func (ti *typeIndex) candidates(ev *event.Event, out []*loaded) []*loaded {
	n, parts := len(out), 0
	if ti.open != nil {
		out = ti.open.candidates(ev, out, &parts)
	}
	for _, fi := range ti.fields {
		if bk := fi.byValue[fi.get.Get(ev)]; bk != nil {
			out = bk.candidates(ev, out, &parts)
		}
	}
	if parts > 1 {
		// From several lists, each in set order: merge them back into it.
		sortedByOrder(out[n:])
	}
	return inScope(ev, out, n)
}

// inScope drops from out[n:] the district rules of other districts than ev's: a district
// rule is never offered another district's events, whatever its condition says. This is
// the one place the engine enforces a rule's scope; stateless and stateful rules, live and
// in dry runs and backtests, all take their candidates from here.
func inScope(ev *event.Event, out []*loaded, n int) []*loaded {
	kept := out[:n]
	for _, l := range out[n:] {
		if d := l.rule.District; d == "" || d == ev.Area.District {
			kept = append(kept, l)
		}
	}
	return kept
}

// candidates appends the list's rules that could match ev, adding to parts the number of
// runs in set order they came in.
func (bk *ruleList) candidates(ev *event.Event, out []*loaded, parts *int) []*loaded {
	if len(bk.all) > 0 {
		out = append(out, bk.all...)
		*parts++
	}
	for _, ri := range bk.ranges {
		v := ri.num.Get(ev)
		// A prefix of bounds is in threshold order: more than one rule of it needs sorting.
		if k := satisfied(ri.lower, v); k > 0 {
			out = append(out, ri.lowerRules[:k]...)
			*parts += min(k, 2)
		}
		if k := satisfied(ri.upper, v); k > 0 {
			out = append(out, ri.upperRules[:k]...)
			*parts += min(k, 2)
		}
	}
	return out
}

// satisfied returns how many of the sorted bounds v satisfies: they come first.
func satisfied(bs []lang.Bound, v float64) int {
	lo, hi := 0, len(bs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bs[m].Admits(v) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}
