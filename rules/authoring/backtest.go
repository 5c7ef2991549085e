package authoring

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/urbanbrain/urbanbrain/event"
)

// A backtest replays stored events through a rule — a new, unsaved version — and through the
// version running now, each in a private engine, and compares what they would have raised.
// The replay runs on event time: the clock ticks every minute of it, as the live engine's
// does every second, and runs on to the end of the range, so windows close and silence is
// noticed just as it would have been.
//
// An incident is counted per correlation key, which is how the incident service merges
// signals into one open incident; shadow rules raise none. The incident service also merges
// signals of one category close in space and time, which a backtest does not model, so its
// counts are an upper bound of what operators would have seen.

// BacktestReport compares a candidate version of a rule with the current one over a range of
// stored events.
type BacktestReport struct {
	RuleID    string    `json:"rule_id"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Events    int       `json:"events"`              // events replayed
	Truncated bool      `json:"truncated,omitempty"` // the range held more than the cap: the newest were replayed
	Candidate Outcome   `json:"candidate"`
	Current   *Outcome  `json:"current,omitempty"` // nil when the rule is new
	// Compare is set when there is a current version.
	Compare *Comparison `json:"compare,omitempty"`
}

// Outcome is what one version would have done.
type Outcome struct {
	Version   int               `json:"version"`
	Signals   int               `json:"signals"`
	Clears    int               `json:"clears"`
	Shadow    bool              `json:"shadow,omitempty"` // records only: raises no incident
	Incidents []IncidentSummary `json:"incidents"`
	Failures  uint64            `json:"failures"`
	LastError string            `json:"last_error,omitempty"`
	// Quarantined: the version failed so often, or cost so much on one event, that it would
	// have been disabled; QuarantineReason says which.
	Quarantined      bool   `json:"quarantined,omitempty"`
	QuarantineReason string `json:"quarantine_reason,omitempty"`
}

// IncidentSummary is one incident a version would have raised: the signals with one
// correlation key.
type IncidentSummary struct {
	CorrelationKey string    `json:"correlation_key"`
	Category       string    `json:"category"`
	Severity       string    `json:"severity"` // the highest of its signals
	Title          string    `json:"title"`    // of the first signal
	Street         string    `json:"street"`
	Signals        int       `json:"signals"`
	First          time.Time `json:"first"`
	Last           time.Time `json:"last"`
	FirstEventID   string    `json:"first_event_id"`
}

// Comparison says which incidents differ between the candidate and the current version.
type Comparison struct {
	// OnlyCandidate are incidents the new version raises and the current one does not.
	OnlyCandidate []IncidentSummary `json:"only_candidate"`
	// OnlyCurrent are incidents the current version raises and the new one would not.
	OnlyCurrent   []IncidentSummary `json:"only_current"`
	Both          int               `json:"both"`
	IncidentDelta int               `json:"incident_delta"` // candidate minus current
	SignalDelta   int               `json:"signal_delta"`
}

// tickEvery is how often a replay moves the clock, in event time.
const tickEvery = time.Minute

// Backtest replays events (in time order) from [since, until) through candidate and, when not
// nil, current.
func Backtest(ctx context.Context, cfg engine.Config, candidate lang.Rule, current *lang.Rule, events []event.Event, since, until time.Time) (BacktestReport, error) {
	rep := BacktestReport{RuleID: candidate.ID, Since: since, Until: until, Events: len(events)}
	out, err := replayRule(ctx, cfg, candidate, events, until)
	if err != nil {
		return rep, err
	}
	rep.Candidate = out
	if current != nil {
		if p := cfg.Progress; p != nil {
			cfg.Progress = func(done int) { p(len(events) + done) }
		}
		cur, err := replayRule(ctx, cfg, *current, events, until)
		if err != nil {
			return rep, err
		}
		rep.Current = &cur
		rep.Compare = compare(out, cur)
	}
	return rep, nil
}

func replayRule(ctx context.Context, cfg engine.Config, r lang.Rule, events []event.Event, until time.Time) (Outcome, error) {
	r.Enabled = true
	cfg.Registerer = nil
	eng, err := engine.New(cfg, []lang.Rule{r}, nil)
	if err != nil {
		return Outcome{}, err
	}
	outs, err := ReplayEvents(ctx, eng, events, until)
	if err != nil {
		return Outcome{}, err
	}
	st := eng.Stats()[0]
	o := Outcome{Version: r.Version, Shadow: r.Raise.Shadow, Failures: st.Failed, LastError: st.LastError,
		Quarantined: st.Quarantined, QuarantineReason: st.QuarantineReason, Incidents: []IncidentSummary{}}
	byKey := map[string]*IncidentSummary{}
	for _, sig := range signalsOf(outs) {
		if sig.Clear {
			o.Clears++
			continue
		}
		o.Signals++
		if sig.Shadow {
			continue
		}
		inc := byKey[sig.CorrelationKey]
		if inc == nil {
			inc = &IncidentSummary{CorrelationKey: sig.CorrelationKey, Category: sig.Category, Severity: sig.Severity,
				Title: sig.Title, Street: sig.Event.Area.Key(), First: sig.At, FirstEventID: sig.Event.ID}
			byKey[sig.CorrelationKey] = inc
		}
		inc.Signals++
		inc.Last = sig.At
		if severityRank(sig.Severity) > severityRank(inc.Severity) {
			inc.Severity = sig.Severity
		}
	}
	for _, inc := range byKey {
		o.Incidents = append(o.Incidents, *inc)
	}
	sortIncidents(o.Incidents)
	return o, nil
}

// ReplayEvents feeds events, in order, to eng as the live pipeline would: the clock ticks
// every minute of event time, and at the end runs on to until (when later) plus the
// allowed lateness, so that every deadline before until is acted on. It returns everything
// the engine produced, in order.
func ReplayEvents(ctx context.Context, eng *engine.Engine, events []event.Event, until time.Time) (event.Outputs, error) {
	var clock time.Time
	var all event.Outputs
	for i, ev := range events {
		if i%engine.ProgressEvery == 0 {
			if err := ctx.Err(); err != nil {
				return all, err
			}
			if p := eng.Config().Progress; p != nil && i > 0 {
				p(i)
			}
		}
		if clock.IsZero() || ev.Time.Sub(clock) >= tickEvery {
			clock = ev.Time
			outs, err := eng.Tick(ctx, clock)
			all = append(all, outs...)
			if err != nil {
				return all, err
			}
		}
		outs, err := eng.HandleEvent(ctx, ev)
		all = append(all, outs...)
		if err != nil {
			return all, fmt.Errorf("replay event %s: %w", ev.ID, err)
		}
	}
	if p := eng.Config().Progress; p != nil {
		p(len(events))
	}
	end := until
	if end.IsZero() && len(events) > 0 {
		end = events[len(events)-1].Time
	}
	if !end.IsZero() {
		outs, err := eng.Tick(ctx, end.Add(eng.Config().AllowedLateness))
		return append(all, outs...), err
	}
	return all, nil
}

// signalsOf returns the signals among outs.
func signalsOf(outs event.Outputs) []event.Signal {
	var sigs []event.Signal
	for _, o := range outs {
		if sig, ok := o.Data.(event.Signal); ok {
			sigs = append(sigs, sig)
		}
	}
	return sigs
}

func severityRank(s string) int {
	switch s {
	case event.SeverityRed:
		return 4
	case event.SeverityOrange:
		return 3
	case event.SeverityYellow:
		return 2
	case event.SeverityBlue:
		return 1
	}
	return 0
}

func sortIncidents(incs []IncidentSummary) {
	sort.Slice(incs, func(i, j int) bool {
		if !incs[i].First.Equal(incs[j].First) {
			return incs[i].First.Before(incs[j].First)
		}
		return incs[i].CorrelationKey < incs[j].CorrelationKey
	})
}

func compare(cand, cur Outcome) *Comparison {
	c := &Comparison{OnlyCandidate: []IncidentSummary{}, OnlyCurrent: []IncidentSummary{},
		IncidentDelta: len(cand.Incidents) - len(cur.Incidents), SignalDelta: cand.Signals - cur.Signals}
	in := func(list []IncidentSummary) map[string]bool {
		m := make(map[string]bool, len(list))
		for _, i := range list {
			m[i.CorrelationKey] = true
		}
		return m
	}
	curKeys, candKeys := in(cur.Incidents), in(cand.Incidents)
	for _, i := range cand.Incidents {
		if curKeys[i.CorrelationKey] {
			c.Both++
		} else {
			c.OnlyCandidate = append(c.OnlyCandidate, i)
		}
	}
	for _, i := range cur.Incidents {
		if !candKeys[i.CorrelationKey] {
			c.OnlyCurrent = append(c.OnlyCurrent, i)
		}
	}
	return c
}
