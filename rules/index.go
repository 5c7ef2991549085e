package rules

import (
	"github.com/urbanbrain/urbanbrain/event"
)

// The index: an event is offered only to the rules that could match it. Rules are filed by
// the event types they listen to and, within a type, by one equality conjunct of their
// condition (sensor.kind == "gas", video.algorithm in ["smoke", "fire"]): the one on the
// field with the most distinct values among the type's rules, which splits them finest. A
// rule without such a conjunct is offered every event of its types. The full condition is
// always evaluated, so the index can only save work, never change an answer.

type typeIndex struct {
	open   []*loaded     // rules with no usable equality conjunct
	fields []*fieldIndex // one per field some rule is filed under
	multi  bool          // candidates may come from more than one list and need sorting
}

type fieldIndex struct {
	field   string
	get     field
	byValue map[string][]*loaded
}

// buildIndex files the enabled rules of a set.
func buildIndex(rules []*loaded) [3]*typeIndex {
	var out [3]*typeIndex
	for _, t := range EventTypes {
		var rs []*loaded
		for _, l := range rules {
			if l.rule.Enabled && listens(l.rule, t) {
				rs = append(rs, l)
			}
		}
		if len(rs) == 0 {
			continue
		}
		// How finely each field splits this type's rules.
		distinct := make(map[string]map[string]bool)
		for _, l := range rs {
			for _, f := range l.rule.c.filters {
				if distinct[f.field] == nil {
					distinct[f.field] = make(map[string]bool)
				}
				for _, v := range f.values {
					distinct[f.field][v] = true
				}
			}
		}
		ti := &typeIndex{}
		byField := make(map[string]*fieldIndex)
		for _, l := range rs {
			var best *filter
			for i := range l.rule.c.filters {
				f := &l.rule.c.filters[i]
				if best == nil || len(distinct[f.field]) > len(distinct[best.field]) {
					best = f
				}
			}
			if best == nil {
				ti.open = append(ti.open, l)
				continue
			}
			fi := byField[best.field]
			if fi == nil {
				fi = &fieldIndex{field: best.field, get: best.get, byValue: make(map[string][]*loaded)}
				byField[best.field] = fi
				ti.fields = append(ti.fields, fi)
			}
			for _, v := range best.values {
				fi.byValue[v] = append(fi.byValue[v], l)
			}
		}
		ti.multi = len(ti.fields) > 1 || (len(ti.fields) == 1 && len(ti.open) > 0)
		out[typeSlot(t)] = ti
	}
	return out
}

func listens(r *Rule, t string) bool {
	for _, x := range r.Types {
		if x == t {
			return true
		}
	}
	return false
}

// candidates appends the rules that could match ev to out, in set order.
func (ti *typeIndex) candidates(ev *event.Event, out []*loaded) []*loaded {
	out = append(out, ti.open...)
	for _, fi := range ti.fields {
		out = append(out, fi.byValue[fi.get.get(ev)]...)
	}
	if ti.multi && len(out) > 1 {
		sortedByOrder(out)
	}
	return out
}
