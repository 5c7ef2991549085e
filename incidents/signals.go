package incidents

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// HandleSignal opens an incident for a signal, or links it as one more report to the open
// incident with the same correlation key, and returns the changelog record of it. Shadow
// signals and replays change nothing and return nothing. The change is the state as soon as
// HandleSignal returns; an error (an id collision, a bug) applied nothing.
func (s *Service) HandleSignal(_ context.Context, sig event.Signal) (event.Outputs, error) {
	if sig.Shadow {
		s.stats.shadow.Add(1)
		return nil, nil
	}
	if sig.ID == "" {
		s.stats.invalid.Add(1)
		s.log.Warn("signal without id skipped", zap.String("rule", sig.RuleID), zap.String("event", sig.Event.ID))
		return nil, nil
	}

	sh := s.shard(sig.Event.Area.Key())
	sh.mu.Lock()
	defer sh.mu.Unlock()

	if id, ok := sh.known(sig); ok {
		s.stats.duplicate.Add(1)
		s.log.Debug("signal already linked", zap.String("signal", sig.ID), zap.String("incident", id))
		return nil, nil
	}
	now := s.cfg.Now().UTC()
	rep := reportOf(sig)

	var next event.Incident
	var added []event.Report // the reports this change adds or continues
	ch := event.Change{Actor: event.SystemActor, Reason: "rule " + sig.RuleID, SignalID: sig.ID, At: now}
	cur := sh.openIncident(sig.CorrelationKey)
	if cur == nil {
		if cur = s.nearby(sh, sig, rep.At); cur != nil {
			ch.Reason += fmt.Sprintf(" (same problem nearby: %s within %gm)", sig.Category,
				s.cfg.Policy.Correlation.rule(sig.Category).RadiusMeters)
			s.stats.spatial.Add(1)
		}
	}
	if cur != nil {
		if _, dup := sh.reported[incidentEvent{cur.ID, rep.EventID}]; dup {
			s.stats.duplicate.Add(1)
			s.log.Debug("event already reported on incident", zap.String("signal", sig.ID), zap.String("incident", cur.ID))
			return nil, nil
		}
		next = *cur
		next.Version++
		if i := episode(cur.Reports, rep); i >= 0 {
			// The device already reports this on the incident: its episode goes on. The
			// changelog record stays the size of the problem's sources, not of its readings.
			next.Reports = slices.Clone(cur.Reports)
			next.Reports[i] = continued(next.Reports[i], rep)
			added = next.Reports[i : i+1]
		} else {
			next.Reports = append(cur.Reports, rep)
			next.ReportCount++
			added = next.Reports[len(next.Reports)-1:]
		}
		next.Severity = maxSeverity(cur.Severity, sig.Severity)
		next.UpdatedAt = now
		ch.Action, ch.From, ch.To = ActionLink, cur.Status, cur.Status
	} else {
		street := sig.Event.Area.Key()
		next = event.Incident{
			ID:             s.cfg.NewID(street),
			Version:        1,
			Status:         event.StatusNew,
			Category:       sig.Category,
			Severity:       sig.Severity,
			Title:          sig.Title,
			CorrelationKey: sig.CorrelationKey,
			Area:           sig.Event.Area,
			Location:       sig.Event.Location,
			Assignment:     event.Assignment{Agency: sig.Agency}, // the rule's routing hint
			Reports:        []event.Report{rep},
			ReportCount:    1,
			CreatedAt:      now,
			UpdatedAt:      now,
		}
		added = next.Reports
		if _, taken := sh.incidents[next.ID]; taken {
			return nil, fmt.Errorf("incidents: NewID returned %s twice", next.ID)
		}
		ch.Action, ch.To = ActionOpen, event.StatusNew
	}

	var out event.Outputs
	change(&out, &next, ch)
	sh.commit(&next, added, ch)
	s.clocks.track(&next)
	if ch.Action == ActionOpen {
		s.stats.opened.Add(1)
	} else {
		s.stats.linked.Add(1)
	}
	return out, nil
}

