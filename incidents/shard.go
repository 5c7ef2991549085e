package incidents

import (
	"sync"

	"github.com/urbanbrain/urbanbrain/event"
)

// shard is the state of one street: everything one partition's consumer owns. mu is held for
// a whole handler call, so a street's versions are built, and returned, one call at a time.
type shard struct {
	mu sync.Mutex

	// incidents holds immutable snapshots: a change replaces the pointer, so a remembered
	// command outcome keeps showing the state it produced.
	incidents map[string]*event.Incident
	byKey     map[string]string // correlation key → id of the open incident

	// What has been linked, so a replayed signal joins nothing twice. A signal is known by its
	// id, and by its (rule, event) pair so that a replay under a new rule version, whose signal
	// id differs, is known too. An event already reported on an incident is not a second report
	// there: another rule's signal on it is evidence (action signal), known by its (rule,
	// event) the same way; another rule's signal for the same event may also raise its own
	// incident.
	bySignal    map[string]string    // signal id → incident id
	byRuleEvent map[ruleEvent]string // → incident id
	reported    map[incidentEvent]struct{}

	spatial *spatialIndex // open incidents by category, place and time

	outcomes outcomes
}

type ruleEvent struct{ rule, event string }

type incidentEvent struct{ incident, event string }

func newShard(commandMemory int, c Correlation) *shard {
	return &shard{
		incidents:   make(map[string]*event.Incident),
		byKey:       make(map[string]string),
		bySignal:    make(map[string]string),
		byRuleEvent: make(map[ruleEvent]string),
		reported:    make(map[incidentEvent]struct{}),
		spatial:     newSpatialIndex(c),
		outcomes:    newOutcomes(commandMemory),
	}
}

// known reports whether a signal has been linked already, and to which incident.
func (sh *shard) known(sig event.Signal) (string, bool) {
	if id, ok := sh.bySignal[sig.ID]; ok {
		return id, true
	}
	if sig.Event.ID != "" {
		if id, ok := sh.byRuleEvent[ruleEvent{sig.RuleID, sig.Event.ID}]; ok {
			return id, true
		}
	}
	return "", false
}

// commit makes inc the current state. added are the reports inc has that the previous state
// had not; ch is the change that produced it (its command id is remembered as a success).
func (sh *shard) commit(inc *event.Incident, added []event.Report, ch event.Change) {
	sh.incidents[inc.ID] = inc
	if key := inc.CorrelationKey; key != "" {
		switch {
		case inc.Status.Open():
			sh.byKey[key] = inc.ID
		case sh.byKey[key] != inc.ID:
		case inc.MergedInto != "":
			// Reports of a merged problem keep joining the incident that took it over.
			sh.byKey[key] = inc.MergedInto
		default:
			delete(sh.byKey, key)
		}
	}
	sh.index(inc)
	sh.learn(inc.ID, added)
	sh.learnSignal(inc.ID, ch)
	if ch.CommandID != "" {
		sh.outcomes.remember(ch.CommandID, changed(inc, ch))
	}
}

// succeeded is the result of the command that made change ch, leaving inc.
func succeeded(inc *event.Incident, ch event.Change) event.CommandResult {
	return event.CommandResult{CommandID: ch.CommandID, IncidentID: inc.ID, OK: true, Incident: inc, At: ch.At}
}

// outcome is the first answer to a command id: the result it returned and, for a refusal, the
// typed error behind it.
type outcome struct {
	res   event.CommandResult
	err   error
	audit []event.AuditRecord // its audit records, returned again with the result on a repeat
	// Whose command it answered: a command id is answered again only for the same sender and
	// one of the incidents it touched (a merge or split touches two), never for anyone who
	// guesses it.
	by      string // the actor's subject
	related string // the other incident of a merge or split
}

// changed is the outcome of the command that made change ch, leaving inc.
func changed(inc *event.Incident, ch event.Change) outcome {
	return outcome{res: succeeded(inc, ch), by: ch.Actor.Subject, related: ch.Related}
}

// answers reports whether o is the first outcome of cmd itself, and not of another command
// that used the same id.
func (o outcome) answers(cmd event.Command) bool {
	return o.by == cmd.Actor.Subject && (o.res.IncidentID == cmd.IncidentID || o.related != "" && o.related == cmd.IncidentID)
}

// outcomes remembers the latest command outcomes, first in first out, so memory stays bounded
// while a client's retry (seconds to minutes later) still gets the first answer.
type outcomes struct {
	size  int
	byID  map[string]outcome
	order []string // ring of ids, grown up to size; once full the oldest is at next
	next  int
}

func newOutcomes(size int) outcomes {
	return outcomes{size: size, byID: make(map[string]outcome)}
}

func (o *outcomes) get(id string) (outcome, bool) {
	out, ok := o.byID[id]
	return out, ok
}

func (o *outcomes) remember(id string, out outcome) {
	if _, ok := o.byID[id]; ok {
		return // the first outcome stands
	}
	if len(o.order) < o.size {
		o.order = append(o.order, id)
	} else {
		delete(o.byID, o.order[o.next])
		o.order[o.next] = id
		o.next = (o.next + 1) % len(o.order)
	}
	o.byID[id] = out
}

// replace sets id's outcome, remembering it if it is not yet.
func (o *outcomes) replace(id string, out outcome) {
	if _, ok := o.byID[id]; ok {
		o.byID[id] = out
		return
	}
	o.remember(id, out)
}

// learnSignal indexes the signal behind change ch of incident id (open, link, signal), so that
// its replay changes nothing; a changelog rebuild learns it from the record the same way.
func (sh *shard) learnSignal(id string, ch event.Change) {
	if ch.SignalID != "" {
		sh.bySignal[ch.SignalID] = id
	}
	if ch.RuleID != "" && ch.EventID != "" {
		sh.byRuleEvent[ruleEvent{ch.RuleID, ch.EventID}] = id
	}
}

// learn indexes the ids of reports linked to incident id, and of the further rules' matches
// they hold.
func (sh *shard) learn(id string, reports []event.Report) {
	for _, r := range reports {
		for _, m := range r.Rules {
			sh.learnSignal(id, event.Change{SignalID: m.SignalID, RuleID: m.RuleID, EventID: m.EventID})
		}
		if r.SignalID != "" {
			sh.bySignal[r.SignalID] = id
		}
		for _, ev := range [2]string{r.EventID, r.LastEventID} {
			if ev != "" {
				sh.byRuleEvent[ruleEvent{r.RuleID, ev}] = id
				sh.reported[incidentEvent{id, ev}] = struct{}{}
			}
		}
	}
}
