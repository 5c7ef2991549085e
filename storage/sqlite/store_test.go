package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/storage"
	"github.com/urbanbrain/urbanbrain/storage/sqlite"
	"github.com/urbanbrain/urbanbrain/storage/storagetest"
)

// paths gives each test its own database file and the same file when the test reopens.
var paths sync.Map // testing.TB → string

func openStore(tb testing.TB, cfg sqlite.Config, log *zap.Logger) *sqlite.Store {
	tb.Helper()
	path, ok := paths.Load(tb)
	if !ok {
		path, _ = paths.LoadOrStore(tb, filepath.Join(tb.TempDir(), "urbanbrain.db"))
		tb.Cleanup(func() { paths.Delete(tb) })
	}
	cfg.Path = path.(string)
	s, err := sqlite.Open(cfg, log)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Store {
		return openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	})
}

func TestConformanceMemory(t *testing.T) {
	// Restart cannot keep an in-memory database, so only the single-life tests apply; they
	// check that the shared read/write connection of MemoryPath works.
	s, err := sqlite.Open(sqlite.Config{Path: sqlite.MemoryPath}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	e := event.Event{ID: "m-1", Type: event.TypeSensorReading, Area: a,
		Sensor: &event.SensorReading{DeviceID: "dev-1", Kind: "gas"}}
	if err := s.HandleEvents(ctx, []event.Event{e, e}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(ctx, storage.EventFilter{Street: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Sensor.DeviceID != "dev-1" {
		t.Fatalf("ListEvents = %+v, want the one event", evs)
	}
}

func TestMigrationsRunOnce(t *testing.T) {
	for range 3 {
		s := openStore(t, sqlite.Config{}, zap.NewNop())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Read goose's bookkeeping with a plain connection: one row per applied migration.
	s := openStore(t, sqlite.Config{}, zap.NewNop())
	versions, err := sqlite.AppliedMigrations(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	// 00010: the audit log (issue 4); 00011: dispatches.level (issue 12); 00012: incidents'
	// source and rule (issue 14, the report); 00013: the timeline as a rowid table; 00014 and
	// 00015 (Go): events keyed by time, report links with their event's time (all issue 9).
	if !slices.Equal(versions, []int64{1, 10, 11, 12, 13, 14, 15}) {
		t.Fatalf("applied migrations = %v, want [1 10 11 12 13 14 15] once each", versions)
	}
}

// Migration 00013 turns the timeline into a rowid table and back without losing or changing an
// entry: a timeline written at version 13 reads the same after undoing the migration (the
// WITHOUT ROWID table of version 12) and after doing it again; then replays are still ignored,
// new versions added, and an incident's deletion still takes its timeline with it.
func TestTimelineKeepsItsEntriesThroughItsMigration(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	change := func(id string, v int64) event.IncidentChange {
		at := now.Add(time.Duration(v) * time.Second)
		inc := event.Incident{ID: id, Version: v, Status: event.StatusNew, Category: "0104", Area: a,
			CreatedAt: now, UpdatedAt: at, ReportCount: int(v)}
		return event.IncidentChange{Incident: inc, Change: event.Change{Action: "link", To: event.StatusNew,
			Actor: event.SystemActor, At: at, SignalID: fmt.Sprintf("sig-%s-%d", id, v)}}
	}
	var log []event.IncidentChange
	for v := int64(1); v <= 3; v++ {
		log = append(log, change("INC-s1-b", v), change("INC-s1-a", v))
	}
	if err := s.HandleIncidentChanges(ctx, log); err != nil {
		t.Fatal(err)
	}
	timelines := func(s *sqlite.Store) map[string][]storage.TimelineEntry {
		t.Helper()
		out := map[string][]storage.TimelineEntry{}
		for _, id := range []string{"INC-s1-a", "INC-s1-b"} {
			d, err := s.GetIncident(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = d.Timeline
		}
		return out
	}
	before := timelines(s)
	if len(before["INC-s1-a"]) != 3 || before["INC-s1-a"][2].SignalID != "sig-INC-s1-a-3" {
		t.Fatalf("timeline of INC-s1-a = %+v, want versions 1 to 3", before["INC-s1-a"])
	}
	rowid := func(s *sqlite.Store) error {
		return sqlite.ReadExec(ctx, s, "SELECT rowid FROM incident_changes LIMIT 1")
	}
	if err := rowid(s); err != nil {
		t.Fatalf("the timeline has no rowid after migration 13: %v", err)
	}
	// The entries as stored, to compare at version 12, which today's reads do not know.
	entries := func(s *sqlite.Store) []string {
		t.Helper()
		out, err := sqlite.Strings(ctx, s, "SELECT incident_id || ' ' || version || ' ' || doc FROM incident_changes ORDER BY incident_id, version")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stored := entries(s)
	if len(stored) != 6 {
		t.Fatalf("%d timeline entries stored, want 6", len(stored))
	}
	if err := sqlite.MigrateDownTo(ctx, s, 12); err != nil {
		t.Fatal(err)
	}
	if err := rowid(s); err == nil {
		t.Fatal("the timeline has a rowid after undoing migration 13, want a WITHOUT ROWID table")
	}
	if got := entries(s); !slices.Equal(got, stored) {
		t.Fatalf("timeline entries at version 12 = %q, want %q", got, stored)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, sqlite.Config{}, zaptest.NewLogger(t)) // migrates up again
	if got := timelines(s); !reflect.DeepEqual(got, before) {
		t.Fatalf("timelines after migrating again = %+v, want %+v", got, before)
	}
	replay := slices.Concat(log, []event.IncidentChange{change("INC-s1-a", 4)})
	if err := s.HandleIncidentChanges(ctx, replay); err != nil {
		t.Fatal(err)
	}
	after := timelines(s)
	if len(after["INC-s1-b"]) != 3 || len(after["INC-s1-a"]) != 4 || after["INC-s1-a"][3].Version != 4 {
		t.Fatalf("after a replay and version 4 of INC-s1-a: %d and %d entries (want 4 and 3), last %+v",
			len(after["INC-s1-a"]), len(after["INC-s1-b"]), after["INC-s1-a"][len(after["INC-s1-a"])-1])
	}
	if n, err := sqlite.Count(ctx, s, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'incident_changes_reached'"); err != nil || n != 1 {
		t.Errorf("index incident_changes_reached: %d, %v; want it", n, err)
	}
	if err := sqlite.WriteExec(ctx, s, "DELETE FROM incidents WHERE id = ?", "INC-s1-a"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int{"INC-s1-a": 0, "INC-s1-b": 3} {
		if n, err := sqlite.Count(ctx, s, "SELECT count(*) FROM incident_changes WHERE incident_id = ?", id); err != nil || n != want {
			t.Errorf("timeline entries of %s after INC-s1-a was deleted: %d, %v; want %d", id, n, err, want)
		}
	}
}

// Migration 00014 keys events by (time, type, id) and gives report links their event's time;
// 00015 times the links whose event was not stored yet from their incident's document. Events
// and links stored at version 13 come through both, and undoing 00014 keeps one row per
// (type, id), the earliest.
func TestEventsKeyedByTimeThroughTheirMigration(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	if err := sqlite.MigrateDownTo(ctx, s, 13); err != nil {
		t.Fatal(err)
	}
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	reading := sensorReading("ev-reading", a, now.Add(-time.Minute))
	ticket := hotlineTicket("T-0001", a, now.Add(-30*time.Second))
	timeless := sensorReading("ev-timeless", a, time.Time{})
	late := sensorReading("ev-late", a, now.Add(-10*time.Second)) // stored after the upgrade
	if err := s.HandleEvents(ctx, []event.Event{reading, ticket, timeless}); err != nil {
		t.Fatal(err)
	}
	// At version 13 links have no time, so the incident's change is stored without reports
	// and its links are written as version 13 wrote them.
	inc := event.Incident{ID: "INC-s1-k", Version: 1, Status: event.StatusNew, Category: "0104", Area: a,
		CreatedAt: now, UpdatedAt: now}
	if err := s.HandleIncidentChanges(ctx, []event.IncidentChange{{Incident: inc,
		Change: event.Change{Action: "open", To: event.StatusNew, Actor: event.SystemActor, At: now}}}); err != nil {
		t.Fatal(err)
	}
	inc.Reports = []event.Report{
		{EventID: reading.ID, EventType: reading.Type, At: reading.Time},
		{EventID: ticket.ID, EventType: ticket.Type, At: ticket.Time},
		{EventID: timeless.ID, EventType: timeless.Type, At: now}, // its signal's time
		{EventID: "ev-first", EventType: late.Type, At: now.Add(-time.Hour), LastEventID: late.ID, LastAt: late.Time},
	}
	doc, err := json.Marshal(inc)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.WriteExec(ctx, s, "UPDATE incidents SET doc = ? WHERE id = ?", string(doc), inc.ID); err != nil {
		t.Fatal(err)
	}
	for _, e := range []event.Event{reading, ticket, timeless, late} {
		if err := sqlite.WriteExec(ctx, s, "INSERT INTO incident_reports (incident_id, event_id, event_type) VALUES (?, ?, ?)",
			inc.ID, e.ID, e.Type); err != nil {
			t.Fatal(err)
		}
	}
	// An incident whose document cannot be read does not keep the store from opening.
	unreadable := inc
	unreadable.ID, unreadable.Reports = "INC-s1-unreadable", nil
	if err := s.HandleIncidentChanges(ctx, []event.IncidentChange{{Incident: unreadable,
		Change: event.Change{Action: "open", To: event.StatusNew, Actor: event.SystemActor, At: now}}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"UPDATE incidents SET doc = '{\"reports\": [' WHERE id = ?",
		"INSERT INTO incident_reports (incident_id, event_id, event_type) VALUES (?, 'ev-unreadable', 'city.sensor.reading')"} {
		if err := sqlite.WriteExec(ctx, s, q, unreadable.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, sqlite.Config{}, zaptest.NewLogger(t)) // migrates up to 15
	links, err := sqlite.Strings(ctx, s, "SELECT event_id || ' ' || event_time_ms FROM incident_reports ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	ms := func(tm time.Time) string { return fmt.Sprint(tm.UnixMilli()) }
	want := []string{"T-0001 " + ms(ticket.Time), "ev-late " + ms(late.Time), "ev-reading " + ms(reading.Time),
		"ev-timeless " + ms(now), "ev-unreadable 0"}
	if !slices.Equal(links, want) {
		t.Fatalf("report links after the migrations = %q, want %q", links, want)
	}
	if err := s.HandleEvents(ctx, []event.Event{late}); err != nil {
		t.Fatal(err)
	}
	if got, want := incidentEventIDs(t, s, inc.ID), []string{"ev-timeless", "ev-reading", "T-0001", "ev-late"}; !slices.Equal(got, want) {
		t.Fatalf("the incident's events after the migrations = %q, want %q", got, want)
	}

	// The same id again, later in time but stored first: undoing 00014 keeps the earliest.
	twice := sensorReading("ev-twice", a, now)
	earlier := sensorReading("ev-twice", a, now.Add(-time.Hour))
	if err := s.HandleEvents(ctx, []event.Event{twice, earlier}); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.MigrateDownTo(ctx, s, 13); err != nil {
		t.Fatal(err)
	}
	if n, err := sqlite.Count(ctx, s, "SELECT count(*) FROM events WHERE id = ? AND time_ms = ?", earlier.ID, earlier.Time.UnixMilli()); err != nil || n != 1 {
		t.Fatalf("the earliest row of %s at version 13: %d, %v; want 1", earlier.ID, n, err)
	}
	if n, err := sqlite.Count(ctx, s, "SELECT count(*) FROM events"); err != nil || n != 5 {
		t.Fatalf("events at version 13: %d, %v; want 5", n, err)
	}
	if n, err := sqlite.Count(ctx, s, "SELECT count(*) FROM pragma_index_list('events') WHERE origin = 'pk'"); err != nil || n != 1 {
		t.Fatalf("events' primary key at version 13: %d, %v; want (type, id)", n, err)
	}
}

// A report link carries the time of the event it names, so the incident's detail finds the
// event through the events' key: a report's first reading, an episode's latest, and the event
// without a time whose report took its signal's.
func TestReportLinksFindTheirEvents(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	first := sensorReading("ev-first", a, now.Add(-2*time.Minute))
	latest := sensorReading("ev-latest", a, now.Add(-time.Minute))
	timeless := sensorReading("ev-timeless", a, time.Time{})
	// Decoys at the other times a link could wrongly carry.
	decoys := []event.Event{sensorReading("ev-latest", a, first.Time), sensorReading("ev-first", a, latest.Time)}
	if err := s.HandleEvents(ctx, append([]event.Event{first, latest, timeless}, decoys...)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		report event.Report
		want   []event.Event
	}{
		{"a report's first reading", event.Report{EventID: first.ID, EventType: first.Type, At: first.Time}, []event.Event{first}},
		{"an episode's first and latest readings", event.Report{EventID: first.ID, EventType: first.Type, At: first.Time,
			LastEventID: latest.ID, LastAt: latest.Time, Count: 2}, []event.Event{first, latest}},
		{"an event without a time, reported at its signal's", event.Report{EventID: timeless.ID, EventType: timeless.Type, At: now},
			[]event.Event{timeless}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inc := event.Incident{ID: fmt.Sprintf("INC-s1-%d", i), Version: 1, Status: event.StatusNew, Category: "0104",
				Area: a, CreatedAt: now, UpdatedAt: now, Reports: []event.Report{tc.report}}
			if err := s.HandleIncidentChanges(ctx, []event.IncidentChange{{Incident: inc,
				Change: event.Change{Action: "open", To: event.StatusNew, Actor: event.SystemActor, At: now}}}); err != nil {
				t.Fatal(err)
			}
			d, err := s.GetIncident(ctx, inc.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, e := range d.Events {
				got = append(got, e.ID+"@"+e.Time.Format(time.RFC3339Nano))
			}
			for _, e := range tc.want {
				want = append(want, e.ID+"@"+e.Time.UTC().Format(time.RFC3339Nano))
			}
			if !slices.Equal(got, want) {
				t.Errorf("events of the incident = %q, want %q", got, want)
			}
		})
	}
}

// Replays of a stored event are dropped; the same id at another time is a row of its own, of
// which GetEvent returns the earliest; a ticket lookup holds no read connection afterwards.
func TestEventsByTimeReplaysAndRepeats(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	reading := sensorReading("ev-reading", a, now.Add(-time.Minute))
	ticket := hotlineTicket("T-0002", a, now)
	again := sensorReading(reading.ID, a, now)
	for _, batch := range [][]event.Event{{again, reading, ticket}, {reading, ticket, again, reading}} {
		if err := s.HandleEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := sqlite.Count(ctx, s, "SELECT count(*) FROM events"); err != nil || n != 3 {
		t.Fatalf("events after replays: %d, %v; want 3 (the reading at two times and the ticket)", n, err)
	}
	got, err := s.GetEvent(ctx, reading.Type, reading.ID)
	if err != nil || !got.Time.Equal(reading.Time) {
		t.Fatalf("GetEvent of an id stored at two times = %v, %v; want the earliest, %v", got.Time, err, reading.Time)
	}
	// Open311 polls for a ticket's incident with one context for the whole wait. A lookup that
	// left its connection in use would make the fifth wait for the end of that context (the
	// store has four read connections): the timeout only keeps such a failure from hanging.
	poll, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for range 10 {
		got, err := s.GetEvent(poll, ticket.Type, ticket.ID)
		if err != nil || got.Hotline == nil || got.Hotline.TicketID != ticket.ID {
			t.Fatalf("GetEvent of the ticket = %+v, %v", got, err)
		}
		if _, err := s.GetEvent(poll, ticket.Type, "T-missing"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("GetEvent of a missing ticket: %v, want %v", err, storage.ErrNotFound)
		}
	}
	if n := sqlite.ReadConnsInUse(s); n != 0 {
		t.Fatalf("%d read connections in use after the lookups, want 0", n)
	}
}

// The lookups by an event's id use an index: a ticket by its number, an incident's events
// through their links' times.
func TestEventLookupsUseIndexes(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	for _, tc := range []struct {
		query, want string
		args        []any
	}{
		{sqlite.GetTicketSQL, "SEARCH events USING INDEX events_ticket (id=?)", []any{"T-0001"}},
		{sqlite.IncidentEventsSQL, "SEARCH e USING INDEX events_time (time_ms=? AND type=? AND id=?)", []any{"INC-s1-k"}},
	} {
		plan, err := sqlite.QueryPlan(ctx, s, tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, tc.want) {
			t.Errorf("plan of %s:\n%s\nwant it to use %s", tc.query, plan, tc.want)
		}
	}
}

// Retention deletes an old closed incident with its report links; the changelog replayed after
// it brings the incident back with its events.
func TestReportLinksAreWrittenAgainAfterRetention(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	then := time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Millisecond)
	reading := sensorReading("ev-old", a, then)
	if err := s.HandleEvents(ctx, []event.Event{reading}); err != nil {
		t.Fatal(err)
	}
	inc := event.Incident{ID: "INC-s1-old", Version: 1, Status: event.StatusNew, Category: "0104", Area: a,
		CreatedAt: then, UpdatedAt: then, Reports: []event.Report{{EventID: reading.ID, EventType: reading.Type, At: reading.Time}}}
	closed := inc
	closed.Version, closed.Status, closed.UpdatedAt = 2, event.StatusClosed, then.Add(time.Hour)
	log := []event.IncidentChange{
		{Incident: inc, Change: event.Change{Action: "open", To: event.StatusNew, Actor: event.SystemActor, At: then}},
		{Incident: closed, Change: event.Change{Action: "close", From: event.StatusNew, To: event.StatusClosed,
			Actor: event.SystemActor, At: closed.UpdatedAt}},
	}
	for _, ch := range log {
		if err := s.HandleIncidentChanges(ctx, []event.IncidentChange{ch}); err != nil {
			t.Fatal(err)
		}
	}
	if got := incidentEventIDs(t, s, inc.ID); !slices.Equal(got, []string{reading.ID}) {
		t.Fatalf("events of the incident = %q, want [%s]", got, reading.ID)
	}
	removed, err := s.Retain(ctx, storage.Cutoffs{Incidents: time.Now().Add(-24 * time.Hour)})
	if err != nil || removed.Incidents != 1 {
		t.Fatalf("retention removed %+v, %v; want the incident", removed, err)
	}
	if err := s.HandleIncidentChanges(ctx, log); err != nil {
		t.Fatal(err)
	}
	if got := incidentEventIDs(t, s, inc.ID); !slices.Equal(got, []string{reading.ID}) {
		t.Fatalf("events of the incident replayed after retention = %q, want [%s]", got, reading.ID)
	}
}

// sensorReading is a water-level reading of dev-1 in a at tm.
func sensorReading(id string, a event.Area, tm time.Time) event.Event {
	return event.Event{ID: id, Type: event.TypeSensorReading, Area: a, Time: tm,
		Sensor: &event.SensorReading{DeviceID: "dev-1", Kind: "water_level"}}
}

// hotlineTicket is 12345 work order number id in a, filed at tm.
func hotlineTicket(id string, a event.Area, tm time.Time) event.Event {
	return event.Event{ID: id, Type: event.TypeHotlineTicket, Area: a, Time: tm,
		Hotline: &event.HotlineTicket{TicketID: id, Category: "0104"}}
}

// incidentEventIDs are the ids of the events of incident id's detail, in its order.
func incidentEventIDs(t *testing.T, s *sqlite.Store, id string) []string {
	t.Helper()
	d, err := s.GetIncident(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range d.Events {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestConnections(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		cfg  sqlite.Config
		sync string
	}{
		{sqlite.Config{}, "1"}, // NORMAL
		{sqlite.Config{Synchronous: sqlite.SyncFull}, "2"},
	}
	for _, tc := range tests {
		t.Run("sync="+tc.sync, func(t *testing.T) {
			s := openStore(t, tc.cfg, zap.NewNop())
			want := map[string]string{"journal_mode": "wal", "foreign_keys": "1", "synchronous": tc.sync, "busy_timeout": "5000", "page_size": "16384", "wal_autocheckpoint": "2560"}
			for name, v := range want {
				got, err := sqlite.WritePragma(ctx, s, name)
				if err != nil {
					t.Fatal(err)
				}
				if got != v {
					t.Errorf("write connection: PRAGMA %s = %s, want %s", name, got, v)
				}
			}
			if got, err := sqlite.ReadPragma(ctx, s, "query_only"); err != nil || got != "1" {
				t.Errorf("read connection: PRAGMA query_only = %s (%v), want 1", got, err)
			}
			if err := sqlite.ReadExec(ctx, s, "DELETE FROM events"); err == nil {
				t.Error("a read connection could write")
			}
		})
	}
}

// TestExistingDatabaseKeepsItsPageSize: a database an earlier urbanbrain made with SQLite's
// default 4 KiB pages opens, migrates and stores as before; only new databases get 16 KiB.
func TestExistingDatabaseKeepsItsPageSize(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PRAGMA page_size = 4096", "PRAGMA journal_mode = WAL", "CREATE TABLE earlier (x)"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(sqlite.Config{Path: path}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := sqlite.WritePragma(ctx, s, "page_size"); err != nil || got != "4096" {
		t.Fatalf("PRAGMA page_size = %s (%v), want the database's own 4096", got, err)
	}
	// A checkpoint every 40 MiB whatever the page size: 10,240 pages of 4 KiB.
	if got, err := sqlite.WritePragma(ctx, s, "wal_autocheckpoint"); err != nil || got != "10240" {
		t.Fatalf("PRAGMA wal_autocheckpoint = %s (%v), want 10240", got, err)
	}
	e := event.Event{ID: "e-1", Type: event.TypeSensorReading, Source: "/t", Time: time.Now().UTC().Truncate(time.Millisecond),
		Sensor: &event.SensorReading{DeviceID: "d", Kind: "k", Metrics: map[string]float64{"a": 1}}}
	if err := s.HandleEvents(ctx, []event.Event{e}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetEvent(ctx, e.Type, e.ID)
	if err != nil || got.ID != e.ID || got.Sensor.DeviceID != "d" {
		t.Fatalf("GetEvent = %+v, %v", got, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     sqlite.Config
		wantErr bool
	}{
		{"ok", sqlite.Config{Path: "/tmp/x.db", Synchronous: sqlite.SyncFull}, false},
		{"normal sync", sqlite.Config{Path: "/tmp/x.db", Synchronous: sqlite.SyncNormal}, false},
		{"no path", sqlite.Config{Synchronous: sqlite.SyncFull}, true},
		{"query in path", sqlite.Config{Path: "/tmp/x.db?mode=ro", Synchronous: sqlite.SyncFull}, true},
		{"bad sync", sqlite.Config{Path: "/tmp/x.db", Synchronous: "off"}, true},
		{"negative timeout", sqlite.Config{Path: "/tmp/x.db", Synchronous: sqlite.SyncFull, BusyTimeout: -1}, true},
		{"negative read conns", sqlite.Config{Path: "/tmp/x.db", Synchronous: sqlite.SyncFull, ReadConns: -1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
	if _, err := sqlite.Open(sqlite.Config{}, nil); err == nil {
		t.Error("Open without a path succeeded")
	}
}

func BenchmarkHandleEvent(b *testing.B) {
	for _, sync := range []string{sqlite.SyncFull, sqlite.SyncNormal} {
		b.Run("sync="+sync, func(b *testing.B) {
			storagetest.BenchmarkHandleEvent(b, func(b *testing.B) storagetest.Store {
				return openStore(b, sqlite.Config{Synchronous: sync}, zap.NewNop())
			})
		})
	}
}

func BenchmarkHandleIncidentChange(b *testing.B) {
	storagetest.BenchmarkHandleIncidentChange(b, func(b *testing.B) storagetest.Store {
		return openStore(b, sqlite.Config{}, zap.NewNop())
	})
}

func BenchmarkHandleIncidentChangeBatches(b *testing.B) {
	storagetest.BenchmarkHandleIncidentChangeBatches(b, func(b *testing.B) storagetest.Store {
		return openStore(b, sqlite.Config{}, zap.NewNop())
	})
}

func BenchmarkListIncidents(b *testing.B) {
	storagetest.BenchmarkListIncidents(b, func(b *testing.B) storagetest.Store {
		return openStore(b, sqlite.Config{}, zap.NewNop())
	})
}

func BenchmarkQueries(b *testing.B) {
	storagetest.BenchmarkQueries(b, func(b *testing.B) storagetest.Store {
		return openStore(b, sqlite.Config{}, zap.NewNop())
	})
}

// endsAfter is a context without a done channel whose Err says it ended after n asks: it ends
// in the middle of a batch's rows, where nothing but the batch's own checks can see it.
type endsAfter struct {
	context.Context
	n atomic.Int64
}

func (c *endsAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// readings are n sensor readings in a, a minute old, with ids prefix-0 to prefix-(n-1).
func readings(prefix string, a event.Area, n int) []event.Event {
	events := make([]event.Event, n)
	for i := range events {
		events[i] = event.Event{ID: fmt.Sprintf("%s-%d", prefix, i), Type: event.TypeSensorReading, Area: a,
			Time: time.Now().Add(-time.Minute), Sensor: &event.SensorReading{DeviceID: "dev-1", Kind: "gas"}}
	}
	return events
}

// A batch's rows run without their context's cancellation (one goroutine less per row in the
// driver), so the batch checks the context between rows: one that ends half way is rolled
// back whole and says why.
func TestABatchWhoseContextEndsHalfWayStoresNothing(t *testing.T) {
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	a := event.Area{District: "d1", Street: "s1", Grid: "g1"}
	events := readings("half", a, 100)
	ctx := &endsAfter{Context: context.Background()}
	ctx.n.Store(50)
	if err := s.HandleEvents(ctx, events); !errors.Is(err, context.Canceled) {
		t.Fatalf("HandleEvents with a context that ended half way: %v, want %v", err, context.Canceled)
	}
	for _, e := range []event.Event{events[0], events[99]} {
		if _, err := s.GetEvent(t.Context(), e.Type, e.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("event %s after the batch was cut short: %v, want %v", e.ID, err, storage.ErrNotFound)
		}
	}
	if err := s.HandleEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetEvent(t.Context(), events[99].Type, events[99].ID); err != nil {
		t.Errorf("the batch again, with a live context: %v", err)
	}

	// An incident change is several statements (its row, its timeline entry, its report links):
	// a batch cut after the first change keeps none of it.
	now := time.Now().UTC().Truncate(time.Millisecond)
	var changes []event.IncidentChange
	for i := range 3 {
		inc := event.Incident{ID: fmt.Sprintf("INC-half-%d", i), Version: 1, Status: event.StatusNew, Category: "0104",
			Area: a, CreatedAt: now, UpdatedAt: now,
			Reports: []event.Report{{EventID: events[i].ID, EventType: events[i].Type, At: events[i].Time}}}
		changes = append(changes, event.IncidentChange{Incident: inc,
			Change: event.Change{Action: "open", To: event.StatusNew, Actor: event.SystemActor, At: now}})
	}
	ctx = &endsAfter{Context: context.Background()}
	ctx.n.Store(1)
	if err := s.HandleIncidentChanges(ctx, changes); !errors.Is(err, context.Canceled) {
		t.Fatalf("HandleIncidentChanges with a context that ended after one change: %v, want %v", err, context.Canceled)
	}
	if _, err := s.GetIncident(t.Context(), changes[0].Incident.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the first incident of the batch cut short: %v, want %v", err, storage.ErrNotFound)
	}
	if err := s.HandleIncidentChanges(t.Context(), changes); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetIncident(t.Context(), changes[0].Incident.ID)
	if err != nil || len(d.Timeline) != 1 || len(d.Events) != 1 {
		t.Errorf("the incident changes again, with a live context: %d timeline entries, %d events, %v; want 1, 1", len(d.Timeline), len(d.Events), err)
	}
}

// A batch whose context is cancelled while it runs says so, whichever statement meets the
// transaction rolled back.
func TestABatchCancelledWhileItRunsSaysSo(t *testing.T) {
	s := openStore(t, sqlite.Config{}, zaptest.NewLogger(t))
	events := readings("cancel", event.Area{District: "d1", Street: "s1", Grid: "g1"}, 2000)
	for range 20 {
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Millisecond); cancel() }()
		err := s.HandleEvents(ctx, events)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("a batch cancelled while it ran: %v, want it to say %v", err, context.Canceled)
		}
	}
}

func BenchmarkHandleIncidentChangesCity(b *testing.B) {
	storagetest.BenchmarkHandleIncidentChangesCity(b, func(b *testing.B) storagetest.Store {
		return openStore(b, sqlite.Config{}, zap.NewNop())
	})
}
