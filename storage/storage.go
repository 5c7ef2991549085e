// Package storage is the read model of urbanbrain: the query, filter, KPI and retention types
// every store backend answers, and the errors it returns. The backends live in subpackages
// (storage/sqlite, the embedded default, and storage/clickhouse, for production) and all pass
// the one conformance suite in storage/storagetest; docs/storage.md describes both.
//
// A store is a projection of the Kafka topics, never a system of record: the city.incidents
// changelog is. Backends therefore write idempotently (events by type and id, incidents by id
// and version) so that replaying a topic from the start never duplicates or rolls back a row.
// Stores keep what they are given faithfully, personal data included; masking is the API
// layer's job and must never happen here, or an unmasking role could not see the original.
//
// Times come back in UTC with millisecond precision, the resolution every backend stores.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urbanbrain/urbanbrain/event"
)

// ErrNotFound is returned when the incident or event asked for is not stored.
var ErrNotFound = errors.New("storage: not found")

// ErrInvalidFilter wraps every problem Validate finds in a filter, so the API layer can map
// it to a 400 without knowing the details.
var ErrInvalidFilter = errors.New("storage: invalid filter")

// Page sizes of list queries.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// IncidentFilter selects incidents. Empty fields do not filter; set fields are ANDed.
// Results are ordered by UpdatedAt descending, then ID descending, so pages are stable.
type IncidentFilter struct {
	Status         []event.Status // any of these states
	Category       string
	Severity       string
	District       string
	Street         string
	Grid           string
	AssigneeWorker string // Assignment.WorkerID
	OpenOnly       bool   // only incidents whose Status.Open() is true
	Ungridded      bool   // only incidents no grid holds (reports outside every grid, for triage)
	// Grids keeps incidents in any of these grids (a worker's scope). Nil does not filter; an
	// empty, non-nil slice matches nothing, as a worker without grids sees nothing.
	Grids []string
	// Text keeps incidents whose title or a report's summary (which carries the 12345 ticket
	// text) contains it, ignoring ASCII case. See MatchText.
	Text string
	// TextMasked matches Text only outside personal data, for a role that sees it masked:
	// each field as SearchMask leaves it. See MatchMaskedText.
	TextMasked bool
	// Since and Until bound UpdatedAt: Since <= UpdatedAt < Until. A zero value is unbounded.
	Since, Until time.Time
	// Limit is the page size: 0 means DefaultLimit, more than MaxLimit means MaxLimit.
	// CountIncidents ignores Limit and Offset.
	Limit  int
	Offset int
}

// Validate reports every problem with the filter, wrapped in ErrInvalidFilter.
func (f IncidentFilter) Validate() error {
	var errs []error
	errs = append(errs, validatePage(f.Limit, f.Offset)...)
	errs = append(errs, validateRange(f.Since, f.Until)...)
	for _, s := range f.Status {
		if s == "" {
			errs = append(errs, errors.New("status: empty value"))
		}
	}
	errs = append(errs, validateGrids(f.Grids)...)
	errs = append(errs, validateText(f.Text)...)
	return wrapInvalid(errs)
}

// PageLimit is the page size the filter asks for, with the default and the cap applied.
func (f IncidentFilter) PageLimit() int { return pageLimit(f.Limit) }

// EventFilter selects events. Empty fields do not filter; set fields are ANDed. Results are
// ordered by Time descending, then type and ID descending.
type EventFilter struct {
	Type     string // CloudEvents type, e.g. event.TypeSensorReading
	District string
	Street   string
	Grid     string
	// DeviceID is the sensor's DeviceID or the camera's CameraID; hotline tickets have none.
	DeviceID string
	// Grids keeps events in any of these grids, as in IncidentFilter.
	Grids []string
	// Near keeps events whose location is within the circle; events without one never match.
	Near *Circle
	// Text keeps hotline tickets whose content or address contains it, ignoring ASCII case.
	Text string
	// TextMasked matches Text only outside personal data, as in IncidentFilter.
	TextMasked bool
	// Since and Until bound Time: Since <= Time < Until. A zero value is unbounded.
	Since, Until time.Time
	Limit        int // as in IncidentFilter
	Offset       int
}

