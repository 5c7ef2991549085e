package incidents

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/event"
)

// HandleSignal opens an incident for a signal, or links it as one more report to the open
// incident with the same correlation key (or the same problem nearby), and returns the
// changelog record of it. A signal is evidence: one whose event the incident already holds
// (a second rule on the same reading) adds no report but applies its severity and is on the
// timeline (action signal). A signal is known by its id and its (rule, event): shadow signals
// and replays change nothing and return nothing. The change is the state as soon as
// HandleSignal returns; an error (an id collision, a bug) applied nothing.
func (s *Service) HandleSignal(ctx context.Context, sig event.Signal) (event.Outputs, error) {
	if sig.Shadow {
		s.stats.shadow.Add(1)
		return nil, nil
	}
	if sig.ID == "" {
		s.stats.invalid.Add(1)
		s.log.Warn("signal without id skipped", zap.String("rule", sig.RuleID), zap.String("event", sig.Event.ID),
			zap.String("trace_id", event.TraceID(ctx)))
		return nil, nil
	}

	sh := s.shard(sig.Event.Area.Key())
	sh.mu.Lock()
	defer sh.mu.Unlock()

	if id, ok := sh.known(sig); ok {
		s.stats.duplicate.Add(1)
		s.log.Debug("signal already linked", zap.String("signal", sig.ID), zap.String("incident", id),
			zap.String("trace_id", event.TraceID(ctx)))
		return nil, nil
	}
	now := s.cfg.Now().UTC()
	rep := reportOf(sig)

	var next event.Incident
	var added []event.Report // the reports this change adds or continues
	ch := event.Change{Actor: event.SystemActor, Reason: fmt.Sprintf("rule %s v%d", sig.RuleID, sig.RuleVersion),
		SignalID: sig.ID, At: now, RuleID: sig.RuleID, RuleVersion: sig.RuleVersion, EventID: sig.Event.ID,
		Explanation: sig.Explanation}
	cur := sh.openIncident(sig.CorrelationKey)
	if cur != nil {
		rep.Joined = &event.Join{By: event.JoinKey, Key: sig.CorrelationKey}
	} else if near, d := s.nearby(sh, sig, rep.At); near != nil {
		cur = near
		rule := s.cfg.Policy.Correlation.rule(sig.Category)
		gap := rep.At.Sub(latestReport(cur))
		rep.Joined = &event.Join{By: event.JoinPlace, Category: sig.Category, DistanceMeters: math.Round(d),
			GapSeconds: gap.Seconds(), RadiusMeters: rule.RadiusMeters, WindowSeconds: rule.Window.Seconds()}
		ch.Reason += fmt.Sprintf(" (same problem nearby: %s %.0fm away, %s from the latest report, within %gm and %s)",
			sig.Category, d, gap.Abs().Round(time.Second), rule.RadiusMeters, rule.Window)
		s.stats.spatial.Add(1)
	}
	if cur != nil {
		if _, dup := sh.reported[incidentEvent{cur.ID, rep.EventID}]; dup {
			// Another rule on an event the incident already holds: no report, but evidence.
			if i := holding(cur.Reports, sig); i >= 0 {
				return s.evidence(sh, cur, i, sig, ch), nil
			}
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
		rep.Joined = &event.Join{By: event.JoinOpened, Key: sig.CorrelationKey}
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
			RuleID:         sig.RuleID,
			RuleVersion:    sig.RuleVersion,
		}
		added = next.Reports
		if _, taken := sh.incidents[next.ID]; taken {
			return nil, fmt.Errorf("incidents: NewID returned %s twice", next.ID)
		}
		ch.Action, ch.To = ActionOpen, event.StatusNew
	}

	if sig.Alert && !alertLive(&next) {
		publishAlert(&next, "rule:"+sig.RuleID, "", now) // alerts.go: the rule's raise says alert
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

// evidence applies a further rule's signal on an event that report i of cur already holds:
// the rule joins the report's matches, its severity applies, and the change (action signal)
// puts it on the timeline. It adds no report: a reading is one report however many rules
// it satisfies.
func (s *Service) evidence(sh *shard, cur *event.Incident, i int, sig event.Signal, ch event.Change) event.Outputs {
	next := *cur
	next.Version++
	next.Reports = slices.Clone(cur.Reports)
	r := &next.Reports[i]
	r.Rules = matched(r.Rules, event.RuleMatch{RuleID: sig.RuleID, RuleVersion: sig.RuleVersion, SignalID: sig.ID,
		EventID: sig.Event.ID, Severity: sig.Severity, At: sig.At, Count: 1}) // explained by ch (event.ExplainReports)
	next.Severity = maxSeverity(cur.Severity, sig.Severity)
	next.UpdatedAt = ch.At
	if next.Severity != cur.Severity {
		ch.Reason = fmt.Sprintf("escalated by rule %s v%d: %s → %s", sig.RuleID, sig.RuleVersion, cur.Severity, next.Severity)
		ch.Level = next.Severity
	} else {
		ch.Reason = fmt.Sprintf("rule %s v%d also matched (%s; the incident stays %s)", sig.RuleID, sig.RuleVersion, sig.Severity, cur.Severity)
	}
	ch.Action, ch.From, ch.To = ActionSignal, cur.Status, cur.Status
	if sig.Alert && !alertLive(&next) {
		publishAlert(&next, "rule:"+sig.RuleID, "", ch.At)
	}
	var out event.Outputs
	change(&out, &next, ch)
	sh.commit(&next, nil, ch)
	s.clocks.track(&next)
	s.stats.evidence.Add(1)
	return out
}

// holding is the index of the report that holds sig's event — as its first or latest reading,
// else as an earlier reading of the same device — or -1.
func holding(reports []event.Report, sig event.Signal) int {
	for i, r := range reports {
		if r.EventID == sig.Event.ID || r.LastEventID == sig.Event.ID {
			return i
		}
	}
	if dev := deviceOf(sig.Event); dev != "" {
		for i, r := range reports {
			if r.Device == dev {
				return i
			}
		}
	}
	return -1
}

// matched is rules with m as its rule's latest match: one entry per rule, counted.
func matched(rules []event.RuleMatch, m event.RuleMatch) []event.RuleMatch {
	out := slices.Clone(rules)
	for i, old := range out {
		if old.RuleID == m.RuleID {
			m.Count = max(old.Count, 1) + 1
			out[i] = m
			return out
		}
	}
	return append(out, m)
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
// rule about the same class (a camera's algorithm, a sensor's kind) — or -1. Hotline tickets are each their own report: every caller counts.
func episode(reports []event.Report, rep event.Report) int {
	if rep.Device == "" {
		return -1
	}
	for i, r := range reports {
		// A report written before classes were recorded has none: it continues as before.
		if r.Device == rep.Device && r.RuleID == rep.RuleID && (r.Class == "" || r.Class == rep.Class) {
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
		r.RuleVersion = rep.RuleVersion
		r.Explanation = nil // the change of the latest reading explains it (event.ExplainReports)
		if rep.Location != nil {
			r.Location = rep.Location
		}
	}
	r.Peak = peak(r.Peak, rep.Peak)
	return r
}

// peak is the highest value of each measure of a and b, in a new map.
func peak(a, b map[string]float64) map[string]float64 {
	if len(b) == 0 {
		return a
	}
	out := maps.Clone(a)
	if out == nil {
		out = make(map[string]float64, len(b))
	}
	for k, v := range b {
		if cur, ok := out[k]; !ok || v > cur {
			out[k] = v
		}
	}
	return out
}

// deviceOf is the sensor or camera behind an event, or "".
func deviceOf(ev event.Event) string {
	switch {
	case ev.Sensor != nil:
		return ev.Sensor.DeviceID
	case ev.Video != nil:
		return ev.Video.CameraID
	}
	return ""
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

		// Why it matched is on the change of the signal, not copied onto the report: every
		// later change of the incident re-writes its reports (event.ExplainReports).
		RuleVersion: sig.RuleVersion,
	}
	switch {
	case ev.Hotline != nil:
		r.TicketID = ev.Hotline.TicketID
	case ev.Sensor != nil:
		r.Device, r.Class = ev.Sensor.DeviceID, ev.Sensor.Kind
		r.Peak = maps.Clone(ev.Sensor.Metrics)
	case ev.Video != nil:
		r.Device, r.Class = ev.Video.CameraID, ev.Video.Algorithm
		r.Peak = map[string]float64{"confidence": ev.Video.Confidence}
		if ev.Video.ObjectCount > 0 {
			r.Peak["object_count"] = float64(ev.Video.ObjectCount)
		}
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
