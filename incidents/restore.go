package incidents

import (
	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// Restore applies one changelog record while rebuilding on start, before any handler runs.
// Records are applied in changelog order; one at or below the version already held changes no
// state (last version wins) but still teaches the service its signal, event and command ids, so
// that replays stay dropped and repeated commands keep their first answer.
func (s *Service) Restore(rec event.IncidentChange) {
	inc := rec.Incident
	if inc.ID == "" || inc.Version < 1 {
		s.log.Warn("changelog record without incident id or version skipped", zap.String("id", inc.ID))
		return
	}
	sh := s.shard(streetOf(inc.ID))
	sh.mu.Lock()
	defer sh.mu.Unlock()

	cur := sh.incidents[inc.ID]
	if cur != nil && inc.Version <= cur.Version {
		// Stale: the newer state is kept, but its ids are learnt all the same.
		sh.learn(inc.ID, inc.Reports)
		sh.learnSignal(inc.ID, rec.Change)
		if rec.Change.CommandID != "" {
			sh.outcomes.remember(rec.Change.CommandID, changed(&inc, rec.Change))
		}
		return
	}
	// Reports only grow, so the ones the held state lacks are its new tail; indexing only them
	// keeps a rebuild linear in the number of reports, not quadratic.
	added := inc.Reports
	if cur != nil && len(cur.Reports) <= len(added) {
		added = added[len(cur.Reports):]
	}
	sh.commit(&inc, added, rec.Change)
	if rec.Change.SignalID != "" {
		// A reading that continued an episode added no report; its signal is known all the same.
		sh.bySignal[rec.Change.SignalID] = inc.ID
	}
	if len(added) == 0 && rec.Change.Action == ActionLink {
		sh.learn(inc.ID, inc.Reports) // the continued episode's latest event
	}
	if rec.Change.Action == event.ActionSplit && rec.Change.Related != "" && rec.Change.From == "" {
		// The new half of a split: its report no longer counts on the incident it left.
		for _, r := range inc.Reports {
			delete(sh.reported, incidentEvent{rec.Change.Related, r.EventID})
		}
	}
	s.clocks.track(&inc)
}

// Forget drops the state of every street gone(street) is true for: its incidents, the ids it
// has seen and its SLA deadlines. The application calls it when the partition that holds
// those streets is revoked, so that this instance neither answers for them nor fires their
// clocks while another owns them; their state is read back from the changelog (Restore) if
// the partition comes back. It returns the number of incidents dropped.
func (s *Service) Forget(gone func(street string) bool) int {
	s.mu.Lock()
	var dropped []*shard
	for street, sh := range s.shards {
		if gone(street) {
			dropped = append(dropped, sh)
			delete(s.shards, street)
		}
	}
	s.mu.Unlock()
	n := 0
	s.clocks.mu.Lock()
	defer s.clocks.mu.Unlock()
	for _, sh := range dropped {
		sh.mu.Lock()
		for id := range sh.incidents {
			// Disarmed here; the heap's stale entry is skipped when it comes due.
			delete(s.clocks.armed, id)
			n++
		}
		sh.mu.Unlock()
	}
	return n
}
