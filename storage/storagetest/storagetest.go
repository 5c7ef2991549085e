// Package storagetest is the conformance suite every storage backend passes, so that the
// embedded SQLite store and the ClickHouse store answer the same queries the same way, and the
// benchmarks that compare them. It talks to a backend only through the Store interface and
// builds its data from the event types directly.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/internal/canon"
)

// Store is what the suite needs of a backend: the projection handlers, the queries, and the
// lifecycle calls.
type Store interface {
	HandleEvent(ctx context.Context, e event.Event) error
	HandleEvents(ctx context.Context, events []event.Event) error
	HandleIncidentChange(ctx context.Context, ch event.IncidentChange) error
	HandleIncidentChanges(ctx context.Context, changes []event.IncidentChange) error
	HandleDispatch(ctx context.Context, d event.Dispatch) error
	HandleDispatches(ctx context.Context, ds []event.Dispatch) error

	ListIncidents(ctx context.Context, f storage.IncidentFilter) ([]event.Incident, error)
	CountIncidents(ctx context.Context, f storage.IncidentFilter) (int, error)
	GetIncident(ctx context.Context, id string) (storage.IncidentDetail, error)
	GetEvent(ctx context.Context, typ, id string) (event.Event, error)
	ListEvents(ctx context.Context, f storage.EventFilter) ([]event.Event, error)
	EachEvent(ctx context.Context, f storage.EventFilter, fn func(event.Event) error) error

	EventRates(ctx context.Context, f storage.KPIFilter) ([]storage.EventRate, error)
	OpenIncidents(ctx context.Context, f storage.KPIFilter) (storage.OpenIncidents, error)
	StageTimes(ctx context.Context, f storage.KPIFilter, limits storage.StageLimits) ([]storage.StageStat, error)
	ReportCounts(ctx context.Context, f storage.KPIFilter) ([]storage.ReportCount, error)
	IncidentBreakdown(ctx context.Context, f storage.KPIFilter, o storage.BreakdownOptions) (storage.Breakdown, error)

	Retain(ctx context.Context, c storage.Cutoffs) (storage.Removed, error)

	HandleAudits(ctx context.Context, recs []event.AuditRecord) error
	ListAudit(ctx context.Context, incidentID string) ([]event.AuditRecord, error)

	Ping(ctx context.Context) error
	Close() error
}

// Run runs the suite. open must return a ready Store and register its own cleanup (Close may
// then be called twice). Called with a test it has not seen, open returns an empty store;
// called again with the same test after that store was closed, it must reopen the same data,
// which is how the suite checks that a restart keeps everything.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, open func(t *testing.T) Store)
	}{
		{"Ping", testPing},
		{"EventRoundTrip", testEventRoundTrip},
		{"EventReplayNoDuplicates", testEventReplay},
		{"EventNotFound", testEventNotFound},
		{"ListEventsFilters", testListEventsFilters},
		{"PageSize", testPageSize},
		{"InvalidFilters", testInvalidFilters},
		{"BadRecordsSkipped", testBadRecords},
		{"ChangelogReplayedTwice", testChangelogTwice},
		{"ChangelogOutOfOrder", testChangelogOutOfOrder},
		{"FiltersSeeLatestVersion", testFiltersSeeLatest},
		{"LinkedEvents", testLinkedEvents},
		{"ReportsExplained", testReportsExplained},
		{"IncidentTimesCanonical", testIncidentTimesCanonical},
		{"Dispatches", testDispatches},
		{"IncidentNotFound", testIncidentNotFound},
		{"ListIncidentsFilters", testListIncidentsFilters},
		{"Restart", testRestart},
		{"ReadWhileWriting", testReadWhileWriting},
		{"PoisonRowInLargeBatch", testPoisonRow},
		{"ReplayEverythingTwice", testReplayEverythingTwice},
		{"DispatchBatches", testDispatchBatches},
		{"SearchIncidentText", testSearchIncidentText},
		{"SearchIncidentGrids", testSearchIncidentGrids},
		{"SearchMaskedText", testSearchMaskedText},
		{"EventHistory", testEventHistory},
		{"EachEventReplay", testEachEvent},
		{"KPIEventRates", testKPIEventRates},
		{"KPIOpenIncidents", testKPIOpenIncidents},
		{"KPIStageTimes", testKPIStageTimes},
		{"KPIReportCounts", testKPIReportCounts},
		{"KPIInvalidFilters", testKPIInvalidFilters},
		{"IncidentBreakdown", testIncidentBreakdown},
		{"Retention", testRetention},
		{"AuditLog", testAuditLog},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open)
		})
	}
}

func testPing(t *testing.T, open func(t *testing.T) Store) {
	s := open(t)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// mustEqual compares with reflect.DeepEqual and shows both sides as JSON when they differ.
func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Fatalf("%s differs\ngot:  %s\nwant: %s", what, g, w)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eventIDs(evs []event.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func incidentIDs(incs []event.Incident) []string {
	ids := make([]string, len(incs))
	for i, inc := range incs {
		ids[i] = inc.ID
	}
	return ids
}

func canonEvents(evs ...event.Event) []event.Event {
	out := make([]event.Event, len(evs))
	for i, e := range evs {
		out[i] = canon.Event(e)
	}
	return out
}

// timeline is what GetIncident should return as the timeline of these records.
func timeline(changes ...event.IncidentChange) []storage.TimelineEntry {
	out := make([]storage.TimelineEntry, len(changes))
	for i, ch := range changes {
		out[i] = storage.TimelineEntry{Version: ch.Incident.Version, Change: canon.Change(ch.Change)}
	}
	return out
}

func isNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("%s: got error %v, want storage.ErrNotFound", what, err)
	}
}
