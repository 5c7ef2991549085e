package event

import (
	"cmp"
	"slices"
	"time"
)

// Explanation says why a rule matched: the condition as the rule author wrote it, every
// comparison in it with the values its sides had on the event, and for a stateful rule what
// the state added (how long a `for:` condition held, what a window counted, how long a device
// was silent). The rules engine builds it for a match only; the incident service puts it on
// the change its signal makes (Change.Explanation), once: the changelog does not copy it onto
// the reports, which every later change of the incident re-writes. A reader with the
// incident's changes (the store's timeline) gives each report its own (ExplainReports), so an
// incident explains itself to whoever may read it.
//
// Terms[].Text and operand values may quote a 12345 ticket's text: mask them (package auth)
// before they leave the system.
type Explanation struct {
	Condition string `json:"condition"`       // the rule's `when`, as written
	Terms     []Term `json:"terms,omitempty"` // its comparisons, in order, at most a few dozen

	// `for:` rules: the condition held from HeldSince for Held (a Go duration, "3m10s"),
	// at least For.
	For       string    `json:"for,omitempty"`
	HeldSince time.Time `json:"held_since,omitzero"`
	Held      string    `json:"held,omitempty"`

	Window *WindowCount `json:"window,omitempty"` // window rules: what the window held when it fired

	// `absent:` rules: nothing from the device since LastSeen, Silent long.
	LastSeen time.Time `json:"last_seen,omitzero"`
	Silent   string    `json:"silent,omitempty"`
}

// Term is one comparison of a condition with the values of its sides, e.g.
// Text `sensor.metrics["level_cm"] 112 > 80`.
type Term struct {
	Expr  string  `json:"expr"`  // as written: sensor.metrics["level_cm"] > 80
	Text  string  `json:"text"`  // with the left side's value: sensor.metrics["level_cm"] 112 > 80
	Holds bool    `json:"holds"` // the comparison was true
	Left  Operand `json:"left"`
	Right Operand `json:"right"`
}

// Operand is one side of a comparison and its value, JSON-encoded ("112", `"water_level"`).
type Operand struct {
	Expr  string `json:"expr"`
	Value string `json:"value"`
}

// WindowCount is a window rule's aggregate when it fired.
type WindowCount struct {
	Size   string    `json:"size"`   // the window's length, "1h"
	Having string    `json:"having"` // the rule's condition on it, "count >= 3"
	Count  int       `json:"count"`
	Sum    float64   `json:"sum,omitempty"`
	Avg    float64   `json:"avg,omitempty"`
	Start  time.Time `json:"start,omitzero"` // the oldest event counted
	End    time.Time `json:"end,omitzero"`   // the newest
}

// Join says why a report belongs to its incident (一事多报): it opened it, it has the
// incident's correlation key, or it is the same problem nearby (same or related category,
// DistanceMeters from the incident, GapSeconds after — or before — its latest report).
type Join struct {
	By             string  `json:"by"` // opened, key or place
	Key            string  `json:"key,omitempty"`
	Category       string  `json:"category,omitempty"` // place: the category the report was raised as
	DistanceMeters float64 `json:"distance_meters,omitempty"`
	GapSeconds     float64 `json:"gap_seconds,omitempty"`
	RadiusMeters   float64 `json:"radius_meters,omitempty"` // place: the policy's limits it was within
	WindowSeconds  float64 `json:"window_seconds,omitempty"`
}

// How a report joined its incident.
const (
	JoinOpened = "opened"
	JoinKey    = "key"
	JoinPlace  = "place"
)

// RuleMatch is a further rule's signal on an event a report already holds (a second rule on
// the same reading: the held water level, the noise-cluster window on the third call). It adds
// no report but is evidence: its severity applies and it is on the timeline. A report keeps the
// latest match of each rule, with how many there were.
type RuleMatch struct {
	RuleID      string       `json:"rule_id"`
	RuleVersion int          `json:"rule_version,omitempty"`
	SignalID    string       `json:"signal_id"`
	EventID     string       `json:"event_id"`
	Severity    string       `json:"severity"`
	At          time.Time    `json:"at"`
	Count       int          `json:"count,omitempty"`
	Explanation *Explanation `json:"explanation,omitempty"`
}

// ExplainReports gives each report of inc, and each further rule match of a report, the
// explanation that the change of its signal carries, where it has none: the report the
// explanation of its latest reading (its rule on LastEventID, or EventID), a rule match that
// of its signal. changes are the incident's own, oldest first, and, for reports a merge or
// split moved to it, those of the incident they came from (Change.Related). Reports written
// before explanations left the changelog keep theirs. inc's reports are replaced, not
// changed in place.
func ExplainReports(inc *Incident, changes []Change) {
	byEvent := make(map[[2]string]*Explanation) // rule, event → the latest explanation
	bySignal := make(map[string]*Explanation)
	for _, c := range changes {
		if c.Explanation == nil {
			continue
		}
		if c.EventID != "" {
			byEvent[[2]string{c.RuleID, c.EventID}] = c.Explanation
		}
		if c.SignalID != "" {
			bySignal[c.SignalID] = c.Explanation
		}
	}
	if len(byEvent) == 0 && len(bySignal) == 0 {
		return
	}
	reports := slices.Clone(inc.Reports)
	for i := range reports {
		r := &reports[i]
		if r.Explanation == nil {
			latest := cmp.Or(r.LastEventID, r.EventID)
			r.Explanation = byEvent[[2]string{r.RuleID, latest}]
		}
		if len(r.Rules) == 0 {
			continue
		}
		r.Rules = slices.Clone(r.Rules)
		for j := range r.Rules {
			if m := &r.Rules[j]; m.Explanation == nil {
				m.Explanation = bySignal[m.SignalID]
			}
		}
	}
	inc.Reports = reports
}

// Unexplained says whether a report of inc, or a rule match of one, has no explanation yet.
func Unexplained(inc Incident) bool {
	for _, r := range inc.Reports {
		if r.Explanation == nil {
			return true
		}
		for _, m := range r.Rules {
			if m.Explanation == nil {
				return true
			}
		}
	}
	return false
}
