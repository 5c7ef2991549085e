package storage

import (
	"errors"
	"fmt"
	"time"
)

// MinIncidentRetention is the shortest time closed incidents (and their timeline, which is their
// audit trail) may be kept: 等保 2.0 asks for six months of logs.
const MinIncidentRetention = 180 * 24 * time.Hour

// Retention says how long a store keeps what it projects. Zero keeps forever.
type Retention struct {
	// Events is how long raw events are kept, by their time. Default 90 days.
	Events time.Duration
	// Incidents is how long a closed incident, its timeline, report links and dispatches are
	// kept after its last change. Open incidents are never removed. Default 0: forever; when
	// set, at least MinIncidentRetention.
	Incidents time.Duration
}

// DefaultRetention is the retention of a store configured with nothing.
var DefaultRetention = Retention{Events: 90 * 24 * time.Hour}

// Validate reports every problem.
func (r Retention) Validate() error {
	var errs []error
	if r.Events < 0 || (r.Events > 0 && r.Events < time.Hour) {
		errs = append(errs, fmt.Errorf("event retention %s: want 0 (forever) or at least 1h", r.Events))
	}
	if r.Incidents < 0 || (r.Incidents > 0 && r.Incidents < MinIncidentRetention) {
		errs = append(errs, fmt.Errorf("incident retention %s: want 0 (forever) or at least %s (six months)",
			r.Incidents, MinIncidentRetention))
	}
	return errors.Join(errs...)
}

// Cutoffs are the times before which records go, at now. A zero cutoff removes nothing.
func (r Retention) Cutoffs(now time.Time) Cutoffs {
	var c Cutoffs
	if r.Events > 0 {
		c.Events = now.Add(-r.Events)
	}
	if r.Incidents > 0 {
		c.Incidents = now.Add(-r.Incidents)
	}
	return c
}

// Cutoffs are what a store's Retain removes: events whose time is before Events, and closed
// incidents last updated before Incidents, with their timeline, links and dispatches. A zero
// time removes nothing of its kind.
type Cutoffs struct {
	Events    time.Time
	Incidents time.Time
}

// Removed is what one Retain call deleted.
type Removed struct {
	Events    int `json:"events"`
	Incidents int `json:"incidents"`
}
