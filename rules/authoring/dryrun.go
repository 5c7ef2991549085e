package authoring

import (
	"context"
	"fmt"
	"time"

	"github.com/urbanbrain/urbanbrain/rules/engine"
	"github.com/urbanbrain/urbanbrain/rules/lang"

	"github.com/urbanbrain/urbanbrain/event"
)

// A dry run evaluates one rule, saved or not, over sample events in a private engine (its own
// state, its outputs kept, nothing sent anywhere) and says, event by event, what fired
// and why: the value of every && / || / ! part of the condition and of both sides of every
// comparison, the group key, and the state of a stateful rule after the event.

// DryRunReport is the outcome of a dry run.
type DryRunReport struct {
	RuleID  string       `json:"rule_id"`
	Version int          `json:"version"`
	Kind    string       `json:"kind,omitempty"` // for, window, absent; empty when stateless
	Steps   []DryRunStep `json:"steps"`
	// After are the signals the clock raises once the events are over, when the request
	// asked to run the clock on (a device silent after the last sample, a period closing).
	After   []DrySignal `json:"after,omitempty"`
	Fired   int         `json:"fired"`
	Cleared int         `json:"cleared"`
}

// DryRunStep is what one sample event did.
type DryRunStep struct {
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Time      time.Time `json:"time"`
	// Listens is false when the rule does not listen to the event's type; nothing else is set.
	Listens   bool              `json:"listens"`
	Matched   bool              `json:"matched"` // the when condition held
	Condition *engine.Condition `json:"condition,omitempty"`
	Group     string            `json:"group,omitempty"`
	Late      bool              `json:"late,omitempty"` // too late for the stateful part
	State     *engine.StateView `json:"state,omitempty"`
	Signals   []DrySignal       `json:"signals,omitempty"`
	Errors    []string          `json:"errors,omitempty"`
}

// DrySignal is a signal the dry run would have published.
type DrySignal struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"` // fire or clear
	At             time.Time `json:"at"`
	Category       string    `json:"category"`
	Severity       string    `json:"severity"`
	Title          string    `json:"title"`
	CorrelationKey string    `json:"correlation_key"`
	Agency         string    `json:"agency,omitempty"`
	Shadow         bool      `json:"shadow,omitempty"`
	EventID        string    `json:"event_id"`
}

// MaxDryRunEvents caps the sample events of one dry run.
const MaxDryRunEvents = 1000

// DryRun runs r over events, in the order given. until, when later than the last event, runs
// the clock on to it afterwards. r runs even when disabled; cfg is as for New.
func DryRun(ctx context.Context, cfg engine.Config, r lang.Rule, events []event.Event, until time.Time) (DryRunReport, error) {
	if len(events) > MaxDryRunEvents {
		return DryRunReport{}, fmt.Errorf("dry run: %d events, at most %d", len(events), MaxDryRunEvents)
	}
	r.Enabled = true
	cfg.Registerer = nil
	eng, err := engine.New(cfg, []lang.Rule{r}, nil)
	if err != nil {
		return DryRunReport{}, err
	}
	rep := DryRunReport{RuleID: r.ID, Version: r.Version, Kind: r.Kind(), Steps: make([]DryRunStep, 0, len(events))}
	ex := engine.NewExplainer(&r)
	take := func(outs event.Outputs) []DrySignal {
		var out []DrySignal
		for _, sig := range signalsOf(outs) {
			kind := "fire"
			if sig.Clear {
				kind = "clear"
				rep.Cleared++
			} else {
				rep.Fired++
			}
			out = append(out, DrySignal{ID: sig.ID, Kind: kind, At: sig.At, Category: sig.Category, Severity: sig.Severity,
				Title: sig.Title, CorrelationKey: sig.CorrelationKey, Agency: sig.Agency, Shadow: sig.Shadow, EventID: sig.Event.ID})
		}
		return out
	}
	// The clock starts at the first event, as a live engine's would be ticking when it came:
	// then until runs each street's clock on from its newest event (see Engine.Tick).
	if len(events) > 0 {
		first := events[0].Time
		for _, ev := range events[1:] {
			if ev.Time.Before(first) {
				first = ev.Time
			}
		}
		if _, err := eng.Tick(ctx, first); err != nil {
			return rep, err
		}
	}
	for i, ev := range events {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if cfg.Progress != nil {
			cfg.Progress(i)
		}
		step := DryRunStep{EventID: ev.ID, EventType: ev.Type, Time: ev.Time, Listens: engine.Listens(&r, ev.Type)}
		if !step.Listens {
			rep.Steps = append(rep.Steps, step)
			continue
		}
		if st := eng.StatsOf(r.ID); st.Quarantined {
			// Over its cost budget (or failing on every event): neither the engine nor the
			// explanation runs it again, so a costly rule costs a dry run once.
			step.Errors = append(step.Errors, "quarantined: "+st.QuarantineReason)
			rep.Steps = append(rep.Steps, step)
			continue
		}
		env, err := lang.EnvOf(ev)
		if err != nil {
			step.Errors = append(step.Errors, err.Error())
			rep.Steps = append(rep.Steps, step)
			continue
		}
		step.Condition = ex.Explain(ev.Type, env)
		step.Matched, _ = step.Condition.Value.(bool)
		if p := r.Compiled().ByType[ev.Type]; p.GroupBy != nil {
			m := lang.NewVM()
			if out, err := lang.Run(&m, p.GroupBy, env); err == nil {
				step.Group, _ = out.(string)
			}
		}
		before := eng.StatsOf(r.ID)
		late := eng.EngineStats().Late
		outs, err := eng.HandleEvent(ctx, ev)
		if err != nil {
			return rep, err
		}
		after := eng.StatsOf(r.ID)
		if after.Failed > before.Failed {
			step.Errors = append(step.Errors, after.LastError)
		}
		step.Late = eng.EngineStats().Late > late
		if r.Kind() != "" {
			step.State = eng.Inspect(r.ID, ev.Area.Key(), step.Group)
		}
		step.Signals = take(outs)
		rep.Steps = append(rep.Steps, step)
	}
	if !until.IsZero() {
		outs, err := eng.Tick(ctx, until)
		if err != nil {
			return rep, err
		}
		rep.After = take(outs)
	}
	return rep, nil
}