// openIncident is the open incident a correlation key joins, or nil. An empty key joins
// nothing: such a rule raises one incident per signal.
func (sh *shard) openIncident(key string) *event.Incident {
	if key == "" {
		return nil
	}
	id, ok := sh.byKey[key]
	if !ok {
		return nil
	}
	if inc := sh.incidents[id]; inc != nil && inc.Status.Open() {
		return inc
	}
	return nil
}

// episode is the index of the report that rep continues — the same device raising the same
// rule — or -1. Hotline tickets are each their own report: every caller counts.
func episode(reports []event.Report, rep event.Report) int {
	if rep.Device == "" {
		return -1
	}
	for i, r := range reports {
		if r.Device == rep.Device && r.RuleID == rep.RuleID {
			return i
		}
	}
	return -1
}

// continued is episode report r after one more reading, rep.
func continued(r, rep event.Report) event.Report {
	r.Count = max(r.Count, 1) + 1
	if rep.At.After(r.LastAt) {
		r.LastAt, r.LastEventID, r.Summary = rep.At, rep.EventID, rep.Summary
		if rep.Location != nil {
			r.Location = rep.Location
		}
	}
	return r
}

func reportOf(sig event.Signal) event.Report {
	ev := sig.Event
	r := event.Report{
		EventID:   ev.ID,
		EventType: ev.Type,
		SignalID:  sig.ID,
		RuleID:    sig.RuleID,
		At:        ev.Time,
		Location:  ev.Location,
		Summary:   summary(sig),
		Category:  sig.Category,
	}
	switch {
	case ev.Hotline != nil:
		r.TicketID = ev.Hotline.TicketID
	case ev.Sensor != nil:
		r.Device = ev.Sensor.DeviceID
	case ev.Video != nil:
		r.Device = ev.Video.CameraID
	}
	if r.At.IsZero() {
		r.At = sig.At
	}
	if h := ev.Hotline; h != nil && (h.CallerName != "" || h.CallerPhone != "") {
		r.Caller = &event.Caller{Name: h.CallerName, Phone: h.CallerPhone}
	}
	return r
}

// maxSummary bounds a report's summary in runes: the timeline shows a line, not the ticket.
const maxSummary = 140

// summary is one line about the event in an operator's words, falling back to the rule's title.
func summary(sig event.Signal) string {
	ev := sig.Event
	var s string
	switch {
	case ev.Hotline != nil:
		s = strings.TrimSpace(ev.Hotline.RequestType + " " + ev.Hotline.Content)
	case ev.Sensor != nil:
		var b strings.Builder
		b.WriteString(ev.Sensor.Kind)
		if ev.Sensor.Status != "" {
			b.WriteString(" " + ev.Sensor.Status)
		}
		for _, k := range slices.Sorted(maps.Keys(ev.Sensor.Metrics)) {
			fmt.Fprintf(&b, " %s=%g", k, ev.Sensor.Metrics[k])
		}
		s = b.String()
	case ev.Video != nil:
		s = fmt.Sprintf("%s %.2f", ev.Video.Algorithm, ev.Video.Confidence)
		if ev.Video.ObjectCount > 0 {
			s += fmt.Sprintf(" ×%d", ev.Video.ObjectCount)
		}
	}
	if s == "" {
		s = sig.Title
	}
	if utf8.RuneCountInString(s) > maxSummary {
		s = string([]rune(s)[:maxSummary-1]) + "…"
	}
	return s
}

var severityRank = map[string]int{
	event.SeverityBlue:   1,
	event.SeverityYellow: 2,
	event.SeverityOrange: 3,
	event.SeverityRed:    4,
}

// maxSeverity is the more severe of two levels; an unknown level ranks below blue.
func maxSeverity(a, b string) string {
	if severityRank[b] > severityRank[a] {
		return b
	}
	return a
}
