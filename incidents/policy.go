package incidents

import (
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/urbanbrain/urbanbrain/event"
)

// Policy is the configurable part of the work-order loop: when signals of the same problem join
// one incident, and how long each stage may take. docs/workflow.md explains every field.
type Policy struct {
	Correlation Correlation `yaml:"correlation"`
	SLA         SLA         `yaml:"sla"`
}

// Correlation says when a signal without a matching correlation key still joins an open
// incident: same (or related) category, within a radius and a time window.
type Correlation struct {
	// CellMeters and Slot size the spatial-temporal index (a grid of square cells by time
	// slots); they change speed, never results. Defaults 500 m and 1 h.
	CellMeters float64       `yaml:"cell_meters"`
	Slot       time.Duration `yaml:"slot"`
	// Default applies to categories not listed. Its zero radius disables spatial joining.
	Default CorrelationRule `yaml:"default"`
	// Categories by category code.
	Categories map[string]CorrelationRule `yaml:"categories"`
}

// CorrelationRule is how far, in space and time, a signal of a category reaches for an open
// incident. Related lists other categories whose incidents it may join too (a flooded
// underpass is raised as 0104 by the water-level sensor and filed as 0202 by callers and
// cameras); the relation is made symmetric when the policy is loaded.
type CorrelationRule struct {
	RadiusMeters float64       `yaml:"radius_meters"`
	Window       time.Duration `yaml:"window"`
	Related      []string      `yaml:"related"`
}

// SLA is the time limits per stage.
type SLA struct {
	// WarnAt is the fraction of a stage's limit after which a warning is raised (default 0.8).
	WarnAt float64 `yaml:"warn_at"`
	// Limits by stage (sign_for, handle, verify) then severity (red, orange, yellow, blue).
	Limits map[string]map[string]time.Duration `yaml:"limits"`
	// Categories override limits per category; emergency categories run on the wall clock.
	Categories map[string]CategorySLA `yaml:"categories"`
	// WorkingHours is when non-emergency clocks run (Asia/Shanghai). Empty Start runs 24/7.
	WorkingHours WorkingHours `yaml:"working_hours"`
}

// CategorySLA overrides the limits for one category.
type CategorySLA struct {
	// Emergency clocks count wall-clock time and never exceed the same day (24 h).
	Emergency bool                                `yaml:"emergency"`
	Limits    map[string]map[string]time.Duration `yaml:"limits"`
}

//go:embed policy.yaml
var defaultPolicyYAML []byte

// DefaultPolicy is the policy shipped with the binary, written for the category codes of the
// demo city (GB/T 30428 style). It is parsed anew on each call, so callers may change it.
func DefaultPolicy() Policy {
	p, err := ParsePolicy(defaultPolicyYAML)
	if err != nil {
		// The embedded file is tested; failing here means the binary was built broken.
		return Policy{}
	}
	return p
}

// ParsePolicy reads a policy from YAML, fills defaults and validates it.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("incidents policy: %w", err)
	}
	p.setDefaults()
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

func (p *Policy) setDefaults() {
	c := &p.Correlation
	if c.CellMeters == 0 {
		c.CellMeters = 500
	}
	if c.Slot == 0 {
		c.Slot = time.Hour
	}
	// Make Related symmetric: if floods (0104) join waterlogging (0202), the reverse holds.
	for code, r := range c.Categories {
		for _, other := range r.Related {
			o := c.Categories[other]
			if !slices.Contains(o.Related, code) && other != code {
				o.Related = append(o.Related, code)
				if c.Categories == nil {
					c.Categories = map[string]CorrelationRule{}
				}
				c.Categories[other] = o
			}
		}
	}
	if p.SLA.WarnAt == 0 {
		p.SLA.WarnAt = 0.8
	}
}