// Validate reports every problem with the filter, wrapped in ErrInvalidFilter.
func (f EventFilter) Validate() error {
	var errs []error
	errs = append(errs, validatePage(f.Limit, f.Offset)...)
	errs = append(errs, validateRange(f.Since, f.Until)...)
	errs = append(errs, validateGrids(f.Grids)...)
	errs = append(errs, validateText(f.Text)...)
	if f.Near != nil {
		errs = append(errs, f.Near.validate()...)
	}
	return wrapInvalid(errs)
}

// PageLimit is the page size the filter asks for, with the default and the cap applied.
func (f EventFilter) PageLimit() int { return pageLimit(f.Limit) }

// IncidentDetail is one incident with everything that explains it: how it got to its state,
// the events reported about it and who it was sent to.
type IncidentDetail struct {
	Incident event.Incident `json:"incident"`
	// Timeline holds every stored version's change, oldest first.
	Timeline []TimelineEntry `json:"timeline"`
	// Events are the stored events linked to the incident, oldest first. A report whose event
	// is not stored (yet: the events and the changelog are consumed independently) is still
	// listed in Incident.Reports but missing here.
	Events []event.Event `json:"events"`
	// Dispatches are the dispatch decisions for the incident, oldest first.
	Dispatches []event.Dispatch `json:"dispatches"`
}

// TimelineEntry is the change that produced one version of an incident (the audit trail).
type TimelineEntry struct {
	Version int64 `json:"version"`
	event.Change
}

func pageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	default:
		return n
	}
}

func validatePage(limit, offset int) []error {
	var errs []error
	if limit < 0 {
		errs = append(errs, fmt.Errorf("limit %d: must not be negative", limit))
	}
	if offset < 0 {
		errs = append(errs, fmt.Errorf("offset %d: must not be negative", offset))
	}
	return errs
}

func validateRange(since, until time.Time) []error {
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return []error{fmt.Errorf("since %s is not before until %s",
			since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))}
	}
	return nil
}

func wrapInvalid(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidFilter, errors.Join(errs...))
}

// ExplainReports gives the reports of d.Incident their explanations from its timeline: the
// changelog carries each explanation once, on the change of its signal, not on the reports
// (event.ExplainReports). Reports a merge or split moved to it are explained by the timelines
// of the incidents they came from (Change.Related), followed as far as reports still lack
// one — a report merged A → B → C is explained from A's — each read with timelineOf once.
func ExplainReports(ctx context.Context, d *IncidentDetail, timelineOf func(context.Context, string) ([]TimelineEntry, error)) error {
	seen := map[string]bool{d.Incident.ID: true}
	var queue []string
	add := func(t []TimelineEntry) []event.Change {
		changes := make([]event.Change, 0, len(t))
		for _, e := range t {
			changes = append(changes, e.Change)
			if e.Related != "" && !seen[e.Related] {
				seen[e.Related] = true
				queue = append(queue, e.Related)
			}
		}
		return changes
	}
	event.ExplainReports(&d.Incident, add(d.Timeline))
	// A merge chain is short; the bound keeps a corrupt one from reading the whole store.
	for read := 0; len(queue) > 0 && read < maxRelated && event.Unexplained(d.Incident); read++ {
		id := queue[0]
		queue = queue[1:]
		t, err := timelineOf(ctx, id)
		if err != nil {
			return fmt.Errorf("explain the reports of %s from %s: %w", d.Incident.ID, id, err)
		}
		event.ExplainReports(&d.Incident, add(t))
	}
	return nil
}

// maxRelated is how many other incidents' timelines ExplainReports reads at most.
const maxRelated = 32