// Validate reports every problem of the policy at once.
func (p Policy) Validate() error {
	var errs []error
	c := p.Correlation
	if c.CellMeters < 10 || math.IsNaN(c.CellMeters) {
		errs = append(errs, fmt.Errorf("correlation.cell_meters %v: want at least 10", c.CellMeters))
	}
	if c.Slot < time.Minute {
		errs = append(errs, fmt.Errorf("correlation.slot %s: want at least 1m", c.Slot))
	}
	check := func(name string, r CorrelationRule) {
		if r.RadiusMeters < 0 || r.RadiusMeters > 10_000 || math.IsNaN(r.RadiusMeters) {
			errs = append(errs, fmt.Errorf("correlation %s: radius_meters %v: want 0..10000", name, r.RadiusMeters))
		}
		if r.Window < 0 || r.Window > 7*24*time.Hour {
			errs = append(errs, fmt.Errorf("correlation %s: window %s: want 0..168h", name, r.Window))
		}
		if r.RadiusMeters > 0 && r.Window == 0 {
			errs = append(errs, fmt.Errorf("correlation %s: a radius needs a window", name))
		}
	}
	check("default", c.Default)
	for code, r := range c.Categories {
		check(code, r)
	}
	s := p.SLA
	if s.WarnAt <= 0 || s.WarnAt >= 1 {
		errs = append(errs, fmt.Errorf("sla.warn_at %v: want a fraction between 0 and 1", s.WarnAt))
	}
	checkLimits := func(where string, limits map[string]map[string]time.Duration, allowed []string) {
		for stage, bySev := range limits {
			if !slices.Contains(allowed, stage) {
				errs = append(errs, fmt.Errorf("%s: unknown stage %q (want %s)", where, stage, strings.Join(allowed, ", ")))
			}
			for sev, d := range bySev {
				if _, ok := severityRank[sev]; !ok && sev != anySeverity {
					errs = append(errs, fmt.Errorf("%s.%s: unknown severity %q", where, stage, sev))
				}
				if d <= 0 {
					errs = append(errs, fmt.Errorf("%s.%s.%s: limit %s must be positive", where, stage, sev, d))
				}
			}
		}
	}
	checkLimits("sla.limits", s.Limits, append([]string{event.StageDispatch}, stages...))
	for code, cs := range s.Categories {
		checkLimits("sla.categories."+code+".limits", cs.Limits, stages)
	}
	if err := s.WorkingHours.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stages are the SLA stages in lifecycle order: the ones with a clock.
var stages = []string{event.StageSignFor, event.StageHandle, event.StageVerify}

// StageLimits are the policy's limits by stage and severity, for the on-time rates of the
// KPIs (the cockpit's live ones and the store's): the clocks' stages, and dispatch, which
// the KPIs measure against sla.limits.dispatch but which has no clock. Category overrides
// are the clocks' business; a KPI's on-time rate uses the clock where the incident had one.
// One table, so the workflow, the wall screen and the reports never disagree.
func (p Policy) StageLimits() map[string]map[string]time.Duration {
	out := make(map[string]map[string]time.Duration, len(p.SLA.Limits))
	for stage, bySev := range p.SLA.Limits {
		out[stage] = maps.Clone(bySev)
	}
	return out
}

// anySeverity in a limits table applies to severities not listed.
const anySeverity = "default"

// fallbackLimit is used when the policy names no limit for a stage at all, so a clock always
// runs (a missing limit must not make an incident immune to escalation).
const fallbackLimit = 72 * time.Hour

// sameDay caps emergency limits: emergencies are handled the same day.
const sameDay = 24 * time.Hour

// limit is a stage's limit for an incident, and whether it counts working hours only.
func (s SLA) limit(stage, category, severity string) (time.Duration, bool) {
	cs, hasCat := s.Categories[category]
	pick := func(t map[string]map[string]time.Duration) (time.Duration, bool) {
		bySev := t[stage]
		if d, ok := bySev[severity]; ok {
			return d, true
		}
		d, ok := bySev[anySeverity]
		return d, ok
	}
	d, ok := time.Duration(0), false
	if hasCat {
		d, ok = pick(cs.Limits)
	}
	if !ok {
		d, ok = pick(s.Limits)
	}
	if !ok {
		d = fallbackLimit
	}
	if cs.Emergency {
		return min(d, sameDay), false
	}
	return d, s.WorkingHours.Start != ""
}

// rule is the correlation rule of a category.
func (c Correlation) rule(category string) CorrelationRule {
	if r, ok := c.Categories[category]; ok {
		return r
	}
	return c.Default
}
